"""Property-based tests of dedupe over generated trees (hypothesis), on both backends."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupfinder import Action, Catalogue, KeepPolicy
from tests.helpers import blob, tree_checksums, write

ACTIONS = list(Action)
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

    def __init__(self, spec: list[tuple[str, int]]) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dupfinder-prop-"))
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
@given(spec=trees, action=st.sampled_from(ACTIONS), keep=st.sampled_from(KEEP_POLICIES))
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
