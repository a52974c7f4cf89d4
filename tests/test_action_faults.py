"""Dedupe runs that race, fail at every step, get killed, or are undone twice: the apply()
and undo() contracts, shown through the library (:class:`dupfinder.Catalogue`) and real
``python -m dupfinder`` processes, on both backends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import send2trash
from sqlalchemy import func, select

import dupfinder.actions.apply as apply_mod
import dupfinder.actions.recover as recover_mod
import dupfinder.db.journal as journal_mod
from dupfinder import Catalogue
from dupfinder.db.models import ActionEntry
from dupfinder.errors import UsageError
from dupfinder.states import EntryState, RunStatus
from tests.helpers import HOST, tree_checksums, write

BUSY = "another dedupe or undo is running"
OLD, NEW = 1_600_000_000_000_000_000, 1_700_000_000_000_000_000


class Dupfinder:
    """``python -m dupfinder ARGS`` in its own process (same environment, so the same
    PYTHONPATH and the test's trash); its output goes to files, so that a long plan never
    blocks it on a full pipe."""

    def __init__(self, folder: Path, *args: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.out, self.err = folder / "stdout", folder / "stderr"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "dupfinder", *args],
                                         stdout=out, stderr=err, env=os.environ.copy())

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        """Exit code, stdout and stderr once it has ended."""
        code = self.proc.wait(timeout=timeout)
        return code, self.out.read_text(), self.err.read_text()


def pairs(root: Path, n: int, size: int = 64) -> dict[int, tuple[Path, Path, bytes]]:
    """``n`` pairs of identical files: ``a/i.dat`` (older) and ``b/i.dat`` (newer)."""
    made = {}
    for i in range(n):
        data = f"pair {i:06d} ".encode().ljust(size, b".")
        a, b = write(root / "a" / f"{i}.dat", data), write(root / "b" / f"{i}.dat", data)
        os.utime(a, ns=(OLD, OLD))
        os.utime(b, ns=(NEW + i, NEW + i))
        made[i] = (a, b, data)
    return made


def trash_files(home: Path) -> Path:
    return home / "data" / "Trash" / "files"


# ------------------------------------------------------------------ 1. two runs at once


def _outcome(code: int, out: str, err: str) -> int:
    """How many files a dedupe process deleted; asserts its exit code and stderr agree."""
    if code == 2:  # refused when it came to act: the delete warning, then one error line
        lines = [line for line in err.strip().splitlines()
                 if not line.startswith("warning: deleted files")]
        assert len(lines) == 1 and BUSY in lines[0], err
        assert lines[0].startswith("dupfinder: error: ")
        return 0
    assert code == 0, (code, out, err)
    for line in err.strip().splitlines():  # the delete warning, and skips of gone keepers
        assert line.startswith("warning: deleted files") or (
            line.startswith("skipped ") and line.endswith("the copy that stays is gone")), line
    m = re.search(r"run \d+: (\d+) done, (\d+) skipped, 0 failed", out)
    assert m, out
    return int(m.group(1))


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_two_runs_with_opposite_keepers_never_delete_both_copies(
        cat: Catalogue, db_url: str, tmp_path: Path, attempt: int) -> None:
    root = tmp_path / "tree"
    made = pairs(root, 300)
    cat.scan([root])
    assert len(cat.plan_dedupe("delete", root)) == 300
    common = ["--action", "delete", "--apply", "-y", "--db-url", db_url, "--host-label", HOST]
    procs = [Dupfinder(tmp_path / keep, "dedupe", str(root), "--keep", keep, *common)
             for keep in ("oldest", "newest")]
    results = [p.finish() for p in procs]
    deleted = [_outcome(*r) for r in results]
    assert any(code == 0 for code, _, _ in results)
    for i, (a, b, data) in made.items():
        left = [p for p in (a, b) if p.exists()]
        assert left, f"pair {i}: both copies deleted"
        assert all(p.read_bytes() == data for p in left)
    assert sum(deleted) == 300  # exactly one copy of each pair went, by one run or the other
    assert all(r.status == RunStatus.COMPLETE for r in cat.runs())


# ------------------------------------------------------------------ 2. a failure at each step


def _raise(*_a: Any, **_k: Any) -> None:
    raise RuntimeError("boom")


def _after(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, then RuntimeError: the step happened, its record did not."""

    def step(*a: Any, **k: Any) -> Any:
        real(*a, **k)
        raise RuntimeError("boom")

    return step


def _finish_complete_fails(real: Callable[..., Any]) -> Callable[..., Any]:
    """finish_run failing only where it records a run ``complete``."""

    def finish(session: Any, run_id: int, status: RunStatus) -> None:
        if status == RunStatus.COMPLETE:
            raise RuntimeError("boom")
        real(session, run_id, status)

    return finish


STEPS: dict[str, tuple[Any, str, Callable[[Any], Callable[..., Any]]]] = {
    "start_run": (journal_mod, "start_run", lambda real: _raise),
    "add_entries": (journal_mod, "add_entries", lambda real: _raise),
    "verify": (apply_mod, "verify", lambda real: _raise),
    "prove_distinct": (apply_mod, "prove_distinct", lambda real: _raise),
    "act": (None, "", lambda real: _raise),  # send2trash / move_file, before acting
    "act_then_fail": (None, "", _after),  # ... after acting
    "record_done": (recover_mod, "record_done", lambda real: _raise),
    "set_state": (journal_mod, "set_state", lambda real: _raise),
    "finish_run": (journal_mod, "finish_run", _finish_complete_fails),
}


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    pairs(root, 3, size=5000)
    write(root / "alone.txt", "only one")
    return root


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("action", ["trash", "move"])
def test_a_failure_at_any_step_is_raised_recorded_and_undone(
        cat: Catalogue, small_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        action: str, step: str) -> None:
    cat.scan([small_tree])
    before = tree_checksums(small_tree)
    plan = cat.plan_dedupe(action, small_tree, to=tmp_path / "moved" if action == "move"
                           else None)
    assert len(plan) == 3
    owner, name, make = STEPS[step]
    if owner is None:
        owner, name = (send2trash, "send2trash") if action == "trash" \
            else (apply_mod, "move_file")
    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="^boom$"):
        m.setattr(owner, name, make(getattr(owner, name)))
        cat.apply(plan)

    runs = cat.runs()
    assert all(r.status != RunStatus.COMPLETE for r in runs)
    if step in ("start_run", "add_entries"):  # nothing recorded, nothing touched
        assert runs == []
        assert tree_checksums(small_tree) == before
        with pytest.raises(UsageError, match="no dedupe run"):
            cat.undo()
        return
    [run] = runs
    assert run.status == RunStatus.FAILED
    result = cat.undo(run.id)
    assert not result.not_restored, result.not_restored
    assert tree_checksums(small_tree) == before  # same paths, bytes and mtimes
    states = [e.state for e in cat.journal(run.id)]
    assert EntryState.PLANNED not in states, states
    assert cat.runs()[0].status == RunStatus.UNDONE
    leftovers = [p for p in small_tree.rglob("*") if "dupfinder" in p.name]
    assert leftovers == []


