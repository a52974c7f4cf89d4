"""``dupfinder scan`` on real trees, on both backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text, update

from dupfinder import Catalogue
from dupfinder.db import schema
from dupfinder.db.engine import Database
from dupfinder.db.models import SCHEMA_VERSION, FileHash, ScanMetadata, SchemaInfo
from dupfinder.db.schema import schema_version
from dupfinder.db.stored_paths import order_key
from dupfinder.scan import pipeline
from dupfinder.scan.hashing import DEFAULT_PREFIX_SIZE
from dupfinder.scan.walk import normalize_roots
from tests.helpers import HOST, blob, catalogue_rows, groups, scan, tree_checksums, write


def test_identical_files_under_different_names_are_one_group(db: Database, tmp_path: Path
                                                              ) -> None:
    a = write(tmp_path / "t/a.txt", "same content")
    b = write(tmp_path / "t/sub/b.bin", "same content")
    c = write(tmp_path / "t/other/c", "same content")
    write(tmp_path / "t/unique", "something else entirely")
    summary = scan(db, tmp_path / "t")
    assert groups(db) == {frozenset({str(a), str(b), str(c)})}
    assert (summary.duplicate_groups, summary.files_in_groups) == (1, 3)
    assert summary.wasted_bytes == 2 * len("same content")
    assert summary.sync.new == 4 and summary.status == "complete"


def test_same_size_different_content_is_no_group(db: Database, tmp_path: Path) -> None:
    write(tmp_path / "x", "aaaa")
    write(tmp_path / "y", "bbbb")
    summary = scan(db, tmp_path)
    assert groups(db) == set()
    assert summary.files_hashed == 2  # same size: both were hashed


def test_unique_sizes_are_never_hashed(db: Database, tmp_path: Path) -> None:
    write(tmp_path / "x", "a")
    write(tmp_path / "y", "bb")
    summary = scan(db, tmp_path)
    assert summary.files_hashed == 0
    assert all(ph is None for _, ph, _ in catalogue_rows(db).values())


def test_same_prefix_different_tail(db: Database, tmp_path: Path) -> None:
    head = blob(1, DEFAULT_PREFIX_SIZE * 3)
    a = write(tmp_path / "a", head + b"tail-1")
    b = write(tmp_path / "b", head + b"tail-2")
    c = write(tmp_path / "c", head + b"tail-1")
    scan(db, tmp_path)
    rows = catalogue_rows(db)
    assert rows[str(a)][1] == rows[str(b)][1]  # same prefix hash
    assert rows[str(a)][2] != rows[str(b)][2]  # different full hash
    assert groups(db) == {frozenset({str(a), str(c)})}


def test_empty_files_only_with_include_empty(db: Database, tmp_path: Path) -> None:
    e1 = write(tmp_path / "e1", b"")
    e2 = write(tmp_path / "e2", b"")
    scan(db, tmp_path)
    assert groups(db) == set()
    assert str(e1) not in catalogue_rows(db)
    scan(db, tmp_path, min_size=0)
    assert groups(db) == {frozenset({str(e1), str(e2)})}


def test_hard_links_read_once_and_not_wasted(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", blob(2, 200_000))
    os.link(a, tmp_path / "a_link")
    b = write(tmp_path / "b", blob(2, 200_000))
    summary = scan(db, tmp_path)
    assert groups(db) == {frozenset({str(a), str(tmp_path / "a_link"), str(b)})}
    assert summary.wasted_bytes == 200_000  # two inodes, one extra copy
    # both stages read the a/a_link inode once, and b: each file and its bytes count once
    assert summary.files_hashed == 2 and summary.bytes_hashed == 2 * 200_000


def test_small_files_are_read_once_for_both_hashes(db: Database, tmp_path: Path) -> None:
    from dupfinder.scan.hashing import SMALL_FILE

    a = write(tmp_path / "a", blob(3, SMALL_FILE))
    b = write(tmp_path / "b", blob(3, SMALL_FILE))
    summary = scan(db, tmp_path)
    assert summary.files_hashed == 2 and summary.bytes_hashed == 2 * SMALL_FILE
    assert groups(db) == {frozenset({str(a), str(b)})}


def test_only_hard_links_are_not_a_duplicate_group(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "linked")
    os.link(a, tmp_path / "b")
    summary = scan(db, tmp_path)
    assert groups(db) == set()
    assert summary.files_hashed == 0  # one inode: its size is not shared


def test_symlinks_are_not_followed_by_default(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "r"
    target = write(root / "real/f", "content")
    write(tmp_path / "outside/g", "content")
    (root / "link_to_file").symlink_to(target)
    (root / "link_to_dir").symlink_to(tmp_path / "outside")
    (root / "loop").symlink_to(root)
    (root / "broken").symlink_to(tmp_path / "nope")
    summary = scan(db, root)
    assert set(catalogue_rows(db)) == {str(target)}
    assert summary.skipped_links == 4
    assert summary.problems == []


def test_follow_links_is_loop_safe_and_reports_broken(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "r"
    target = write(root / "real/f", "content")
    other = write(tmp_path / "outside/g", "content")
    (root / "link_to_file").symlink_to(target)
    (root / "link_to_dir").symlink_to(tmp_path / "outside")
    (root / "real/loop").symlink_to(root)
    (root / "broken").symlink_to(tmp_path / "nope")
    summary = scan(db, root, follow_links=True)
    rows = catalogue_rows(db)
    assert set(rows) == {str(target), str(root / "link_to_file"), str(root / "link_to_dir/g")}
    # the link to f is the same inode as f: only f and g's content copy count
    assert groups(db) == {frozenset({str(target), str(root / "link_to_file"),
                                     str(root / "link_to_dir/g")})}
    assert summary.wasted_bytes == len("content")
    assert [p for p, _ in summary.problems] == [str(root / "broken")]
    assert other.exists()


def test_non_utf8_and_newline_names(db: Database, tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    bad = os.path.join(root, b"caf\xe9.txt")
    nl = os.path.join(root, b"new\nline.txt")
    for p in (bad, nl):
        with open(p, "wb") as f:
            f.write(b"duplicate body")
    scan(db, tmp_path)
    assert groups(db) == {frozenset({os.fsdecode(bad), os.fsdecode(nl)})}
    # a rescan sees them unchanged (the stored form maps back exactly)
    assert scan(db, tmp_path).sync.unchanged == 2


def test_nesting_deeper_than_1000_levels(db: Database, tmp_path: Path) -> None:
    deep = str(tmp_path)
    for _ in range(1100):  # iteratively: os.makedirs would recurse 1100 deep
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
    deep = Path(deep)
    bottom = write(deep / "x", "deep copy")
    top = write(tmp_path / "x", "deep copy")
    try:
        scan(db, tmp_path)
        assert groups(db) == {frozenset({str(bottom), str(top)})}
    finally:  # shutil.rmtree (and pytest's cleanup) would recurse 1100 deep
        bottom.unlink()
        folder = str(deep)
        while folder != str(tmp_path):
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def test_deleted_file_leaves_the_catalogue(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "dup")
    b = write(tmp_path / "b", "dup")
    scan(db, tmp_path)
    assert groups(db) == {frozenset({str(a), str(b)})}
    b.unlink()
    summary = scan(db, tmp_path)
    assert summary.sync.removed == 1
    assert groups(db) == set()
    assert set(catalogue_rows(db)) == {str(a)}


def test_modified_file_with_same_size_is_rehashed(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "version-1")
    b = write(tmp_path / "b", "version-1")
    c = write(tmp_path / "c", "version-2")
    scan(db, tmp_path)
    assert groups(db) == {frozenset({str(a), str(b)})}
    st = b.stat()
    b.write_text("version-2")
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    summary = scan(db, tmp_path)
    assert summary.sync.changed == 1 and summary.sync.unchanged == 2
    assert summary.files_hashed == 1  # only b: a and c keep their hashes
    assert groups(db) == {frozenset({str(b), str(c)})}


def test_unchanged_rescan_hashes_nothing(db: Database, tmp_path: Path) -> None:
    for i in range(20):
        write(tmp_path / f"d{i % 3}/f{i}", blob(i % 5, 10_000))
    first = scan(db, tmp_path)
    second = scan(db, tmp_path)
    assert first.files_hashed > 0
    assert second.files_hashed == 0 and second.sync.unchanged == 20
    assert second.duplicate_groups == first.duplicate_groups == 5


def test_roots_coexist_and_overlaps_make_no_duplicate_rows(db: Database, tmp_path: Path
                                                           ) -> None:
    a = write(tmp_path / "one/a", "shared")
    b = write(tmp_path / "two/b", "shared")
    write(tmp_path / "one/inner/c", "other")
    scan(db, tmp_path / "one")
    scan(db, tmp_path / "two")
    assert groups(db) == {frozenset({str(a), str(b)})}  # across separate scans
    scan(db, tmp_path, tmp_path / "one", tmp_path / "one/inner")
    scan(db, tmp_path / "one/inner")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(FileHash)) == 3
    # scanning a sub-folder does not prune files elsewhere
    assert groups(db) == {frozenset({str(a), str(b)})}


def test_filters(db: Database, tmp_path: Path) -> None:
    write(tmp_path / "keep.txt", "x" * 100)
    write(tmp_path / "skip.log", "x" * 100)
    write(tmp_path / ".hidden.txt", "x" * 100)
    write(tmp_path / "big.txt", "x" * 5000)
    write(tmp_path / "sub/deep/d.txt", "x" * 100)
    write(tmp_path / "excluded_dir/e.txt", "x" * 100)
    scan(db, tmp_path, include=("*.txt",), exclude=("excluded_dir",), hidden=False,
         max_size=1000, max_depth=2)
    assert set(catalogue_rows(db)) == {str(tmp_path / "keep.txt")}
    scan(db, tmp_path, exclude=(f"{tmp_path}/sub/*",))
    assert str(tmp_path / "sub/deep/d.txt") not in catalogue_rows(db)
    assert str(tmp_path / ".hidden.txt") in catalogue_rows(db)


NAMES = st.sampled_from(["a", "b", "a b", "a-b", "ab", "a.b"])


@given(st.lists(st.lists(NAMES, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),
                max_size=8))
def test_nested_and_repeated_roots_are_walked_once_in_catalogue_order(roots: list[str]
                                                                      ) -> None:
    def below(path: str, folder: str) -> bool:
        return path != folder and path.startswith(folder + "/")

    # brute force: every root no other root contains, each once
    model = {r for r in roots if not any(below(r, o) for o in roots)}
    got = normalize_roots(roots)
    assert sorted(got) == sorted(model)
    assert got == sorted(got, key=lambda r: order_key(r + "/"))  # as the index holds them


def test_single_file_roots(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "dup!")
    b = write(tmp_path / "b", "dup!")
    write(tmp_path / "c", "dup!")
    scan(db, a, b)
    assert groups(db) == {frozenset({str(a), str(b)})}


def test_other_algorithm_rehashes_instead_of_mixing(db: Database, tmp_path: Path) -> None:
    a = write(tmp_path / "a", "same")
    b = write(tmp_path / "b", "same")
    scan(db, tmp_path)
    summary = scan(db, tmp_path, algorithm="sha256")
    assert summary.files_hashed == 2
    with db.session() as s:
        algos = set(s.scalars(select(FileHash.hash_algo)))
        lengths = {len(h) for h in s.scalars(select(FileHash.full_hash))}
    assert algos == {"sha256"} and lengths == {64}
    assert groups(db) == {frozenset({str(a), str(b)})}


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_with_fork_and_spawn(db: Database, tmp_path: Path, method: str) -> None:
    expected = set()
    for i in range(12):
        data = blob(i, 100_000 + i)
        pair = {str(write(tmp_path / f"a/{i}", data)), str(write(tmp_path / f"b/{i}", data))}
        expected.add(frozenset(pair))
    summary = scan(db, tmp_path, processes=2, batch_size=3, start_method=method)
    assert groups(db) == expected
    assert summary.files_hashed == 24  # 24 files, each read in both stages, count once


def test_file_changed_after_walk_is_left_pending(db: Database, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path / "a", "0123456789")
    b = write(tmp_path / "b", "0123456789")
    original = pipeline._Scan._walk_and_sync

    def walk_then_touch(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        b.write_text("9876543210")  # same size, new content and mtime, after the walk
        os.utime(b, ns=(0, b.stat().st_mtime_ns + 5_000_000_000))

    monkeypatch.setattr(pipeline._Scan, "_walk_and_sync", walk_then_touch)
    summary = scan(db, tmp_path)
    assert summary.changed_during_read == 1
    assert groups(db) == set()
    assert catalogue_rows(db)[str(b)][1:] == (None, None)  # not recorded with a hash
    monkeypatch.setattr(pipeline._Scan, "_walk_and_sync", original)
    summary = scan(db, tmp_path)  # next scan sees the change and settles it
    assert summary.sync.changed == 1
    assert catalogue_rows(db)[str(b)][2] is not None
    assert groups(db) == set() and catalogue_rows(db)[str(a)][2] is not None


def test_scan_records_history(db: Database, tmp_path: Path) -> None:
    write(tmp_path / "a", "x")
    s1 = scan(db, tmp_path)
    s2 = scan(db, tmp_path)
    with db.session() as s:
        rows = s.scalars(select(ScanMetadata).order_by(ScanMetadata.id)).all()
    assert [r.id for r in rows] == [s1.scan_id, s2.scan_id]
    assert all(r.status == "complete" and r.finished_at is not None for r in rows)
    assert rows[0].roots == [str(tmp_path)] and rows[0].files_seen == 1
    assert rows[0].algorithm == "xxh3-128" and "walk+sync" in rows[0].stage_seconds


def test_scan_never_modifies_the_tree(db: Database, tmp_path: Path) -> None:
    for i in range(10):
        write(tmp_path / f"f{i}", blob(i % 3, 9000))
    before = tree_checksums(tmp_path)
    atimes = {p: os.stat(p).st_atime_ns for p in before}
    scan(db, tmp_path)
    assert tree_checksums(tmp_path) == before
    assert {p: os.stat(p).st_atime_ns for p in before} == atimes


def test_sqlite_catalogue_inside_the_tree_is_not_scanned(tmp_path: Path) -> None:
    from dupfinder.config import load_settings
    from dupfinder.db.engine import open_database

    db = open_database(load_settings(db_url=f"sqlite:///{tmp_path / 'cat.db'}"))
    try:
        write(tmp_path / "a", "x")
        scan(db, tmp_path)
        assert set(catalogue_rows(db)) == {str(tmp_path / "a")}
    finally:
        db.dispose()


def test_settled_rescan_skips_hashing_queries_until_anything_changes(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dupfinder.db import rows

    looked: list[int] = []
    real = rows.rows_of_sizes

    def counted(conn, sizes):  # type: ignore[no-untyped-def]
        looked.extend(sizes)
        return real(conn, sizes)

    monkeypatch.setattr(rows, "rows_of_sizes", counted)
    mine = write(tmp_path / "mine/a", "shared content")
    write(tmp_path / "mine/b", "unique-ish content!")
    write(tmp_path / "elsewhere/c", "other")
    scan(db, tmp_path / "elsewhere")  # the catalogue holds rows outside mine/ too
    first = scan(db, tmp_path / "mine")
    assert looked and first.files_hashed == 0  # two sizes, each its own
    looked.clear()
    second = scan(db, tmp_path / "mine")
    assert looked == [] and second.files_hashed == 0  # settled: nothing looked up
    # another machine's file of the same size arrives: the next rescan must hash ours
    theirs = write(tmp_path / "nas/a", "shared content")
    scan(db, tmp_path / "nas", host="nas")
    third = scan(db, tmp_path / "mine")
    assert third.files_hashed == 1
    assert groups(db) == {frozenset({str(mine), str(theirs)})}
    # a different minimum size is not settled by the earlier scans either
    looked.clear()
    scan(db, tmp_path / "mine", min_size=2)
    assert looked


def test_unchanged_rescan_reuses_the_group_totals_until_anything_else_happens(
        cat: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "mine/a", "shared content")
    write(tmp_path / "mine/sub/b", "shared content")
    write(tmp_path / "mine/c", "another thing")
    first = cat.scan([tmp_path / "mine"])
    counted: list[int] = []
    real = pipeline.group_totals

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "group_totals", counting)
    def rescan(path: Path) -> tuple[int, int, int, bool]:
        """The rescan's totals, and whether it counted them (or took the last scan's)."""
        counted.clear()
        s = cat.scan([path])
        return s.duplicate_groups, s.files_in_groups, s.wasted_bytes, bool(counted)

    assert first.duplicate_groups == 1
    assert rescan(tmp_path / "mine") == (1, 2, 14, False)  # nothing changed: reused
    assert rescan(tmp_path / "mine/sub") == (0, 0, 0, True)  # other roots
    assert rescan(tmp_path / "mine") == (1, 2, 14, True)  # another scan came since
    assert rescan(tmp_path / "mine") == (1, 2, 14, False)
    # another host's scan, though it writes nothing under these roots, may have hashed
    write(tmp_path / "nas/x", "nothing alike")
    scan(cat.db, tmp_path / "nas", host="nas")
    assert rescan(tmp_path / "mine") == (1, 2, 14, True)
    # a dedupe run changes the catalogue without a newer row: counted again, and right
    run = cat.apply(cat.plan_dedupe("hardlink", tmp_path / "mine", scope="within"))
    assert run.done == 1
    assert rescan(tmp_path / "mine") == (0, 0, 0, True)
    assert rescan(tmp_path / "mine") == (0, 0, 0, False)


def _as_version_3(conn) -> None:  # type: ignore[no-untyped-def]
    """Turn a catalogue of this schema back into what version 3 had."""
    for statement in ("DROP TABLE contents", "DROP TABLE pending_hashes",
                      "DROP INDEX ix_file_hashes_content", "DROP INDEX ix_file_hashes_size",
                      "ALTER TABLE file_hashes DROP COLUMN content_id",
                      "CREATE INDEX ix_file_hashes_size_prefix ON file_hashes "
                      "(size, prefix_hash)",
                      "CREATE INDEX ix_file_hashes_groups ON file_hashes "
                      "(size, full_hash, hash_algo, host, device, inode)"):
        conn.execute(text(statement))
    conn.execute(update(SchemaInfo).values(version=3))


def _as_version_2(conn) -> None:  # type: ignore[no-untyped-def]
    _as_version_3(conn)
    conn.execute(text("ALTER TABLE scan_metadata DROP COLUMN files_in_groups"))
    conn.execute(text("DROP INDEX ix_file_hashes_groups"))
    conn.execute(text("CREATE INDEX ix_file_hashes_size_full ON file_hashes (size, full_hash)"))
    conn.execute(update(SchemaInfo).values(version=2))


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_catalogue_is_upgraded_without_loss(db_url: str, tmp_path: Path,
                                                     version: int) -> None:
    from dupfinder.db import contents

    for i in range(3):
        write(tmp_path / f"t/{i}/a", f"same {i}")
        write(tmp_path / f"t/{i}/b", f"same {i}")
        write(tmp_path / f"t/{i}/alone", f"alone {i} " * i)
    os.link(tmp_path / "t/0/a", tmp_path / "t/0/a-link")
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat:
        cat.scan([tmp_path / "t"])
        before = {frozenset(f.path for f in g.files) for g in cat.groups()}
        with cat.db.session() as s:
            rows = sorted(s.execute(select(FileHash.host, FileHash.path, FileHash.size,
                                           FileHash.prefix_hash, FileHash.full_hash,
                                           FileHash.hash_algo)).all())
        with cat.db.engine.begin() as conn:  # as a version-2 or -3 catalogue had it
            (_as_version_2 if version == 2 else _as_version_3)(conn)
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat:
        assert schema_version(cat.db.engine) == SCHEMA_VERSION == 4
        with cat.db.engine.connect() as conn:
            indexes = {i["name"] for i in inspect(conn).get_indexes("file_hashes")}
        assert {"ix_file_hashes_content", "ix_file_hashes_size"} <= indexes
        assert not indexes & {"ix_file_hashes_groups", "ix_file_hashes_size_full",
                              "ix_file_hashes_size_prefix"}
        with cat.db.session() as s:  # every row kept, and the contents built from them
            assert sorted(s.execute(select(FileHash.host, FileHash.path, FileHash.size,
                                           FileHash.prefix_hash, FileHash.full_hash,
                                           FileHash.hash_algo)).all()) == rows
            assert contents.kept(s) == contents.recount(s)
            assert contents.linked_correctly(s) == 0
        assert {frozenset(f.path for f in g.files) for g in cat.groups()} == before
        again = cat.scan([tmp_path / "t"])
        assert (again.duplicate_groups, again.files_in_groups) == (3, 7)
        assert again.files_hashed == 0  # nothing hashed twice
        assert cat.scan([tmp_path / "t"]).files_in_groups == 7


def test_a_cold_load_cut_short_gets_its_indexes_back(db_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The first scan into an empty catalogue drops the rows' secondary indexes and builds
    them at its end; one interrupted before that leaves them to the next command."""
    for i in range(20):
        write(tmp_path / f"t/{i}/a", f"twin {i}")
        write(tmp_path / f"t/{i}/b", f"twin {i}")

    def stop(*_a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline._Scan, "_hash_the_rest", stop)
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat, \
            pytest.raises(KeyboardInterrupt):
        cat.scan([tmp_path / "t"])
    monkeypatch.undo()
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat:
        with cat.db.engine.connect() as conn:
            indexes = {i["name"] for i in inspect(conn).get_indexes("file_hashes")}
        assert {"ix_file_hashes_content", "ix_file_hashes_size"} <= indexes
        again = cat.scan([tmp_path / "t"])
        assert again.duplicate_groups == 20
        with cat.db.session() as s:
            from dupfinder.db import contents

            assert contents.kept(s) == contents.recount(s)


@pytest.mark.parametrize("stopped_in", ["finish_cold_load", "recount_all"])
def test_a_cold_load_killed_after_its_merge_has_its_contents_counted(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped_in: str) -> None:
    """A cold load merges its hashes without counting them and counts every content at its
    end; stopped before that end or during it (after its indexes are back), the next open
    of the catalogue counts them (a rescan that finds nothing changed would otherwise
    report no duplicates)."""
    for i in range(20):
        write(tmp_path / f"t/{i}/a", f"twin {i}")
        write(tmp_path / f"t/{i}/b", f"twin {i}")

    def stop(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(schema, stopped_in, stop)
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat, \
            pytest.raises(KeyboardInterrupt):
        cat.scan([tmp_path / "t"])
    monkeypatch.undo()
    with Catalogue.open(db_url, host=HOST, fallback=False) as cat:
        with cat.db.session() as s:
            from dupfinder.db import contents

            assert contents.kept(s) == contents.recount(s)
        again = cat.scan([tmp_path / "t"])
        assert again.files_hashed == 0  # the killed load's hashes were kept
        assert (again.duplicate_groups, again.files_in_groups) == (20, 40)
