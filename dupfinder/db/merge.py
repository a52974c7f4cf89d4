"""The SQL of ``dupfinder merge``: one host's rows, scans and dedupe runs read from one
catalogue and written into another.

Both catalogues hold a host's rows in (host, path) order and in the same stored path form,
so the rows are read from both a page at a time by key and compared by one merge join
(:mod:`dupfinder.merge` decides what wins); nothing of either catalogue is held in memory.
The source is only read, each page in a transaction of its own, so a SQLite source's WAL
can still be checkpointed while a long merge runs. The target is written inside the one
transaction that the caller commits (or rolls back for a dry run).

Ids are the target's own: copied scans and runs get new ones, and the rows and journal
entries that name them are remapped. Scans and runs are recognised as already copied by
(host, start time), so a source merged twice copies nothing the second time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    URL,
    Connection,
    create_engine,
    delete,
    insert,
    select,
    text,
    union,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from dupfinder.config import mask_url
from dupfinder.db import contents, scans
from dupfinder.db.bulk import batched
from dupfinder.db.contents import ContentKey
from dupfinder.db.file_rows import hosts_of
from dupfinder.db.models import ActionEntry, ActionRun, FileHash, ScanMetadata
from dupfinder.db.scans import db_now
from dupfinder.db.stored_paths import DbPath, from_db, to_db
from dupfinder.errors import UsageError, one_line, param
from dupfinder.processes import pid_alive
from dupfinder.states import ScanStatus

F, S, R, E = FileHash, ScanMetadata, ActionRun, ActionEntry
PAGE = 5000
WRITE_BATCH = 2000
ANALYZE_AFTER = 10_000  # rows written before the tables' statistics are renewed
# contents to recount held in memory at most; beyond, they go to a temporary table (a set
# of a million ids, and the parameters of one statement naming them all, cost hundreds of
# MiB)
TOUCHED_HELD = 50_000
_ROW_COLUMNS = (F.id, F.path, F.name, F.size, F.mtime_ns, F.device, F.inode, F.nlink,
                F.prefix_hash, F.full_hash, F.hash_algo, F.first_seen, F.last_seen, F.scan_id,
                F.content_id)


def utc(value: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _plain(value: Any) -> Any:
    """A value as the other backend should store it: times as aware UTC."""
    return utc(value) if isinstance(value, datetime) else value


class Row(NamedTuple):
    """One catalogue row of a host, as a merge compares and copies it."""

    id: int
    key: DbPath  # the stored path: the order both catalogues hold the rows in
    name: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int
    prefix_hash: str | None
    full_hash: str | None
    hash_algo: str | None
    first_seen: datetime
    last_seen: datetime
    scan_id: int | None
    content_id: int | None

    @property
    def path(self) -> str:
        """The filesystem path."""
        return from_db(self.key)

    def same_file(self, other: Row) -> bool:
        """Whether both describe the same state of the same file (hashes aside)."""
        return (self.name, self.size, self.mtime_ns, self.device, self.inode, self.nlink) == (
            other.name, other.size, other.mtime_ns, other.device, other.inode, other.nlink)

    def hashes(self) -> tuple[str | None, str | None, str | None]:
        return self.prefix_hash, self.full_hash, self.hash_algo


def rows_of_host(conn: Connection, host: str, *, own_transactions: bool) -> Iterator[Row]:
    """The host's rows in key order, a page at a time (each page its own read transaction
    when ``own_transactions``: the source's pages)."""
    after: str | None = None
    while True:
        stmt = select(*_ROW_COLUMNS).where(F.host == host)
        if after is not None:
            stmt = stmt.where(F.path > after)
        page = [Row(r.id, DbPath(r.path), r.name, r.size, r.mtime_ns, r.device, r.inode,
                    r.nlink, r.prefix_hash, r.full_hash, r.hash_algo, utc(r.first_seen),
                    utc(r.last_seen), r.scan_id, r.content_id)
                for r in conn.execute(stmt.order_by(F.path).limit(PAGE))]
        if own_transactions:
            conn.rollback()
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].key


def hosts(conn: Connection) -> list[str]:
    """Every host the catalogue knows: of its rows (by index seeks), scans and dedupe
    runs."""
    found = conn.execute(union(select(S.host), select(R.host)))
    return sorted({h for (h,) in found} | set(hosts_of(conn)))


