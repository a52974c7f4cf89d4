"""Never the last copy, round three: two catalogues acting on one tree at once, undo killed
between a file's restore and its journal entry, plan entries that name other files than the
kernel would open or files the catalogue never held, chained plans, and trash folders. Each
shown through the library (:class:`dupfinder.Catalogue`) or real ``python -m dupfinder``
processes, on both backends where a database is involved."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dupfinder.db.journal as journal_mod
from dupfinder import Catalogue
from dupfinder.db.locks import action_lock
from dupfinder.errors import SafetyError
from dupfinder.states import EntryState, RunStatus
from tests.helpers import HOST, blob, write

OLD, NEW = 1_600_000_000_000_000_000, 1_700_000_000_000_000_000


def pairs(root: Path, n: int) -> dict[int, tuple[Path, Path, bytes]]:
    """``n`` pairs ``a/fN`` (older) and ``b/fN`` (newer) of equal files."""
    made = {}
    for i in range(n):
        data = f"pair {i:06d} ".encode().ljust(64, b".")
        a, b = write(root / "a" / f"f{i}", data), write(root / "b" / f"f{i}", data)
        os.utime(a, ns=(OLD, OLD))
        os.utime(b, ns=(NEW + i, NEW + i))
        made[i] = (a, b, data)
    return made


def start(out: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``python -m dupfinder ARGS`` with its output in files (a long plan never blocks on a
    full pipe)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "stdout").open("w") as o, (out / "stderr").open("w") as e:
        return subprocess.Popen([sys.executable, "-m", "dupfinder", *args], stdout=o,
                                stderr=e, env=env)


def lost_pairs(made: dict[int, tuple[Path, Path, bytes]]) -> list[int]:
    """Pairs with no copy left holding their content."""
    return [i for i, (a, b, data) in made.items()
            if not any(p.exists() and p.read_bytes() == data for p in (a, b))]


# ------------------------------------------------------------- 1. two catalogues at once


@pytest.mark.parametrize("runtime", ["shared", "separate"])
def test_two_catalogues_acting_at_once_never_delete_both_copies(
        db_url: str, tmp_path: Path, runtime: str) -> None:
    """The issue's run: 3,000 pairs scanned into two catalogues, deleted at once with
    opposite keepers. With one runtime folder the machine lock lets one run act; with two
    (two users, say) the per-file locks still keep one copy of every pair, and neither run
    takes the other's probe links for an overlay mount."""
    root = tmp_path / "t"
    made = pairs(root, 3000)
    second = f"sqlite:///{tmp_path / 'c2.db'}"
    for url in (db_url, second):
        with Catalogue.open(url, host=HOST, fallback=False) as cat:
            assert cat.scan([root]).duplicate_groups == 3000
    procs = []
    for n, (url, keep) in enumerate(((db_url, "oldest"), (second, "newest"))):
        env = os.environ.copy()
        if runtime == "separate":
            own = tmp_path / f"run{n}"
            own.mkdir(mode=0o700)
            env["XDG_RUNTIME_DIR"] = str(own)
        procs.append(start(tmp_path / f"out{n}", env, "dedupe", str(root), "--action",
                           "delete", "--keep", keep, "--apply", "-y", "--db-url", url,
                           "--host-label", HOST))
    codes = [p.wait(timeout=600) for p in procs]
    outs = [((tmp_path / f"out{n}" / "stdout").read_text(),
             (tmp_path / f"out{n}" / "stderr").read_text()) for n in range(2)]
    assert lost_pairs(made) == []
    left = sum(p.exists() for a, b, _ in made.values() for p in (a, b))
    assert left == 3000, outs  # exactly one copy of each pair went
    for code, (out, err) in zip(codes, outs, strict=True):
        assert "seen through another mount" not in err
        if code == 2:  # refused at once: only with one runtime folder
            assert runtime == "shared" and "another dedupe or undo is running" in err, err
        else:
            assert code == 0, (out, err)
            assert re.search(r"run \d+: \d+ done, \d+ skipped, 0 failed", out), out


