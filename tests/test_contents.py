"""The table of contents stays equal to a recount of the rows, whatever writes the catalogue:
random sequences of scans (two hosts, whole trees and subfolders), file changes, removals,
hard links, dedupe runs and undo (hypothesis), on both backends."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupfinder import Catalogue, UsageError
from dupfinder.db import contents
from tests.helpers import HOST, blob

POOL = [b"", b"a", b"bb", b"cc", blob(7, 9000), blob(8, 9000), blob(9, 70_000)]
FOLDERS = ["x", "x/y", "z"]
NAMES = [f"{d}/f{i}" for d in FOLDERS for i in range(3)]

steps = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("link"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("scan"), st.sampled_from(["", *FOLDERS]), st.sampled_from([HOST, "nas"])),
    st.tuples(st.just("dedupe"), st.sampled_from(["hardlink", "symlink", "delete", "trash"])),
    st.tuples(st.just("undo")),
), min_size=3, max_size=10)


def check(cat: Catalogue) -> None:
    with cat.db.session() as s:
        assert contents.kept(s) == contents.recount(s)
        assert contents.linked_correctly(s) == 0


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps)
def test_kept_contents_equal_a_recount_after_any_sequence(db_url: str, plan: list[tuple]
                                                          ) -> None:
    base = Path(tempfile.mkdtemp(prefix="dupfinder-contents-"))
    root = base / "t"
    for name in NAMES[:4]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(POOL[4])
    try:
        with Catalogue.open(f"{db_url}", host=HOST, fallback=False) as cat:
            with cat.db.session() as s:  # each example starts from an empty catalogue
                from sqlalchemy import text

                for table in ("file_hashes", "contents", "pending_hashes", "action_journal",
                              "action_runs", "scan_metadata"):
                    s.execute(text(f"DELETE FROM {table}"))
                s.commit()
            cat.scan([root], processes=1)
            check(cat)
            for step in plan:
                _do(cat, root, step)
                check(cat)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _do(cat: Catalogue, root: Path, step: tuple) -> None:
    kind = step[0]
    if kind == "write":
        path = root / step[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_bytes(POOL[step[2]])
    elif kind == "remove":
        (root / step[1]).unlink(missing_ok=True)
    elif kind == "link":
        src, dst = root / step[1], root / step[2]
        if src.is_file() and not src.is_symlink() and src != dst:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)
            os.link(src, dst)
    elif kind == "scan":
        folder = root / step[1] if step[1] else root
        if folder.is_dir():
            with Catalogue.open(cat.db.url_string(), host=step[2], fallback=False) as other:
                other.scan([folder], processes=1, min_size=0)
    elif kind == "dedupe":
        try:
            plan = cat.plan_dedupe(step[1], root)
        except UsageError:  # nothing catalogued any more (every file linked or removed)
            return
        cat.apply(plan)
    elif kind == "undo":
        runs = [r for r in cat.runs() if r.files_done]
        if runs and runs[0].status not in ("undone",):
            cat.undo(runs[0].id)
