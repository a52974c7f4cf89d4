"""Catalogues that travel: a laptop's fallback merged into the shared catalogue, the shared
one taken offline into a SQLite file; later scans win, removals travel, a second merge
changes nothing, undo works from the merged catalogue; a merge is one transaction per host
(kill -9 leaves the target as it was) and never runs beside a scan of its host."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import URL, create_engine, select, text

from dupfinder import Catalogue, DatabaseError, SafetyError, ScanStatus, UsageError
from dupfinder.db import contents, scans
from dupfinder.db.locks import host_lock, runtime_dir
from dupfinder.db.models import FileHash, SchemaInfo
from tests.helpers import HOST, blob, write

PAIRS = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("postgresql", "sqlite"),
         ("postgresql", "postgresql")]


@pytest.fixture
def new_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Callable[[str], str]]:
    """Makes URLs of fresh, empty catalogues on either backend (dropped afterwards)."""
    made: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('cat') / 'catalogue.db'}"
        server: URL = request.getfixturevalue("pg_server")
        name = f"dupfinder_m_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    yield make
    if made:
        from tests.conftest import _drop_database

        for name in made:
            _drop_database(request.getfixturevalue("pg_server"), name)


def rows(cat: Catalogue, host: str | None = None) -> dict[tuple[str, str], tuple]:
    """Every row as (host, path) -> what a merge must carry over."""
    with cat.db.session() as s:
        q = select(FileHash.host, FileHash.path, FileHash.size, FileHash.mtime_ns,
                   FileHash.inode, FileHash.prefix_hash, FileHash.full_hash, FileHash.hash_algo)
        if host:
            q = q.where(FileHash.host == host)
        return {(r.host, r.path): tuple(r)[2:] for r in s.execute(q)}


def groups(cat: Catalogue) -> set[frozenset[tuple[str, str]]]:
    if not cat.hosts():  # no file catalogued (every file removed): no group, and groups()
        return set()  # would say the catalogue is empty
    return {frozenset((f.host, f.path) for f in g.files) for g in cat.groups()}


def sound(cat: Catalogue) -> None:
    with cat.db.session() as s:
        assert contents.kept(s) == contents.recount(s)
        assert contents.linked_correctly(s) == 0


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        write(root / name, data)
    return root


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_a_fallback_catalogue_merged_home_shows_the_laptops_files_in_cross_host_groups(
        pair: tuple[str, str], new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    photo, other = blob(1, 50_000), blob(2, 9_000)
    laptop = tree(tmp_path / "laptop", {"a/photo.jpg": photo, "a/only.txt": other,
                                        "b/photo copy.jpg": photo})
    nas = tree(tmp_path / "nas", {"photos/photo.jpg": photo, "x.bin": blob(3, 9_001)})
    source, target = new_url(pair[0]), new_url(pair[1])
    with Catalogue.open(source, host="laptop", fallback=False) as fb:
        fb.scan([laptop], processes=1)
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        shared.scan([nas], processes=1)

    r = cli("merge", source, "--db-url", target)
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == ("host laptop: 3 rows added, 0 replaced, 0 removed "
                                     "(0 as they were); 1 scans and 0 dedupe runs copied")
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        with Catalogue.open(source, host="laptop", fallback=False) as fb:
            assert rows(shared, "laptop") == rows(fb, "laptop")
        # the NAS had no reason to hash its photo (no other file of its size) until the
        # laptop's rows came: its next scan does, although nothing changed on its disk
        again = shared.scan([nas], processes=1)
        assert again.files_hashed == 1
        assert groups(shared) == {frozenset({
            ("laptop", f"{laptop}/a/photo.jpg"), ("laptop", f"{laptop}/b/photo copy.jpg"),
            ("nas", f"{nas}/photos/photo.jpg")})}
        sound(shared)
    r = cli("dupes", "--db-url", target, "--format", "fdupes")
    assert f"{laptop}/b/photo copy.jpg" in r.out and f"{nas}/photos/photo.jpg" in r.out

    again = cli("merge", source, "--db-url", target)  # the second time changes nothing
    assert again.out.splitlines()[0] == ("host laptop: 0 rows added, 0 replaced, 0 removed "
                                         "(3 as they were); 0 scans and 0 dedupe runs copied")


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_per_path_the_later_scan_wins_and_removals_travel(
        pair: tuple[str, str], new_url: Callable[[str], str], tmp_path: Path) -> None:
    root = tree(tmp_path / "t", {"keep": blob(1, 5000), "change": blob(2, 5000),
                                 "gone": blob(3, 5000), "sub/k2": blob(1, 5000)})
    online, offline = new_url(pair[1]), new_url(pair[0])
    with Catalogue.open(online, host=HOST, fallback=False) as shared:
        shared.scan([root], processes=1)
        before = rows(shared)
    (root / "change").write_bytes(blob(4, 7000))
    (root / "gone").unlink()
    write(root / "new", blob(2, 5000))
    time.sleep(0.01)
    with Catalogue.open(offline, host=HOST, fallback=False) as fb:
        fb.scan([root], processes=1)  # later: it decides every path under the root
        later = rows(fb)
    with Catalogue.open(online, host=HOST, fallback=False) as shared:
        [done] = shared.merge(offline)
        assert (done.added, done.replaced, done.removed) == (1, 1, 1)
        assert rows(shared) == later != before
        sound(shared)
        # the other way round the shared catalogue is the later one: nothing comes back
        (root / "new").unlink()
        shared.scan([root], processes=1)
        newest = rows(shared)
    with Catalogue.open(offline, host=HOST, fallback=False) as fb:
        [back] = fb.merge(online)
        assert back.removed == 1 and rows(fb) == newest
        sound(fb)
        [twice] = fb.merge(online)
        assert (twice.added, twice.replaced, twice.removed, twice.scans) == (0, 0, 0, 0)


def test_a_filtered_scan_removes_only_what_it_could_have_seen(
        new_url: Callable[[str], str], tmp_path: Path) -> None:
    root = tree(tmp_path / "t", {"big": blob(1, 9000), "small": b"tiny", ".hidden": b"h1"})
    target, source = new_url("sqlite"), new_url("sqlite")
    with Catalogue.open(target, host=HOST, fallback=False) as shared:
        shared.scan([root], processes=1)
    time.sleep(0.01)
    with Catalogue.open(source, host=HOST, fallback=False) as fb:
        fb.scan([root], processes=1, min_size=1000, hidden=False)
        assert set(rows(fb)) == {(HOST, f"{root}/big")}
    with Catalogue.open(target, host=HOST, fallback=False) as shared:
        [done] = shared.merge(source)
        assert done.removed == 0
        assert set(rows(shared)) == {(HOST, f"{root}/{n}") for n in ("big", "small", ".hidden")}


def test_a_catalogue_taken_offline_answers_unique_as_it_does_online(
        new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    pics = tree(tmp_path / "Pictures", {"on-nas.jpg": blob(1, 20_000),
                                        "not-on-nas.jpg": blob(2, 20_000)})
    nas = tree(tmp_path / "nas", {"backup/on-nas.jpg": blob(1, 20_000)})
    shared = new_url("postgresql")
    with Catalogue.open(shared, host="nas", fallback=False) as cat:
        cat.scan([nas], processes=1)
    with Catalogue.open(shared, host=HOST, fallback=False) as cat:
        cat.scan([pics], processes=1)
    with Catalogue.open(shared, host="nas", fallback=False) as cat:
        cat.scan([nas], processes=1)  # the second round: the NAS hashes its copy
    offline = tmp_path / "away" / "catalogue.db"
    online = cli("unique", str(pics), "--host", "nas", "--db-url", shared, "--format", "json",
                 "--host-label", HOST)
    assert online.code == 0 and "not-on-nas.jpg" in online.out and "/on-nas" not in online.out
    assert cli("merge", shared, "--db-url", str(offline)).code == 0
    away = cli("unique", str(pics), "--host", "nas", "--db-url", str(offline), "--format",
               "json", "--host-label", HOST)
    assert away.code == 0 and away.out == online.out


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_undo_of_a_run_made_offline_works_from_the_merged_catalogue(
        pair: tuple[str, str], new_url: Callable[[str], str], tmp_path: Path) -> None:
    root = tree(tmp_path / "t", {"a/one": blob(5, 30_000), "b/two": blob(5, 30_000)})
    source, target = new_url(pair[0]), new_url(pair[1])
    with Catalogue.open(source, host=HOST, fallback=False) as fb:
        fb.scan([root], processes=1)
        run = fb.apply(fb.plan_dedupe("trash", root, keep="shortest-path"))
        assert run.done == 1
    with Catalogue.open(target, host=HOST, fallback=False) as shared:
        [done] = shared.merge(source)
        assert done.runs == 1
        [merged] = shared.runs()
        result = shared.undo(merged.id)
        assert len(result.restored) == 1 and not result.not_restored
        sound(shared)
    assert (root / "a/one").read_bytes() == (root / "b/two").read_bytes() == blob(5, 30_000)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_dry_run_says_what_a_merge_would_do_and_changes_nothing(
        backend: str, new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    root = tree(tmp_path / "t", {"a": blob(1, 5000), "b": blob(1, 5000)})
    source, target = new_url("sqlite"), new_url(backend)
    with Catalogue.open(source, host="laptop", fallback=False) as fb:
        fb.scan([root], processes=1)
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        before = rows(shared)
    r = cli("merge", source, "--dry-run", "--db-url", target)
    assert r.code == 0
    assert r.out.splitlines() == [
        "host laptop: 2 rows would be added, 0 would be replaced, 0 would be removed (0 as "
        "they were); 1 scans and 0 dedupe runs would be copied",
        "dry run: nothing was changed"]
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        assert rows(shared) == before and shared.hosts() == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_catalogue_is_never_merged_into_itself(backend: str, new_url: Callable[[str], str],
                                                 tmp_path: Path, cli) -> None:
    url = new_url(backend)
    with Catalogue.open(url, host=HOST, fallback=False) as cat:
        cat.scan([tree(tmp_path / "t", {"a": b"x" * 10})], processes=1)
    if backend == "sqlite":
        link = tmp_path / "link.db"
        link.symlink_to(url.removeprefix("sqlite:///"))
        other = str(link)
    else:  # the same server and database by another name of the host
        assert "@127.0.0.1:" in url
        other = url.replace("@127.0.0.1:", "@localhost:")
    r = cli("merge", other, "--db-url", url)
    assert r.code == 2
    assert r.err.strip().endswith("is the catalogue in use itself; there is nothing to merge")
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_merge_and_a_scan_of_the_same_host_never_run_together(
        backend: str, new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    root = tree(tmp_path / "t", {"a": blob(1, 5000), "b": blob(1, 5000)})
    source, target = new_url("sqlite"), new_url(backend)
    with Catalogue.open(source, host=HOST, fallback=False) as fb:
        fb.scan([root], processes=1)
    with Catalogue.open(target, host=HOST, fallback=False) as shared:
        with shared.db.session() as s:  # a scan of the host is running (this process)
            running, _ = scans.start_scan(s, HOST, [str(root)], "xxh3-128", {}, os.getpid())
            s.commit()
        with pytest.raises(SafetyError, match=f"a scan of host {HOST} is running"):
            shared.merge(source)
        assert shared.hosts() == []
        with shared.db.session() as s:
            scans.finish_scan(s, running, ScanStatus.INTERRUPTED)
            s.commit()
        with host_lock(shared.db, HOST, exclusive=True):  # a merge into it is running
            r = cli("scan", str(root), "-q", "--db-url", target, "--host-label", HOST)
            assert r.code == 2
            assert r.err.strip() == (f"dupfinder: error: a merge into host {HOST} is running "
                                     "against this catalogue; wait for it to end, then scan "
                                     "again")
        [done] = shared.merge(source)
        assert done.added == 2


def _synthetic_source(url: str, n: int) -> None:
    """A SQLite catalogue of ``n`` rows of host ``laptop``, inserted directly (no files):
    a third of them with full hashes, every content shared by two rows."""
    import sqlite3

    with Catalogue.open(url, host="laptop", fallback=False):
        pass  # the schema
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("INSERT INTO scan_metadata (host, roots, options, algorithm, status, "
                     "started_at, files_seen, files_new, files_changed, files_unchanged, "
                     "files_removed, files_hashed, bytes_hashed, errors, changed_during_read, "
                     "duplicate_groups, wasted_bytes, stage_seconds) VALUES ('laptop', "
                     "'[\"/data\"]', '{}', 'xxh3-128', 'complete', '2026-01-01 00:00:00', "
                     "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}')")
        conn.executemany(
            "INSERT INTO file_hashes (host, path, name, size, mtime_ns, device, inode, nlink, "
            "prefix_hash, full_hash, hash_algo, first_seen, last_seen, scan_id) VALUES "
            "('laptop', ?, ?, ?, ?, 1, ?, 1, NULL, ?, ?, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', 1)",
            ((f"/data/d{i // 100:05d}/f{i:07d}", f"f{i:07d}", 1000 + (i // 6) % 5000, i, i,
              f"{i // 6:032x}" if i % 3 == 0 else None, "xxh3-128" if i % 3 == 0 else None)
             for i in range(n)))
        conn.execute("INSERT INTO contents (size, hash_algo, full_hash, files, inodes, hosts, "
                     "wasted) SELECT size, hash_algo, full_hash, count(*), count(*), 1, "
                     "(count(*) - 1) * size FROM file_hashes WHERE full_hash IS NOT NULL "
                     "GROUP BY size, hash_algo, full_hash")
        conn.execute("UPDATE file_hashes SET content_id = (SELECT c.id FROM contents c WHERE "
                     "c.full_hash = file_hashes.full_hash AND c.size = file_hashes.size AND "
                     "c.hash_algo = file_hashes.hash_algo) WHERE full_hash IS NOT NULL")
    with Catalogue.open(url, host="laptop", fallback=False) as cat:
        sound(cat)


def merging(url: str) -> bool:
    """Whether a merge holds a host's lock on the catalogue ``url`` (looked up without
    taking it: in /proc/locks for SQLite's lock file, in pg_locks for PostgreSQL)."""
    if url.startswith("sqlite"):
        st = Path(url.removeprefix("sqlite:///")).stat()
        lock = Path(runtime_dir()) / "dupfinder" / f"hosts-{st.st_dev}-{st.st_ino}.lock"
        if not lock.exists():
            return False
        inode = lock.stat().st_ino
        return any(line.split()[1:4] == ["FLOCK", "ADVISORY", "WRITE"]
                   and line.split()[5].endswith(f":{inode}")
                   for line in Path("/proc/locks").read_text().splitlines())
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :space AND mode = 'ExclusiveLock'"),
                {"space": int.from_bytes(b"dupm", "big")}))
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_merge_killed_mid_way_leaves_the_target_as_it_was_and_resumes_to_one_clean_merge(
        backend: str, new_url: Callable[[str], str], tmp_path: Path) -> None:
    source, target, clean = new_url("sqlite"), new_url(backend), new_url("sqlite")
    _synthetic_source(source, 150_000)
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        shared.scan([tree(tmp_path / "t", {"a": blob(1, 5000)})], processes=1)
        before = rows(shared)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "dupfinder", "merge", source, "-q",
                             "--db-url", target], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not merging(target):
        time.sleep(0.02)
    time.sleep(0.5)  # copying rows
    assert proc.poll() is None, "the merge ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        assert rows(shared) == before  # all or nothing
        [done] = shared.merge(source)
        assert done.added == 150_000
        sound(shared)
        merged = rows(shared)
    with Catalogue.open(clean, host="nas", fallback=False) as ref:
        ref.scan([tmp_path / "t"], processes=1)
        ref.merge(source)
        assert rows(ref) == merged