# ------------------------------------------------------------------ 3. killed mid-run


def _done_entries(cat: Catalogue) -> int:
    with cat.db.session() as s:
        return s.scalar(select(func.count()).select_from(ActionEntry)
                        .where(ActionEntry.state == EntryState.DONE)) or 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_run_killed_mid_trash_is_interrupted_and_undone(
        cat: Catalogue, db_url: str, tmp_path: Path, isolated_env: Path,
        sig: signal.Signals) -> None:
    root = tmp_path / "tree"
    pairs(root, 2000, size=32)
    cat.scan([root])
    before = tree_checksums(root)
    dedupe = Dupfinder(tmp_path / "proc", "dedupe", str(root), "--action", "trash", "--apply",
                     "-y", "--db-url", db_url, "--host-label", HOST)
    proc = dedupe.proc
    deadline = time.monotonic() + 300
    while _done_entries(cat) < 20:
        assert proc.poll() is None, dedupe.finish()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    proc.send_signal(sig)
    code, out, err = dedupe.finish()
    assert len(list(trash_files(isolated_env).iterdir())) < 2000  # stopped mid-run

    [run] = cat.runs()
    if sig == signal.SIGTERM:
        assert code == 130, (out, err)
        assert err.strip().splitlines()[-1] == "dupfinder: interrupted"
        assert run.status == RunStatus.INTERRUPTED  # recorded by the run itself
    else:
        assert code == -signal.SIGKILL
        # the next command that looks (here cat.runs(), as `dupfinder journal` does) finds
        # it dead; PostgreSQL frees the dead session's lock within moments
        deadline = time.monotonic() + 30
        while cat.runs()[0].status == RunStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
    entries = cat.journal(run.id)
    assert cat.runs()[0].status == RunStatus.INTERRUPTED
    assert EntryState.PLANNED not in {e.state for e in entries}
    done = [e for e in entries if e.state == EntryState.DONE]
    assert 20 <= len(done) < 2000
    assert len(list(trash_files(isolated_env).iterdir())) == len(done)

    result = cat.undo()  # no run id: the latest run that acted is the killed one
    assert result.run_id == run.id
    assert not result.not_restored
    assert sorted(result.restored) == sorted(e.path for e in done)
    assert tree_checksums(root) == before
    assert list(trash_files(isolated_env).iterdir()) == []


