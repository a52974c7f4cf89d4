"""Database layer on both backends: schema, bulk statements, fallback, passwords."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, func, select, text, update
from sqlalchemy.engine import make_url

from dupfinder.config import load_settings
from dupfinder.db import contents, file_rows, pending, queries
from dupfinder.db import rows as catalog_rows
from dupfinder.db.engine import Database, open_database, worker_database
from dupfinder.db.models import SCHEMA_VERSION, FileHash, SchemaInfo, utcnow
from dupfinder.db.schema import schema_version
from dupfinder.db.stored_paths import order_key
from dupfinder.errors import DatabaseError
from dupfinder.scan.sync import Sync, SyncCounts
from dupfinder.scan.walk import Entry, Skipped
from tests.pg_server import free_port


def rows(n: int, host: str = "h1", base: str = "/data", size: int = 100, **extra) -> list[dict]:
    now = utcnow()
    return [
        {"host": host, "path": f"{base}/f{i}", "name": f"f{i}", "size": size, "mtime_ns": 1000,
         "device": 1, "inode": 10_000 + i, "nlink": 1, "scan_id": 1, "first_seen": now,
         "last_seen": now, **extra}
        for i in range(n)
    ]


def count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(FileHash)) or 0


def test_schema_created_with_version(db: Database) -> None:
    assert schema_version(db.engine) == SCHEMA_VERSION
    with db.engine.connect() as conn:
        for table in ("file_hashes", "scan_metadata", "action_runs", "action_journal"):
            assert conn.dialect.has_table(conn, table)


def test_reopening_keeps_data(db: Database, db_url: str) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(3))
        s.commit()
    again = open_database(load_settings(db_url=db_url), no_fallback=True)
    try:
        assert count(again) == 3
    finally:
        again.dispose()


def test_newer_schema_version_is_refused(db: Database, db_url: str) -> None:
    with db.session() as s:
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION + 1))
        s.commit()
    with pytest.raises(DatabaseError, match="newer than this dupfinder"):
        open_database(load_settings(db_url=db_url), no_fallback=True)


def test_upsert_inserts_then_updates_without_duplicates(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(50))
        file_rows.upsert_files(s, rows(50))  # same rows again: no new rows
        s.commit()
    assert count(db) == 50


def test_upsert_keeps_hashes_of_unchanged_and_clears_changed(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(2))
        s.execute(update(FileHash).values(prefix_hash="p", full_hash="f", hash_algo="md5"))
        changed = rows(2)
        changed[1]["mtime_ns"] = 2000
        file_rows.upsert_files(s, changed)
        s.commit()
        got = dict(s.execute(select(FileHash.path, FileHash.full_hash)).all())
    assert got == {"/data/f0": "f", "/data/f1": None}


def test_same_path_on_two_hosts_are_two_rows(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(5, host="laptop") + rows(5, host="nas"))
        s.commit()
    assert count(db) == 10


def entries(paths: list[str], size: int = 100) -> list[Entry]:
    return [Entry(p, p.rpartition("/")[2], size, 1000, 1, 10_000 + i, 1)
            for i, p in enumerate(paths)]


def synced(db: Database, walked: list[Entry | Skipped], scan_id: int, roots: list[str]
           ) -> tuple[SyncCounts, list[int]]:
    """Sync a walk as a scan does; returns the counts and the ids the writer reported."""
    reported: list[int] = []
    with db.engine.connect() as conn:
        writer = catalog_rows.RowWriter(conn, "h1", scan_id, utcnow(),
                                lambda pairs: reported.extend(i for i, _ in pairs))
        sync = Sync(catalog_rows.rows_under(conn, "h1", roots, scan_id), writer,
                    lambda seen: reported.append(seen.id))
        for e in walked:
            sync.feed(e)
        return sync.finish(), reported


def under(db: Database, roots: list[str], host: str = "h1") -> list[str]:
    with db.engine.connect() as conn:
        return [r.path for r in catalog_rows.rows_under(conn, host, roots, scan_id=0)]


def test_a_sync_finds_new_changed_unchanged_and_gone(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_rows, "FLUSH_ROWS", 2)  # several flushes, each committed
    monkeypatch.setattr(catalog_rows, "PAGE", 2)  # the catalogue read back in several pages
    counts, ids = synced(db, entries(["/d/a", "/d/b", "/d/c"]), 1, ["/d"])
    assert counts == SyncCounts(seen=3, new=3, changed=0, unchanged=0, removed=0)
    assert len(set(ids)) == 3
    again: list[Entry | Skipped] = list(entries(["/d/a", "/d/b", "/d/x"]))
    again[1] = again[1]._replace(size=5)
    again.insert(2, Skipped("/d/c", False))  # seen but not selected: its row stays
    counts, _ = synced(db, again, 2, ["/d"])
    assert counts == SyncCounts(seen=3, new=1, changed=1, unchanged=1, removed=0)
    with db.session() as s:
        sizes = {r.path: r.size for r in s.execute(select(FileHash.path, FileHash.size))}
    assert sizes == {"/d/a": 100, "/d/b": 5, "/d/c": 100, "/d/x": 100}
    counts, _ = synced(db, entries(["/d/b"], size=5), 3, ["/d"])
    assert counts.removed == 3 and under(db, ["/d"]) == ["/d/b"]


def test_a_skipped_folder_keeps_every_row_below_it(db: Database) -> None:
    synced(db, entries(["/d/a/x", "/d/a/y/z", "/d/b"]), 1, ["/d"])
    counts, _ = synced(db, [Skipped("/d/a", True), *entries(["/d/b"])], 2, ["/d"])
    assert counts.removed == 0 and under(db, ["/d"]) == ["/d/a/x", "/d/a/y/z", "/d/b"]


def test_rows_under_are_limited_to_host_and_roots(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(3, base="/a") + rows(3, base="/ab") + rows(2, base="/a/b"))
        file_rows.upsert_files(s, rows(4, host="other", base="/a"))
        s.commit()
    # /ab is not under /a, other host's rows are excluded; in the walk's order
    assert under(db, ["/a"]) == ["/a/b/f0", "/a/b/f1", "/a/f0", "/a/f1", "/a/f2"]
    with db.engine.connect() as conn:
        assert catalog_rows.outside_exists(conn, "h1", ["/a", "/ab"])  # another host's rows
        conn.execute(delete(FileHash).where(FileHash.host == "other"))
        conn.commit()
        assert not catalog_rows.outside_exists(conn, "h1", ["/a", "/ab"])
        assert catalog_rows.outside_exists(conn, "h1", ["/a"])  # /ab is outside /a
        assert catalog_rows.outside_exists(conn, "h1", ["/a/b"])
        assert not catalog_rows.outside_exists(conn, "h1", ["/"])


def test_pending_results_are_merged_into_rows_and_contents(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(3, size=10) + rows(1, base="/u", size=99))
        s.commit()
        found = s.execute(select(FileHash.id, FileHash.inode).where(FileHash.size == 10)
                          .order_by(FileHash.id)).all()
        # (id, size, mtime_ns, inode as read, prefix, full, algorithm)
        pending.append(s, 7, [(fid, 10, 1000, inode, "A", None, "xxh3")
                              for fid, inode in found])
        s.commit()
    assert pending.merge(db, 7, chunk=2) == 3
    with db.session() as s:
        pending.append(s, 7, [(fid, 10, 1000, inode, "A", "F", "xxh3")
                              for fid, inode in found[:2]])
        s.commit()
    assert pending.merge(db, 7) == 2
    with db.session() as s:
        assert queries.group_totals(s) == (1, 2, 10)
        assert pending.count(s) == 0
        assert contents.kept(s) == contents.recount(s)


def test_a_result_for_a_file_changed_since_it_was_read_is_dropped(db: Database) -> None:
    with db.session() as s:
        file_rows.upsert_files(s, rows(2, size=10))
        s.commit()
        ids = [i for i, in s.execute(select(FileHash.id).order_by(FileHash.id))]
        inode = s.scalar(select(FileHash.inode).where(FileHash.id == ids[1]))
        pending.append(s, 3, [(ids[0], 10, 1000, 999_999, "A", "A", "xxh3"),  # another inode
                              (ids[1], 10, 1000, inode, "A", "A", "xxh3")])
        s.commit()
    assert pending.merge(db, 3) == 1
    with db.session() as s:
        assert s.scalar(select(FileHash.full_hash).where(FileHash.id == ids[0])) is None
        assert contents.kept(s) == contents.recount(s)


def test_hard_links_are_not_wasted_space(db: Database) -> None:
    data = rows(3, size=10)
    data[1]["inode"] = data[0]["inode"]  # f0 and f1 are one inode
    with db.session() as s:
        file_rows.upsert_files(s, data)
        s.execute(update(FileHash).values(full_hash="F", prefix_hash="F", hash_algo="md5"))
        contents.build_all(s)  # hashes written by hand: the contents made from them
        s.commit()
        assert queries.group_totals(s) == (1, 3, 10)
        s.execute(update(FileHash).where(FileHash.path == "/data/f2").values(full_hash="G"))
        contents.build_all(s)
        s.commit()
        assert queries.group_totals(s) == (0, 0, 0)


def test_worker_database_is_independent(db: Database) -> None:
    worker = worker_database(db.url_string())
    try:
        with worker.session() as s:
            file_rows.upsert_files(s, rows(4))
            s.commit()
    finally:
        worker.dispose()
    assert count(db) == 4


def test_non_utf8_and_newline_paths_round_trip(db: Database) -> None:
    weird = ["/d/caf\udce9", "/d/new\nline", "/d/back\\slash", "/d/\u00e9t\u00e9"]
    data = rows(len(weird))
    for row, p in zip(data, weird, strict=True):
        row["path"] = p
    with db.session() as s:
        file_rows.upsert_files(s, data)
        s.commit()
    assert under(db, ["/d"]) == sorted(weird, key=order_key)  # in the catalogue's order
    # a walk finding them again, in that order, matches them exactly
    walked = sorted((Entry(r["path"], r["name"], r["size"], r["mtime_ns"], r["device"],
                           r["inode"], r["nlink"]) for r in data), key=lambda e: order_key(e.path))
    counts, _ = synced(db, walked, 2, ["/d"])
    assert counts == SyncCounts(seen=4, new=0, changed=0, unchanged=4, removed=0)


# ----------------------------------------------------------------- fallback / errors


def test_unreachable_postgresql_falls_back_to_sqlite(tmp_path: Path, capsys) -> None:
    port = free_port()
    fallback = tmp_path / "fb" / "cat.db"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({
        "database": {"host": "127.0.0.1", "port": port, "password": "s3cretpw!"},
        "fallback": {"sqlite_path": str(fallback)},
    }))
    warnings: list[str] = []
    db = open_database(load_settings(config_path=str(cfg)), warn=warnings.append)
    try:
        assert db.backend == "sqlite"
        assert fallback.exists()
        assert len(warnings) == 1
        assert f"127.0.0.1:{port}" in warnings[0] and str(fallback) in warnings[0]
        assert "s3cretpw!" not in warnings[0]
    finally:
        db.dispose()


def test_unreachable_postgresql_without_fallback_is_an_error() -> None:
    from dupfinder.commands.base import Context

    port = free_port()
    url = f"postgresql://u:pw-secret-1@127.0.0.1:{port}/x"
    ctx = Context(db_url=url, no_fallback=True)
    with pytest.raises(DatabaseError) as err:
        ctx.catalogue()
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "fallback to SQLite is off" in str(err.value)
    assert "pw-secret-1" not in str(err.value)


def test_sqlite_in_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        # root ignores folder permissions; a path below a regular file fails for everyone
        target = tmp_path / "file"
        target.write_text("x")
        url = f"sqlite:///{target}/sub/cat.db"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        url = f"sqlite:///{ro}/sub/cat.db"
    with pytest.raises(DatabaseError, match="cannot create the folder for SQLite"):
        open_database(load_settings(db_url=url))


def test_postgresql_database_is_created_and_special_password_works(pg_url: str) -> None:
    admin = make_url(pg_url)
    role_pw = "r@le:p/w%#"
    engine = create_engine(admin.set(database="postgres"), isolation_level="AUTOCOMMIT")
    role = admin.database + "_role"
    with engine.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{role_pw}'"))
    try:
        cfg = Path("config.json")
        cfg.write_text(json.dumps({"database": {
            "host": admin.host, "port": admin.port, "user": role, "password": role_pw,
            "database": admin.database,
        }}))
        db = open_database(load_settings(), no_fallback=True)
        try:
            assert db.backend == "postgresql"
            assert schema_version(db.engine) == SCHEMA_VERSION
            assert role_pw not in db.display_url
        finally:
            db.dispose()
        from tests.conftest import _drop_database

        _drop_database(admin, admin.database)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        engine.dispose()


def test_wrong_password_is_an_error_not_a_fallback(pg_url: str) -> None:
    bad = make_url(pg_url).set(password="definitely-wrong-pw")
    with pytest.raises(DatabaseError) as err:
        open_database(load_settings(db_url=bad.render_as_string(hide_password=False)))
    assert "password authentication failed" in str(err.value)
    assert "definitely-wrong-pw" not in str(err.value)


def test_concurrent_schema_creation_on_postgresql(pg_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def opener(_: int) -> int:
        d = open_database(load_settings(db_url=pg_url), no_fallback=True)
        try:
            return schema_version(d.engine) or 0
        finally:
            d.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(opener, range(4))) == [SCHEMA_VERSION] * 4
