"""Hash results on their way into the catalogue.

A result written straight into its catalogue row was a random-order UPDATE of the row and
of its indexes, the scan's single largest cost once the catalogue outgrew the cache. So a
result is appended to ``pending_hashes`` instead (no index: an append touches one page),
committed at least once a second by the scan's writer (SQLite) or by each worker itself
(PostgreSQL, in parallel), and :func:`merge` moves a scan's pending results into the rows
once per stage, in id order, a chunk per transaction (so SQLite's WAL can reset between
chunks), making the contents their full hashes name and refreshing those contents' counts
in the same transaction. A scan killed before its merge leaves its results pending; the
next scan of that host merges them first (:func:`orphans`), so nothing committed is hashed
again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import NamedTuple

from psycopg2.extras import execute_values
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dupfinder.db import contents
from dupfinder.db.bulk import raw_cursor
from dupfinder.db.contents import ContentKey
from dupfinder.db.engine import Database
from dupfinder.db.models import FileHash, PendingHash, ScanMetadata
from dupfinder.states import ScanStatus

F, P = FileHash, PendingHash
MERGE_ROWS = 50_000  # pending results per merge transaction
_COLUMNS = ("scan_id", "file_id", "size", "mtime_ns", "inode", "prefix_hash", "full_hash",
            "hash_algo")


class Result(NamedTuple):
    """One file's hashes: its catalogue id, its size, mtime and inode as read, the prefix
    hash (None from the full stage), the full hash (None when not read whole), the
    algorithm tag. Plain tuples cross from the workers by the hundred thousand."""

    file_id: int
    size: int
    mtime_ns: int
    inode: int
    prefix: str | None
    full: str | None
    algo: str


def append(session: Session, scan_id: int, rows: Sequence[tuple[object, ...]]) -> None:
    """Add results (:class:`Result` tuples) to the pending table; the caller commits."""
    if not rows:
        return
    cursor = raw_cursor(session)
    try:
        if session.get_bind().dialect.name == "postgresql":
            buf = io.StringIO("".join(
                f"{scan_id}\t{fid}\t{size}\t{mtime}\t{inode}\t{_text(prefix)}\t{_text(full)}"
                f"\t{algo}\n" for fid, size, mtime, inode, prefix, full, algo in rows))
            cursor.copy_expert(f"COPY pending_hashes ({', '.join(_COLUMNS)}) FROM STDIN", buf)
        else:
            cursor.executemany(
                f"INSERT INTO pending_hashes ({', '.join(_COLUMNS)}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?)", [(scan_id, *r) for r in rows])
    finally:
        cursor.close()


class PendingWriter:
    """Appends results sent back by the workers from the scan's own process: SQLite admits
    one writer, so there the workers only hash. Results are queued and appended in one
    transaction per ``interval`` seconds (or ``MAX_ROWS``, to bound memory): a killed scan
    loses at most that much finished work."""

    MAX_ROWS = 50_000

    def __init__(self, db: Database, scan_id: int, interval: float = 1.0) -> None:
        self.db, self.scan_id, self.interval = db, scan_id, interval
        self.queued: list[tuple[object, ...]] = []
        self._since = time.monotonic()
        self._session: Session | None = None

    def __enter__(self) -> PendingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the writer's connection (what is still queued is not written)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def add(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Queue results; append them all once ``interval`` has passed or enough wait."""
        self.queued.extend(rows)
        if len(self.queued) >= self.MAX_ROWS or \
                time.monotonic() - self._since >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Append and commit everything queued."""
        rows, self.queued = self.queued, []
        self._since = time.monotonic()
        if not rows:
            return
        if self._session is None:  # one connection for the stage
            self._session = self.db.session()
        append(self._session, self.scan_id, rows)
        self._session.commit()


def _text(value: object) -> str:
    """A hash for COPY's text format (hex digits and ``/``: nothing to escape), or NULL."""
    return "\\N" if value is None else str(value)


def count(session: Session, scan_id: int | None = None) -> int:
    """How many results wait to be merged (of one scan, or of all)."""
    stmt = select(func.count()).select_from(P)
    if scan_id is not None:
        stmt = stmt.where(P.scan_id == scan_id)
    return int(session.scalar(stmt) or 0)


