"""Property-based tests of dedupe over generated trees (hypothesis), on both backends."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupfinder import Action, Catalogue, KeepPolicy
from tests.helpers import blob, tree_checksums, write

ALL_ACTIONS = list(Action)
# reflink needs a file system that clones (btrfs here): tmp is not one, so reflink has its
# own property below, on a btrfs loop mount
ACTIONS = [a for a in Action if a != Action.REFLINK]
KEEP_POLICIES = list(KeepPolicy)

CONTENTS = [b"a", b"bb", b"cc", blob(7, 70_000), blob(8, 70_000), blob(9, 3000)]
FOLDERS = ["x", "x/y", "z", "z/deep/er"]

trees = st.lists(st.tuples(st.sampled_from(FOLDERS), st.integers(0, len(CONTENTS) - 1)),
                 min_size=2, max_size=12)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class Tree:
    """A generated tree in a fresh temporary folder, removed afterwards."""

    def __init__(self, spec: list[tuple[str, int]], where: Path | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dupfinder-prop-", dir=where))
        self.root = self.base / "tree"
        for i, (folder, content) in enumerate(spec):
            write(self.root / folder / f"f{i}", CONTENTS[content])

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def contents(self) -> set[bytes]:
        return {data for _, data in tree_checksums(self.root).values()}


def dedupe(cat: Catalogue, t: Tree, action: str, keep: str, do_apply: bool = True):
    to = t.base / "moved" if action == "move" else None
    plan = cat.plan_dedupe(action, t.root, keep=keep, to=to)
    return plan, cat.apply(plan) if do_apply else None


@SETTINGS
@given(spec=trees, action=st.sampled_from(ACTIONS), keep=st.sampled_from(KEEP_POLICIES))
def test_every_content_survives_any_dedupe(cat: Catalogue, spec, action: str, keep: str) -> None:
    with Tree(spec) as t:
        cat.scan([t.root])
        before = t.contents()
        planned, outcome = dedupe(cat, t, action, keep)
        assert t.contents() == before  # each distinct content still at one path at least
        assert outcome.done == len(planned) and not outcome.failed


@SETTINGS
@given(spec=trees, action=st.sampled_from(ALL_ACTIONS), keep=st.sampled_from(KEEP_POLICIES))
def test_a_dry_run_changes_nothing(cat: Catalogue, spec, action: str, keep: str) -> None:
    with Tree(spec) as t:
        cat.scan([t.root])
        before = tree_checksums(t.root)
        dedupe(cat, t, action, keep, do_apply=False)
        assert tree_checksums(t.root) == before


@SETTINGS
@given(spec=trees, action=st.sampled_from(ACTIONS), keep=st.sampled_from(KEEP_POLICIES),
       pick=st.integers(0, 11))
def test_a_file_modified_after_the_scan_is_not_touched(cat: Catalogue, spec, action: str,
                                                       keep: str, pick: int) -> None:
    with Tree(spec) as t:
        cat.scan([t.root])
        folder, _ = spec[pick % len(spec)]
        victim = t.root / folder / f"f{pick % len(spec)}"
        victim.write_bytes(b"changed after the scan")
        later = victim.stat().st_mtime_ns + 5_000_000_000
        os.utime(victim, ns=(later, later))
        dedupe(cat, t, action, keep)
        assert victim.read_bytes() == b"changed after the scan"
        assert not victim.is_symlink() and victim.stat().st_nlink == 1


@SETTINGS
@given(spec=trees, action=st.sampled_from(["trash", "move", "hardlink", "symlink"]),
       keep=st.sampled_from(KEEP_POLICIES))
def test_undo_restores_the_original_tree(cat: Catalogue, spec, action: str, keep: str) -> None:
    with Tree(spec) as t:
        cat.scan([t.root])
        before = tree_checksums(t.root)
        _, outcome = dedupe(cat, t, action, keep)
        result = cat.undo(outcome.id)
        assert result.not_restored == []
        assert tree_checksums(t.root) == before
        paths = list(before)
        assert all(not os.path.islink(p) for p in paths)
        assert len({os.stat(p).st_ino for p in paths}) == len(paths)


def saved_and_trimmed(cat: Catalogue, t: Tree, action: str, keep: str, drop: list[bool]):
    """A plan saved to a file, ``drop``'s entries deleted from it, read back: (the plan,
    the paths of the dropped entries)."""
    to = t.base / "moved" if action == "move" else None
    plan_file = t.base / "plan.json"
    cat.save_plan(cat.plan_dedupe(action, t.root, keep=keep, to=to), plan_file)
    doc = json.loads(plan_file.read_text(encoding="utf-8"))
    dropped = [e["path"] for i, e in enumerate(doc["entries"]) if drop[i % len(drop)]]
    doc["entries"] = [e for i, e in enumerate(doc["entries"]) if not drop[i % len(drop)]]
    plan_file.write_text(json.dumps(doc), encoding="utf-8")
    return cat.load_plan(plan_file), dropped


@SETTINGS
@given(spec=trees, action=st.sampled_from(ACTIONS), keep=st.sampled_from(KEEP_POLICIES),
       drop=st.lists(st.booleans(), min_size=1, max_size=12))
def test_applying_any_subset_of_a_saved_plan_keeps_every_content(
        cat: Catalogue, spec, action: str, keep: str, drop: list[bool]) -> None:
    with Tree(spec) as t:
        cat.scan([t.root])
        before = tree_checksums(t.root)
        plan, dropped = saved_and_trimmed(cat, t, action, keep, drop)
        outcome = cat.apply(plan)
        assert t.contents() == set(data for _, data in before.values())
        assert outcome.done == len(plan) and not outcome.failed and not outcome.skipped
        for path in dropped:  # an entry deleted from the plan is not done
            assert not os.path.islink(path) and before[path] == tree_checksums_of(path)
        assert {p.path for p in plan}.isdisjoint(dropped)


def tree_checksums_of(path: str) -> tuple[int, bytes]:
    return os.stat(path).st_mtime_ns, Path(path).read_bytes()


@settings(SETTINGS, max_examples=10)
@given(spec=trees, keep=st.sampled_from(KEEP_POLICIES),
       drop=st.lists(st.booleans(), min_size=1, max_size=12), pick=st.integers(-1, 11))
def test_reflink_on_btrfs_keeps_every_file_and_undo_restores_it(
        cat: Catalogue, btrfs: Path, spec, keep: str, drop: list[bool], pick: int) -> None:
    """On btrfs, any subset of a reflink plan (and a file changed after the scan, when
    ``pick`` names one) leaves every path a file of its own with its content and mtime,
    and undo leaves the tree as it was."""
    with Tree(spec, where=btrfs) as t:
        cat.scan([t.root])
        victim = None
        if pick >= 0:
            folder, _ = spec[pick % len(spec)]
            victim = t.root / folder / f"f{pick % len(spec)}"
            victim.write_bytes(b"changed after the scan")
            later = victim.stat().st_mtime_ns + 5_000_000_000
            os.utime(victim, ns=(later, later))
        before = tree_checksums(t.root)
        plan, dropped = saved_and_trimmed(cat, t, "reflink", keep, drop)
        outcome = cat.apply(plan)
        assert not outcome.failed
        changed = {"changed since the scan", "the copy that stays changed since the scan"}
        assert all(victim is not None and why in changed for _, why in outcome.skipped)
        assert outcome.done == len(plan) - len(outcome.skipped)
        assert tree_checksums(t.root) == before  # every path: same content and mtime
        paths = list(before)
        assert all(not os.path.islink(p) and os.stat(p).st_nlink == 1 for p in paths)
        assert len({os.stat(p).st_ino for p in paths}) == len(paths)
        result = cat.undo(outcome.id)
        assert result.not_restored == []
        assert tree_checksums(t.root) == before
        assert len({os.stat(p).st_ino for p in paths}) == len(paths)
        assert not [p for p in t.root.rglob("*") if "dupfinder" in p.name]