class ScanView(NamedTuple):
    """What a finished scan saw: when it began, its roots (stored form), its filters."""

    started_at: datetime
    roots: tuple[DbPath, ...]
    options: dict[str, Any]


def finished_scans(conn: Connection, host: str) -> list[ScanView]:
    """The host's finished scans, newest first."""
    rows = conn.execute(select(S.started_at, S.roots, S.options)
                        .where(S.host == host, S.status == ScanStatus.COMPLETE)
                        .order_by(S.started_at.desc()))
    return [ScanView(utc(r.started_at), tuple(to_db(x) for x in r.roots or ()),
                     dict(r.options or {})) for r in rows]


def live_scans(conn: Connection, host: str, local_host: str) -> list[int]:
    """The host's scans marked running, less those of this machine whose process is gone
    (another machine's processes cannot be looked at: its records count as running)."""
    return [r.id for r in scans.running_scans(conn, host)
            if host != local_host or (r.pid is not None and pid_alive(r.pid))]


def _copy_records(src: Connection, dst: Connection, model: Any, host: str
                  ) -> tuple[dict[int, int], list[int]]:
    """Copy the host's records of ``model`` (scans or runs) that the target lacks, oldest
    first. Returns source id -> target id for every record, and the source ids copied."""
    have = {utc(started): rid for rid, started in dst.execute(
        select(model.id, model.started_at).where(model.host == host))}
    columns = [c.name for c in model.__table__.columns if c.name != "id"]
    mapping: dict[int, int] = {}
    copied: list[int] = []
    for rec in src.execute(select(model.__table__).where(model.host == host)
                           .order_by(model.id)).mappings().all():
        started = utc(rec["started_at"])
        if started in have:
            mapping[rec["id"]] = have[started]
            continue
        values = {c: _plain(rec[c]) for c in columns}
        new_id = dst.execute(insert(model).values(**values).returning(model.id)).scalar_one()
        mapping[rec["id"]] = have[started] = new_id
        copied.append(rec["id"])
    src.rollback()
    return mapping, copied


def copy_scans(src: Connection, dst: Connection, host: str) -> tuple[dict[int, int], int]:
    """The host's scan records copied; returns the id map and how many were new."""
    mapping, copied = _copy_records(src, dst, ScanMetadata, host)
    return mapping, len(copied)


def copy_runs(src: Connection, dst: Connection, host: str) -> int:
    """The host's dedupe runs and their journals copied (the runs the target lacks);
    returns how many. Undo of a copied run then works from the target."""
    mapping, copied = _copy_records(src, dst, ActionRun, host)
    columns = [c.name for c in E.__table__.columns if c.name not in ("id", "run_id")]
    for old_id in copied:
        entries = src.execute(select(E.__table__).where(E.run_id == old_id)
                              .order_by(E.seq)).mappings().all()
        src.rollback()
        for batch in batched(entries, WRITE_BATCH):
            dst.execute(insert(E), [{c: _plain(e[c]) for c in columns}
                                    | {"run_id": mapping[old_id]} for e in batch])
    return len(copied)


def record_merge(dst: Connection, host: str, source: str, started: datetime,
                 counts: dict[str, int]) -> None:
    """The merge's own record among the host's scans (status ``merged``, no roots): the
    history shows it, and a later rescan knows the catalogue changed under it
    (:func:`dupfinder.db.scans.settled_scan`)."""
    dst.execute(insert(S).values(
        host=host, roots=[], options={"merged_from": source, **counts}, algorithm="-",
        status=ScanStatus.MERGED, started_at=started, finished_at=db_now(dst),
        message=f"merged from {source}", files_new=counts.get("added", 0),
        files_changed=counts.get("replaced", 0), files_removed=counts.get("removed", 0)))