def back_to_schema_3(cat: Catalogue) -> None:
    """Make ``cat`` a catalogue of schema 3: no contents, no content_id."""
    pg = cat.backend == "postgresql"
    with cat.db.engine.begin() as conn:
        if not pg:  # PostgreSQL drops the index with its column
            conn.execute(text("DROP INDEX ix_file_hashes_content"))
        conn.execute(text("DROP TABLE contents" + (" CASCADE" if pg else "")))
        conn.execute(text("DROP TABLE pending_hashes"))
        conn.execute(text("ALTER TABLE file_hashes DROP COLUMN content_id"))
        conn.execute(SchemaInfo.__table__.update().values(version=3))


def test_an_older_sqlite_source_is_upgraded_in_a_copy_and_a_newer_one_refused(
        new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    source, target = new_url("sqlite"), new_url("sqlite")
    root = tree(tmp_path / "t", {"a": blob(1, 5000), "b": blob(1, 5000)})
    with Catalogue.open(source, host="laptop", fallback=False) as fb:
        fb.scan([root], processes=1)
        back_to_schema_3(fb)
    path = Path(source.removeprefix("sqlite:///"))
    stamp = path.read_bytes()
    r = cli("merge", source, "--db-url", target)
    assert r.code == 0, r.err
    assert path.read_bytes() == stamp  # the source file is never written
    with Catalogue.open(target, host="nas", fallback=False) as shared:
        assert len(groups(shared)) == 1
        sound(shared)
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_info SET version = 99")
    r = cli("merge", source, "--db-url", target)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "schema version 99, newer than this dupfinder understands" in r.err


def test_an_older_postgresql_source_is_upgraded_in_a_copy_on_its_server(
        new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    source = new_url("postgresql")
    target = new_url("sqlite")
    root = tree(tmp_path / "t", {"a": blob(1, 5000), "b": blob(1, 5000)})
    with Catalogue.open(source, host="nas", fallback=False) as nas:
        nas.scan([root], processes=1)
        back_to_schema_3(nas)
    r = cli("merge", source, "--db-url", target)
    assert r.code == 0, r.err
    with Catalogue.open(target, host="nas", fallback=False) as offline:
        assert len(groups(offline)) == 1
        sound(offline)
    engine = create_engine(source)
    try:
        with engine.connect() as conn:  # the source is as it was, and the copy is gone
            assert conn.execute(select(SchemaInfo.version)).scalar() == 3
            assert not conn.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'dupfinder_merge_%'")).all()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_large_merge_keeps_its_touched_contents_in_the_database(
        new_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        backend: str) -> None:
    from dupfinder.db import merge as merge_sql

    source, small, large = new_url("sqlite"), new_url(backend), new_url(backend)
    files = {f"d{i % 3}/f{i}": blob(i % 7, 3000 + i % 7) for i in range(40)}
    with Catalogue.open(source, host="laptop", fallback=False) as fb:
        fb.scan([tree(tmp_path / "t", files)], processes=1)
    nas_tree = tree(tmp_path / "n", {"x": blob(1, 3001), "y": blob(1, 3001)})
    for target in (small, large):
        with Catalogue.open(target, host="nas", fallback=False) as shared:
            shared.scan([nas_tree], processes=1)
    with Catalogue.open(small, host="nas", fallback=False) as shared:
        shared.merge(source)
        expected, expected_rows = groups(shared), rows(shared)
    # every few contents go to the temporary table, as in a merge of millions of rows
    monkeypatch.setattr(merge_sql, "TOUCHED_HELD", 2)
    with Catalogue.open(large, host="nas", fallback=False) as shared:
        shared.merge(source)
        assert groups(shared) == expected and rows(shared) == expected_rows
        sound(shared)


def test_bad_sources_are_one_line_errors_naming_what_was_typed(
        new_url: Callable[[str], str], tmp_path: Path, cli) -> None:
    target = new_url("sqlite")
    missing = tmp_path / "nowhere.db"
    r = cli("merge", str(missing), "--db-url", target)
    assert r.code == 2 and str(missing) in r.err and len(r.err.strip().splitlines()) == 1
    assert not missing.exists()
    plain = write(tmp_path / "plain.db", b"")
    r = cli("merge", str(plain), "--db-url", target)
    assert r.code == 2 and "holds no dupfinder catalogue" in r.err
    source = new_url("sqlite")
    with Catalogue.open(source, host="laptop", fallback=False) as fb:
        fb.scan([tree(tmp_path / "t", {"a": b"x" * 9})], processes=1)
    r = cli("merge", source, "--host", "nas", "--db-url", target)
    assert r.code == 2
    assert r.err.strip().endswith("host nas has nothing in " + source +
                                  " (it holds: laptop)")
    with Catalogue.open(target, fallback=False) as cat:
        with pytest.raises(UsageError, match="not a valid database URL"):
            cat.merge("postgresql://u:pw-9@127.0.0.1:notaport/x")
        with pytest.raises(DatabaseError) as err:
            cat.merge("postgresql://u:pw-9@127.0.0.1:1/x?connect_timeout=1")
        assert "127.0.0.1:1" in str(err.value) and "pw-9" not in str(err.value)


SMALL = [b"1" * 10, b"2" * 10, b"3" * 11, blob(1, 3000), blob(2, 3000)]  # read whole
NAMES = ["p/a", "p/b", "q/c", "q/r/d"]
merge_steps = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(["a", "b"]), st.sampled_from(NAMES),
              st.integers(0, len(SMALL) - 1)),
    st.tuples(st.just("remove"), st.sampled_from(["a", "b"]), st.sampled_from(NAMES)),
    st.tuples(st.just("scan"), st.sampled_from(["a", "b"]), st.sampled_from(["", "p", "q"])),
), min_size=2, max_size=12)