def orphans(session: Session) -> list[int]:
    """Scans with pending results whose run has ended (killed, failed, interrupted): their
    results wait for whichever scan comes next."""
    ended = select(ScanMetadata.id).where(ScanMetadata.status != ScanStatus.RUNNING)
    return list(session.scalars(select(P.scan_id).distinct().where(
        P.scan_id.in_(ended) | P.scan_id.not_in(select(ScanMetadata.id)))))


def merge(db: Database, scan_id: int, chunk: int = MERGE_ROWS) -> int:
    """Move the pending results of ``scan_id`` into their rows, ``chunk`` results per
    transaction; returns how many rows took a hash. Call when nothing adds results for
    that scan any more (its stage is over, or it has ended)."""
    merged = 0
    while True:
        with db.session() as s:
            rows = s.execute(
                select(P.seq, P.file_id, P.size, P.mtime_ns, P.inode, P.prefix_hash,
                       P.full_hash, P.hash_algo)
                .where(P.scan_id == scan_id).order_by(P.seq).limit(chunk)).all()
            if not rows:
                return merged
            merged += _merge_rows(s, [Result(*r[1:]) for r in rows])
            s.execute(delete(P).where(P.scan_id == scan_id, P.seq <= rows[-1].seq))
            s.commit()


def _merge_rows(s: Session, results: list[Result]) -> int:
    latest = {r.file_id: r for r in results}  # a later result of one file wins
    ids = sorted(latest)
    current: dict[int, tuple[int, str | None, str | None, int | None]] = {}
    for i in range(0, len(ids), contents.CHUNK):
        part = ids[i:i + contents.CHUNK]
        for fid, prefix, algo, cid in s.execute(
                select(F.id, F.prefix_hash, F.hash_algo, F.content_id).where(F.id.in_(part))):
            current[fid] = (fid, prefix, algo, cid)
    keys = {ContentKey(r.size, r.algo, r.full) for r in latest.values() if r.full is not None}
    made = contents.ensure(s, keys) if keys else {}
    touched = set(made.values())
    params: list[tuple[object, ...]] = []
    for fid in ids:
        r, c = latest[fid], current.get(fid)
        if c is None:
            continue  # gone since it was read
        _, prefix, algo, old = c
        if r.prefix is None and (prefix is None or algo != r.algo):
            continue  # a full hash for a prefix another scan has replaced since
        if old is not None:
            touched.add(old)
        cid = made[ContentKey(r.size, r.algo, r.full)] if r.full is not None else None
        params.append((fid, r.size, r.mtime_ns, r.inode,
                       r.prefix if r.prefix is not None else prefix, r.full, r.algo, cid))
    written = _update_rows(s, params)
    contents.refresh(s, touched)
    return written


def _update_rows(s: Session, params: list[tuple[object, ...]]) -> int:
    """Give rows their hashes (in id order) where size, mtime and inode are still the ones
    read: a file another scan saw rewritten at the same size keeps that scan's word."""
    if not params:
        return 0
    cursor = raw_cursor(s)
    try:
        if s.get_bind().dialect.name == "postgresql":
            execute_values(cursor, (
                "UPDATE file_hashes AS f SET prefix_hash = v.p, full_hash = v.fu, "
                "hash_algo = v.a, content_id = v.c FROM (VALUES %s) AS v(id, s, m, i, p, fu, "
                "a, c) WHERE f.id = v.id AND f.size = v.s AND f.mtime_ns = v.m "
                "AND f.inode = v.i"), params, page_size=len(params),
                template="(%s, %s, %s, %s, %s, %s, %s, %s::bigint)")
            return int(cursor.rowcount)
        dbapi = cursor.connection
        before = dbapi.total_changes
        cursor.executemany(
            "UPDATE file_hashes SET prefix_hash = ?5, full_hash = ?6, hash_algo = ?7, "
            "content_id = ?8 WHERE id = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
            params)
        return int(dbapi.total_changes - before)
    finally:
        cursor.close()