class RowWrites:
    """The target's side of a host's merge: rows added, replaced and removed in batches,
    their contents made and recounted in the caller's transaction."""

    def __init__(self, conn: Connection, host: str, scan_ids: dict[int, int]) -> None:
        self.conn, self.host, self.scan_ids = conn, host, scan_ids
        self.adds: list[Row] = []
        self.replaces: list[tuple[int, Row]] = []
        self.removes: list[Row] = []
        self.touched: set[int] = set()  # contents to recount, up to TOUCHED_HELD of them
        self.noted = False  # some are in the session's table of touched contents
        self.written = 0

    def add(self, row: Row) -> None:
        self.adds.append(row)
        if len(self.adds) >= WRITE_BATCH:
            self._write_adds()

    def replace(self, old: Row, row: Row) -> None:
        self._touch([old.content_id])
        self.replaces.append((old.id, row))
        if len(self.replaces) >= WRITE_BATCH:
            self._write_replaces()

    def remove(self, old: Row) -> None:
        self._touch([old.content_id])
        self.removes.append(old)
        if len(self.removes) >= WRITE_BATCH:
            self._write_removes()

    def finish(self) -> None:
        """Everything written, and every content touched recounted. On PostgreSQL the
        tables are analyzed first when the merge wrote many rows: their statistics still
        described the catalogue before this transaction, and the recount was planned for a
        few rows (a nested loop whose time grew with every row the merge wrote)."""
        self._write_adds()
        self._write_replaces()
        self._write_removes()
        if self.conn.dialect.name == "postgresql" and self.written >= ANALYZE_AFTER:
            self.conn.execute(text("ANALYZE file_hashes"))
            self.conn.execute(text("ANALYZE contents"))
        if self.noted:
            contents.note_touched(self.conn, self.touched)
            contents.recount_touched(self.conn)
        else:
            contents.refresh(self.conn, self.touched)

    def _touch(self, ids: Iterable[int | None]) -> None:
        self.touched.update(i for i in ids if i is not None)
        if len(self.touched) >= TOUCHED_HELD:  # a large merge: kept in the database
            contents.note_touched(self.conn, self.touched)
            self.touched = set()
            self.noted = True

    def _content_ids(self, rows: Sequence[Row]) -> dict[ContentKey, int]:
        keys = [ContentKey(r.size, r.hash_algo, r.full_hash) for r in rows
                if r.full_hash is not None and r.hash_algo is not None]
        found = contents.ensure(self.conn, keys) if keys else {}
        self._touch(found.values())
        return found

    def _values(self, row: Row, ids: dict[ContentKey, int]) -> dict[str, Any]:
        content = (ids[ContentKey(row.size, row.hash_algo, row.full_hash)]
                   if row.full_hash is not None and row.hash_algo is not None else None)
        return {"host": self.host, "path": row.key, "name": row.name, "size": row.size,
                "mtime_ns": row.mtime_ns, "device": row.device, "inode": row.inode,
                "nlink": row.nlink, "prefix_hash": row.prefix_hash,
                "full_hash": row.full_hash, "hash_algo": row.hash_algo,
                "first_seen": row.first_seen, "last_seen": row.last_seen,
                "scan_id": self.scan_ids.get(row.scan_id) if row.scan_id else None,
                "content_id": content}

    def _write_adds(self) -> None:
        if self.adds:
            ids = self._content_ids(self.adds)
            self.conn.execute(insert(F), [self._values(r, ids) for r in self.adds])
            self.written += len(self.adds)
            self.adds = []

    def _write_replaces(self) -> None:
        if not self.replaces:
            return
        ids = self._content_ids([r for _, r in self.replaces])
        for old_id, row in self.replaces:  # by id, in key order: one seek each
            values = self._values(row, ids)
            del values["host"], values["path"]
            self.conn.execute(update(F).where(F.id == old_id).values(**values))
        self.written += len(self.replaces)
        self.replaces = []

    def _write_removes(self) -> None:
        if self.removes:
            self.conn.execute(delete(F).where(F.id.in_([r.id for r in self.removes])))
            self.written += len(self.removes)
            self.removes = []


@contextmanager
def pg_copy(url: URL) -> Iterator[URL]:
    """A copy of the PostgreSQL database at ``url`` on its own server, made with
    ``CREATE DATABASE ... TEMPLATE`` (so the source is only read), for the length of the
    ``with`` block; dropped afterwards. PostgreSQL makes it only when no other session is
    connected to the source and the role may create databases: :class:`UsageError`
    otherwise, saying so."""
    name = f"dupfinder_merge_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    # a session of the server's own maintenance database: one on the source would stop
    # the copy
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        raise UsageError(
            f"{mask_url(url)} has an older schema and could not be copied to be upgraded "
            f"({one_line(exc)}); open it once with this dupfinder (any command with "
            f"{param('db_url')}) to upgrade it, then merge") from exc
    try:
        yield url.set(database=name)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