def test_the_catalogue_lock_is_one_for_a_link_to_the_catalogue(tmp_path: Path) -> None:
    real = tmp_path / "cat.db"
    (tmp_path / "alias.db").symlink_to(real)
    with Catalogue.open(f"sqlite:///{real}", host=HOST) as one, \
            Catalogue.open(f"sqlite:///{tmp_path / 'alias.db'}", host=HOST) as two, \
            action_lock(one.db, HOST), pytest.raises(SafetyError, match="another dedupe"), \
            action_lock(two.db, HOST):
        pass


# ------------------------------------------------------------- 5. undo killed mid-way


def symlink_run(cat: Catalogue, root: Path, n: int) -> tuple[dict[int, tuple[Path, Path,
                                                                            bytes]], int]:
    made = pairs(root, n)
    cat.scan([root])
    run = cat.apply(cat.plan_dedupe("symlink", root / "b", keep="oldest"))
    assert run.done == n
    assert all(b.is_symlink() for _, b, _ in made.values())
    return made, run.id


def test_undo_cut_off_between_restoring_a_file_and_journaling_it_finishes_next_time(
        cat: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 right after a link became a copy again, before the journal said so: the
    next undo recognises the restored file instead of reporting "no longer holds the
    link" for good."""
    made, run_id = symlink_run(cat, tmp_path / "t", 30)
    real = journal_mod.set_state
    calls = {"n": 0}

    def dies_at_the_tenth(session, entry_id, state, *a, **k):  # type: ignore[no-untyped-def]
        if state == EntryState.UNDONE:
            calls["n"] += 1
            if calls["n"] == 10:
                raise SystemExit("killed")  # the file is back; its entry is not
        return real(session, entry_id, state, *a, **k)

    monkeypatch.setattr(journal_mod, "set_state", dies_at_the_tenth)
    with pytest.raises(SystemExit):
        cat.undo(run_id)
    monkeypatch.setattr(journal_mod, "set_state", real)
    result = cat.undo(run_id)
    assert result.not_restored == []
    assert {r.id: r.status for r in cat.runs()}[run_id] == RunStatus.UNDONE
    for _a, b, data in made.values():
        assert not b.is_symlink() and b.read_bytes() == data
    assert len(list(cat.groups(tmp_path / "t"))) == 30  # every file back in its group


def test_undo_killed_with_sigkill_then_run_again_restores_everything(
        cat: Catalogue, db_url: str, tmp_path: Path) -> None:
    made, run_id = symlink_run(cat, tmp_path / "t", 1500)
    proc = start(tmp_path / "out", os.environ.copy(), "undo", str(run_id), "--db-url", db_url,
                 "--host-label", HOST)
    deadline = time.monotonic() + 120
    while sum(not b.is_symlink() for _, b, _ in made.values()) < 200:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = cat.undo(run_id)
    assert result.not_restored == []
    for _, b, data in made.values():
        assert not b.is_symlink() and b.read_bytes() == data
    assert {r.id: r.status for r in cat.runs()}[run_id] == RunStatus.UNDONE
    assert len(list(cat.groups(tmp_path / "t"))) == 1500


# ------------------------------------------------------------- 4. "." and ".." in paths


def linked_tree(tmp_path: Path) -> Path:
    """``t/real/sub``, ``t/lnk -> real/sub``; ``t/b`` and ``t/real/b`` differ, and
    ``t/real/b`` equals ``t/real/sub/x``."""
    t = tmp_path / "t"
    write(t / "real/sub/x", blob(1, 5000))
    write(t / "real/b", blob(1, 5000))
    write(t / "b", blob(2, 5000))
    (t / "lnk").symlink_to("real/sub")
    return t


def test_a_plan_keeper_with_dotdot_is_refused(cli, cat: Catalogue, db_url: str,
                                              tmp_path: Path) -> None:
    t = linked_tree(tmp_path)
    cat.scan([t])
    plan_file = tmp_path / "plan.json"
    assert cli("dedupe", t, "--action", "symlink", "--save-plan", plan_file, "--db-url",
               db_url, "--host-label", HOST).code == 0
    doc = json.loads(plan_file.read_text())
    (entry,) = doc["entries"]
    entry["path"], entry["keep"] = str(t / "real/sub/x"), str(t / "lnk/../b")
    plan_file.write_text(json.dumps(doc))
    res = cli("apply", plan_file, "-y", "--db-url", db_url, "--host-label", HOST)
    assert res.code == 2 and "'..' segment" in res.err, res.err
    assert (t / "real/sub/x").read_bytes() == blob(1, 5000) and not (t / "real/sub/x").is_symlink()

    plan = cat.plan_dedupe("symlink", t)  # a library caller's own edit is refused too
    plan.actions = [plan.actions[0].__class__(**{**plan.actions[0].__dict__,
                                                 "kept": f"{t}/lnk/../b"})]
    with pytest.raises(SafetyError, match="'..' segments"):
        cat.apply(plan)


def test_scan_of_a_link_then_dotdot_catalogues_what_the_kernel_opens(
        cat: Catalogue, tmp_path: Path) -> None:
    t = linked_tree(tmp_path)
    summary = cat.scan([t / "lnk" / ".."])  # the kernel's lnk/.. is t/real, not t
    assert summary.roots == [str(t / "real")]
    paths = {f.path for g in cat.groups() for f in g.files}
    assert paths == {str(t / "real/b"), str(t / "real/sub/x")}


# ------------------------------------------------------------- 6. --to through a linked root


def test_move_target_inside_the_tree_through_a_linked_root_is_refused(
        cli, cat: Catalogue, db_url: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    write(real / "x", blob(3, 4000))
    write(real / "y", blob(3, 4000))
    (tmp_path / "lnk").symlink_to(real)
    cat.scan([tmp_path / "lnk"])
    with pytest.raises(SafetyError, match="inside the scanned folder"):
        cat.plan_dedupe("move", tmp_path / "lnk", to=real / "moved")
    res = cli("dedupe", tmp_path / "lnk", "--action", "move", "--to", real / "moved",
              "--apply", "-y", "--db-url", db_url, "--host-label", HOST)
    assert res.code == 2 and "inside the scanned folder" in res.err
    assert sorted(os.listdir(real)) == ["x", "y"]


# ------------------------------------------------------------- 7. entries never catalogued


def test_plan_entries_the_catalogue_never_held_are_skipped(cli, cat: Catalogue, db_url: str,
                                                           tmp_path: Path) -> None:
    t = tmp_path / "t"
    write(t / "a", blob(4, 3000))
    write(t / "b", blob(4, 3000))
    elsewhere = tmp_path / "never-scanned"
    write(elsewhere / "c", blob(4, 3000))
    cat.scan([t])
    plan_file = tmp_path / "plan.json"
    assert cli("dedupe", t, "--action", "delete", "--save-plan", plan_file, "--db-url",
               db_url, "--host-label", HOST).code == 0
    doc = json.loads(plan_file.read_text())
    doc["entries"].append({**doc["entries"][0], "path": str(elsewhere / "c")})
    plan_file.write_text(json.dumps(doc))
    res = cli("apply", plan_file, "-y", "--db-url", db_url, "--host-label", HOST)
    assert res.code == 0, res.err
    assert "1 done, 1 skipped" in res.out
    assert "not a file this host's catalogue holds" in res.err
    assert (elsewhere / "c").exists()


def test_plan_entries_outside_the_plans_folders_are_skipped(cat: Catalogue,
                                                             tmp_path: Path) -> None:
    for d in ("t/in", "t/out"):
        write(tmp_path / d / "a", blob(5, 3000))
        write(tmp_path / d / "b", blob(5, 3000))
    cat.scan([tmp_path / "t"])
    plan = cat.plan_dedupe("delete", tmp_path / "t" / "in", scope="within")
    whole = cat.plan_dedupe("delete", tmp_path / "t")
    plan.actions += [p for p in whole if "/out/" in p.path]
    run = cat.apply(plan)
    assert run.skipped_by_reason()["outside the plan's folders"] >= 1
    assert all((tmp_path / "t/out" / n).exists() for n in "ab")


# ------------------------------------------------------------- chains


def test_a_plan_chaining_an_action_onto_a_kept_file_is_refused(cat: Catalogue,
                                                                tmp_path: Path) -> None:
    t = tmp_path / "t"
    for n in "xyz":
        write(t / n, blob(6, 3000))
    cat.scan([t])
    plan = cat.plan_dedupe("symlink", t)
    first = plan.actions[0]
    chained = first.__class__(**{**first.__dict__, "path": first.kept,
                                 "kept": next(str(t / n) for n in "xyz"
                                              if str(t / n) not in (first.path, first.kept))})
    plan.actions = [first, chained]
    with pytest.raises(SafetyError, match="which another of its entries keeps"):
        cat.apply(plan)
    assert not any((t / n).is_symlink() for n in "xyz")


# ------------------------------------------------------------- 8. trash folders


def trash_tree(root: Path, home: Path) -> dict[str, Path]:
    data = blob(7, 6000)
    made = {
        "kept": write(root / "photos/p.jpg", data),
        "volume": write(root / ".Trash-1000/files/p.jpg", data),
        "windows": write(root / "$RECYCLE.BIN/S-1-5/p.jpg", data),
        "home": write(home / "data/Trash/files/p.jpg", data),
    }
    for n, p in enumerate(made.values()):  # every trashed copy is older than the kept one
        t = OLD + (10 if p == made["kept"] else n) * 1_000_000_000
        os.utime(p, ns=(t, t))
    return made


def test_trash_folders_are_not_scanned_unless_asked(cat: Catalogue, tmp_path: Path,
                                                   isolated_env: Path) -> None:
    made = trash_tree(tmp_path / "t", isolated_env)
    summary = cat.scan([tmp_path / "t", isolated_env / "data"])
    assert summary.sync.seen == 1 and summary.duplicate_groups == 0
    summary = cat.scan([tmp_path / "t", isolated_env / "data"], include_trash=True)
    assert summary.sync.seen == 4 and summary.duplicate_groups == 1
    plan = cat.plan_dedupe("delete", tmp_path / "t", keep="oldest")
    assert {p.kept for p in plan} == {str(made["kept"])}  # never the older copy in a trash
    assert {p.path for p in plan} == {str(made["volume"]), str(made["windows"])}


def test_a_group_only_in_trash_folders_is_left_alone(cli, cat: Catalogue, db_url: str,
                                                     tmp_path: Path) -> None:
    t = tmp_path / "t"
    write(t / ".Trash-0/files/a", blob(8, 3000))
    write(t / ".Trashes/501/a", blob(8, 3000))
    res = cli("scan", t, "--include-trash", "-q", "--db-url", db_url, "--host-label", HOST)
    assert res.code == 0, res.err
    assert len(list(cat.groups(t))) == 1
    assert len(cat.plan_dedupe("delete", t)) == 0


# ------------------------------------------------------------- smaller


def test_journal_closes_dead_runs_while_another_run_goes_on(cat: Catalogue) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with cat.db.session() as s:
        stale = journal_mod.start_run(s, HOST, "delete", {}, dead.pid)
        s.commit()
    with action_lock(cat.db, HOST):  # a live run holds the lock
        with cat.db.session() as s:
            live = journal_mod.start_run(s, HOST, "delete", {}, os.getpid())
            s.commit()
        status = {r.id: r.status for r in cat.runs()}
    assert status[stale] == RunStatus.INTERRUPTED
    assert status[live] == RunStatus.RUNNING


def test_a_reference_missing_its_host_or_folder_is_malformed(cat: Catalogue, cli, db_url: str,
                                                             tmp_path: Path) -> None:
    write(tmp_path / "t/a", "x")
    cat.scan([tmp_path / "t"])
    for given in ("nas:", ":photos"):
        res = cli("dedupe", tmp_path / "t", "--action", "delete", "--reference", given,
                  "--db-url", db_url, "--host-label", HOST)
        assert res.code == 2 and "malformed reference" in res.err, res.err
