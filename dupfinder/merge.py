"""``dupfinder merge``: bring one catalogue's hosts into another (a laptop's SQLite fallback
into the shared PostgreSQL catalogue, or the shared one into a SQLite file to take away).

What wins, path by path, for one host: each catalogue's *evidence* for a path is the latest
time it knew the path's state: for a row it holds, the later of the row's ``last_seen`` and
the start of its latest finished scan that looked at the path; for a path it has no row of,
the start of that scan (a scan that looked and found nothing). The catalogue with the later
evidence decides: its row is copied (or kept), or its absence removes the other's row. On a
tie the target stays as it is, which is why merging the same source twice changes nothing
the second time (the first copied the source's scans, so the target's evidence is at least
the source's everywhere). A scan "looked at" a path when the path is under one of its roots
and its filters could not have skipped it: a scan with name patterns, ignore files or a depth
limit never counts as having looked (what it skipped, it did not see go), nor does one whose
size bounds, hidden-file or trash settings leave the path out.

A row that wins carries its own hashes and algorithm tag; a row that describes the same state
of the same file as the one it replaces but has fewer hashes keeps the richer one's. Each
host is merged in one transaction of the target: all or nothing (kill -9 leaves the target
as it was), under the host's merge lock (no scan of that host in the target meanwhile) and
its action lock (no dedupe or undo), with its contents recounted in the same transaction.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from dupfinder.config import mask_url, parse_db_url, sqlite_url
from dupfinder.db import merge as sql
from dupfinder.db import scans
from dupfinder.db.engine import Database, connect, read_only_engine
from dupfinder.db.locks import MERGE_BUSY, action_lock, host_lock
from dupfinder.db.merge import Row, ScanView, utc
from dupfinder.db.models import SCHEMA_VERSION, ScanMetadata
from dupfinder.db.scans import db_now
from dupfinder.db.schema import begin_writing, ensure_schema, schema_version
from dupfinder.errors import DatabaseError, SafetyError, UsageError, one_line
from dupfinder.paths import for_message, in_trash
from dupfinder.states import ScanStatus


@dataclass
class HostMerge:
    """What merging one host did (or, in a dry run, would do)."""

    host: str
    added: int = 0
    replaced: int = 0
    removed: int = 0
    kept: int = 0  # rows already as the source has them, or newer in the target
    scans: int = 0
    runs: int = 0


def _looked(scan: ScanView, key: str, size: int) -> bool:
    """Whether ``scan`` looked at the stored path ``key`` (of a file of ``size`` bytes)."""
    if not any(key == r or key.startswith(r.rstrip("/") + "/") for r in scan.roots):
        return False
    o = scan.options
    if o.get("include") or o.get("exclude") or o.get("ignore_files") or o.get("max_depth"):
        return False
    if size < int(o.get("min_size") or 1) or (o.get("max_size") is not None
                                               and size > int(o["max_size"])):
        return False
    if o.get("hidden") is False and "/." in key:
        return False
    return bool(o.get("include_trash")) or not in_trash(key)


def _evidence(scans: list[ScanView], row: Row | None, of: Row) -> datetime | None:
    """One catalogue's evidence for the path of ``of`` (a row of either side), holding
    ``row`` for it or none."""
    looked = next((s.started_at for s in scans if _looked(s, of.key, of.size)), None)
    if row is None:
        return looked
    return row.last_seen if looked is None else max(looked, row.last_seen)


def _later(a: datetime | None, b: datetime | None) -> bool:
    """Whether evidence ``a`` is later than ``b`` (no evidence is earliest of all)."""
    return a is not None and (b is None or a > b)


def _winner(src: Row, dst: Row) -> Row:
    """The source's row, keeping the target's hashes where it knows more of the same file."""
    if src.same_file(dst) and src.full_hash is None and dst.full_hash is not None and (
            src.hash_algo in (None, dst.hash_algo)):
        return src._replace(prefix_hash=dst.prefix_hash, full_hash=dst.full_hash,
                            hash_algo=dst.hash_algo)
    return src


def _merge_rows(src: Connection, dst: Connection, host: str, scan_ids: dict[int, int],
                dst_scans: list[ScanView], done: HostMerge) -> None:
    """The merge join of the host's rows; ``dst_scans`` are the target's finished scans as
    they were before the source's were copied."""
    src_scans = sql.finished_scans(src, host)
    src.rollback()
    writes = sql.RowWrites(dst, host, scan_ids)
    theirs = sql.rows_of_host(src, host, own_transactions=True)
    ours = sql.rows_of_host(dst, host, own_transactions=False)
    a, b = next(theirs, None), next(ours, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):  # only in the source
            assert a is not None
            if _later(_evidence(src_scans, a, a), _evidence(dst_scans, None, a)):
                writes.add(a)
                done.added += 1
            else:
                done.kept += 1
            a = next(theirs, None)
        elif a is None or b.key < a.key:  # only in the target
            if _later(_evidence(src_scans, None, b), _evidence(dst_scans, b, b)):
                writes.remove(b)
                done.removed += 1
            else:
                done.kept += 1
            b = next(ours, None)
        else:  # in both
            row = _winner(a, b)
            if _later(_evidence(src_scans, a, a), _evidence(dst_scans, b, b)) and not (
                    row.same_file(b) and row.hashes() == b.hashes()):
                writes.replace(b, row)
                done.replaced += 1
            else:
                done.kept += 1
            a, b = next(theirs, None), next(ours, None)
    writes.finish()