def model(trees: dict[str, Path]) -> set[frozenset[tuple[str, str]]]:
    """The groups by brute force: every non-empty file of both hosts, by content, where a
    content has two files or more."""
    by_content: dict[bytes, set[tuple[str, str]]] = {}
    for host, root in trees.items():
        for path in root.rglob("*"):
            if path.is_file() and path.stat().st_size:
                by_content.setdefault(path.read_bytes(), set()).add((host, str(path)))
    return {frozenset(files) for files in by_content.values() if len(files) > 1}


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=merge_steps)
def test_two_hosts_scanned_apart_and_merged_group_as_if_scanned_together(
        db_url: str, plan: list[tuple]) -> None:
    base = Path(tempfile.mkdtemp(prefix="dupfinder-merge-"))
    trees = {h: base / h for h in ("a", "b")}
    try:
        for root in trees.values():
            write(root / NAMES[0], SMALL[3])
        apart = {h: f"sqlite:///{base / f'{h}.db'}" for h in trees}
        with Catalogue.open(db_url, host="a", fallback=False) as target, \
                target.db.session() as s:  # each example starts from an empty catalogue
                for table in ("file_hashes", "contents", "pending_hashes", "action_journal",
                              "action_runs", "scan_metadata"):
                    s.execute(text(f"DELETE FROM {table}"))
                s.commit()
        for h, root in trees.items():
            with Catalogue.open(apart[h], host=h, fallback=False) as cat:
                cat.scan([root], processes=1)
        for step in plan:
            if step[0] == "write":
                write(trees[step[1]] / step[2], SMALL[step[3]])
            elif step[0] == "remove":
                (trees[step[1]] / step[2]).unlink(missing_ok=True)
            else:
                folder = trees[step[1]] / step[2]
                if folder.exists():
                    with Catalogue.open(apart[step[1]], host=step[1], fallback=False) as cat:
                        cat.scan([folder], processes=1)
        for h in trees:  # a last scan of each tree, apart
            with Catalogue.open(apart[h], host=h, fallback=False) as cat:
                cat.scan([trees[h]], processes=1)
        for h in trees:
            with Catalogue.open(db_url, host=h, fallback=False) as target:
                target.merge(apart[h])
        for h in trees:  # after the merge each host rescans once: sizes now meet across hosts
            with Catalogue.open(db_url, host=h, fallback=False) as target:
                target.scan([trees[h]], processes=1)
        with Catalogue.open(db_url, host="a", fallback=False) as target:
            assert groups(target) == model(trees)
            sound(target)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_command_that_reaches_the_server_again_names_the_unmerged_fallback(
        pg_url: str, tmp_path: Path, cli) -> None:
    import json

    from sqlalchemy.engine import make_url

    fallback = tmp_path / "fb" / "cat.db"
    server = make_url(pg_url)
    config = tmp_path / "config.json"

    def configure(port: int | None) -> None:
        config.write_text(json.dumps({
            "database": {"host": "127.0.0.1", "port": port or server.port,
                         "user": server.username, "password": server.password,
                         "database": server.database, "connect_timeout": 2},
            "fallback": {"sqlite_path": str(fallback)}}))

    from tests.pg_server import free_port

    root = tree(tmp_path / "t", {"a": blob(1, 5000), "b": blob(1, 5000)})
    configure(free_port())  # the server is down: the scan lands in the fallback
    r = cli("--config", str(config), "scan", str(root), "-q")
    assert r.code == 0 and fallback.exists()
    configure(None)  # up again
    r = cli("--config", str(config), "stats")
    assert r.code == 0
    [line] = [x for x in r.err.splitlines() if "fallback catalogue" in x]
    assert line.startswith(f"dupfinder: the fallback catalogue {fallback} holds scans not "
                           "merged here")
    assert line.endswith(f"to bring them in, run: dupfinder merge {fallback}")
    assert server.password not in r.err
    assert cli("--config", str(config), "merge", str(fallback), "-q").code == 0
    r = cli("--config", str(config), "stats")
    assert "fallback catalogue" not in r.err