# ------------------------------------------------------------------ 4. same path, two runs


def _trash_x(cat: Catalogue, root: Path, keeper: str, data: bytes) -> int:
    """Make ``copies/x`` a duplicate of ``keeper`` holding ``data``, scan, trash it."""
    x = write(root / "copies/x", data)
    write(root / keeper / "x", data)
    os.utime(root / keeper / "x", ns=(OLD, OLD))
    os.utime(x, ns=(NEW, NEW))
    cat.scan([root])
    plan = cat.plan_dedupe("trash", root)
    assert [(p.path, p.kept) for p in plan] == [(str(x), str(root / keeper / "x"))]
    run = cat.apply(plan)
    assert run.done == 1 and not x.exists()
    return run.id


def _in_trash(home: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in trash_files(home).iterdir())


A, B = b"A" * 3000, b"B" * 3000


def test_undo_restores_its_own_trashed_file_not_a_later_one_of_the_same_path(
        cat: Catalogue, tmp_path: Path, isolated_env: Path) -> None:
    root = tmp_path / "tree"
    run1 = _trash_x(cat, root, "keepA", A)
    run2 = _trash_x(cat, root, "keepB", B)  # same path, other content, trashed later
    x = root / "copies/x"

    assert cat.undo(run1).restored == [str(x)]
    assert x.read_bytes() == A
    assert _in_trash(isolated_env) == [B]  # run 2's file stays where it was

    x.rename(root / "x-from-run-1")
    assert cat.undo(run2).restored == [str(x)]
    assert x.read_bytes() == B
    assert _in_trash(isolated_env) == []


def test_undo_of_a_failed_run_does_not_take_a_later_runs_file(
        cat: Catalogue, tmp_path: Path, isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1 trashed x but died before journaling it (entry left ``planned``); run 2 then
    trashed a new x. Reading back what run 1 did must find run 1's file, not run 2's."""
    root = tmp_path / "tree"
    write(root / "copies/x", A)
    write(root / "keepA/x", A)
    os.utime(root / "keepA/x", ns=(OLD, OLD))
    cat.scan([root])
    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="boom"):
        m.setattr(recover_mod, "record_done", _raise)
        cat.apply(cat.plan_dedupe("trash", root))
    [failed] = cat.runs()
    time.sleep(1.1)  # the trash records deletions to the second: run 2's is newer
    run2 = _trash_x(cat, root, "keepB", B)
    x = root / "copies/x"

    result = cat.undo(failed.id)
    assert result.restored == [str(x)], result.not_restored
    assert x.read_bytes() == A
    assert _in_trash(isolated_env) == [B]
    x.unlink()
    assert cat.undo(run2).restored == [str(x)]
    assert x.read_bytes() == B


# ------------------------------------------------------------------ 5. undo twice


def test_undo_twice_says_already_undone_and_touches_nothing(
        cat: Catalogue, cli, db_url: str, small_tree: Path) -> None:
    cat.scan([small_tree])
    before = tree_checksums(small_tree)
    run = cat.apply(cat.plan_dedupe("trash", small_tree))
    first = cat.undo(run.id)
    assert len(first.restored) == 3 and not first.already_undone
    assert tree_checksums(small_tree) == before

    (small_tree / "b/0.dat").unlink()  # would come back if a second undo acted
    second = cat.undo(run.id)
    assert second.already_undone and second.restored == [] and second.not_restored == []
    assert not (small_tree / "b/0.dat").exists()
    res = cli("undo", str(run.id), "--db-url", db_url, "--host-label", HOST)
    assert res.code == 0, res.err
    assert res.out.strip() == f"run {run.id} is already undone; nothing to do"
    assert "already undone" in res.out
    assert not (small_tree / "b/0.dat").exists()