@contextmanager
def _source(url_text: str) -> Iterator[Database]:
    """The source catalogue, opened for reading; an older one is upgraded in a temporary
    copy (a file beside nothing, or a database of the source's server), never in itself."""
    url = parse_db_url(url_text, "merge SOURCE")
    shown = mask_url(url)
    with ExitStack() as stack:
        engine = read_only_engine(url)
        stack.callback(engine.dispose)
        version = schema_version(engine)
        if version is None:
            raise UsageError(f"{shown} holds no dupfinder catalogue")
        if version > SCHEMA_VERSION:
            raise UsageError(f"{shown} has schema version {version}, newer than this "
                             f"dupfinder understands ({SCHEMA_VERSION}); upgrade dupfinder")
        if version < SCHEMA_VERSION:
            if url.get_backend_name() != "sqlite":
                engine.dispose()  # a session on the source would stop the copy
                url = stack.enter_context(sql.pg_copy(url))
            else:
                folder = stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="dupfinder-merge-"))
                copy = os.path.join(folder, "source.db")
                _sqlite_copy(url.database or "", copy)
                url = sqlite_url(copy)
            engine = connect(url)  # the copy: upgraded, then only read
            stack.callback(engine.dispose)
            ensure_schema(engine)
        yield Database(engine=engine, url=url, sessions=sessionmaker(engine))


def _sqlite_copy(path: str, copy: str) -> None:
    """A consistent copy of a SQLite file (its WAL included), made by SQLite's backup."""
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(copy)
        with dst:
            src.backup(dst)
        dst.close()
    finally:
        src.close()


_SAME = int.from_bytes(b"dups", "big")  # advisory lock space of the "same database?" probe


def _same_database(src: Database, dst: Database) -> bool:
    """Whether both name one database (another URL, a symbolic link, another host name
    for the same server)."""
    if src.backend != dst.backend:
        return False
    if src.backend == "sqlite":
        try:
            a, b = os.stat(src.url.database or ""), os.stat(dst.url.database or "")
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    # an advisory lock taken through one is held against the other only in one database
    key = int.from_bytes(os.urandom(4), "big", signed=True)
    with dst.engine.connect() as ours, src.engine.connect() as theirs:
        ours.execute(text("SELECT pg_advisory_lock(:s, :k)"), {"s": _SAME, "k": key})
        try:
            free = theirs.execute(text("SELECT pg_try_advisory_lock(:s, :k)"),
                                  {"s": _SAME, "k": key}).scalar()
            if free:
                theirs.execute(text("SELECT pg_advisory_unlock(:s, :k)"), {"s": _SAME, "k": key})
            return not free
        finally:
            ours.execute(text("SELECT pg_advisory_unlock(:s, :k)"), {"s": _SAME, "k": key})
            ours.commit()
            theirs.commit()


def merge(target: Database, source_url: str, hosts: list[str] | None = None,
          dry_run: bool = False, local_host: str = "") -> list[HostMerge]:
    """Merge the hosts of the catalogue at ``source_url`` (all, or ``hosts``) into
    ``target``; a dry run does the same work and rolls it back. ``local_host`` is this
    machine's label (its dead scans do not hold a merge up)."""
    with _source(source_url) as source:
        if _same_database(source, target):
            raise UsageError(f"{mask_url(source_url)} is the catalogue in use itself; "
                             "there is nothing to merge")
        try:
            with source.engine.connect() as src:
                known = sql.hosts(src)
                src.rollback()
                for h in hosts or ():
                    if h not in known:
                        raise UsageError(f"host {h} has nothing in {mask_url(source_url)}"
                                         f" (it holds: {', '.join(known) or 'no hosts'})")
                return [_merge_host(src, target, h, dry_run, mask_url(source_url), local_host)
                        for h in (hosts or known)]
        except SQLAlchemyError as exc:
            raise DatabaseError(f"merge failed: {one_line(exc)}") from exc


def _merge_host(src: Connection, target: Database, host: str, dry_run: bool,
                source_shown: str, local_host: str) -> HostMerge:
    if scans.running_scans(src, host):
        src.rollback()
        raise SafetyError(f"a scan of host {host} is still marked running in the source; "
                          "let it end (or run any command there to close a dead one), then "
                          "merge again")
    done = HostMerge(host)
    with host_lock(target, host, exclusive=True), action_lock(target, host), \
            target.engine.connect() as dst:
        begin_writing(dst)
        if sql.live_scans(dst, host, local_host):
            raise SafetyError(MERGE_BUSY.format(host=host))
        started = db_now(dst)
        dst_scans = sql.finished_scans(dst, host)
        scan_ids, done.scans = sql.copy_scans(src, dst, host)
        _merge_rows(src, dst, host, scan_ids, dst_scans, done)
        done.runs = sql.copy_runs(src, dst, host)
        if done.added or done.replaced or done.removed:
            sql.record_merge(dst, host, source_shown, started, {
                "added": done.added, "replaced": done.replaced, "removed": done.removed})
        if dry_run:
            dst.rollback()
        else:
            dst.commit()
    return done


def unmerged_fallback(db: Database, fallback_path: str) -> str | None:
    """The line to say when ``db`` is the PostgreSQL catalogue, reached again, and the
    fallback SQLite file at ``fallback_path`` holds a finished scan it lacks (one made while
    the server was down); None otherwise. It never merges by itself."""
    if db.backend != "postgresql" or not os.path.isfile(fallback_path):
        return None
    try:
        fb = sqlite3.connect(f"file:{fallback_path}?mode=ro", uri=True, timeout=1)
        try:
            latest = fb.execute("SELECT host, started_at FROM scan_metadata WHERE status = ? "
                                "ORDER BY started_at DESC LIMIT 1",
                                (ScanStatus.COMPLETE.value,)).fetchone()
        finally:
            fb.close()
    except sqlite3.Error:
        return None  # not a catalogue (yet), or busy: nothing to say
    if latest is None:
        return None
    host, started = latest[0], utc(datetime.fromisoformat(str(latest[1])))
    with db.engine.connect() as conn:
        if conn.execute(select(ScanMetadata.id).where(ScanMetadata.host == host,
                                                      ScanMetadata.started_at == started)
                        ).first() is not None:
            return None
    return (f"dupfinder: the fallback catalogue {for_message(fallback_path)} holds scans not "
            f"merged here (the latest: host {host}, {started:%Y-%m-%d %H:%M} UTC); to bring "
            f"them in, run: dupfinder merge {shlex.quote(fallback_path)}")
