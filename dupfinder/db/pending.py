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

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from dupfinder.db import contents
from dupfinder.db.bulk import raw_cursor
from dupfinder.db.engine import Database
from dupfinder.db.models import FileHash, PendingHash, ScanMetadata
from dupfinder.states import ScanStatus

F, P = FileHash, PendingHash
MERGE_ROWS = 50_000  # pending results per merge transaction
# SQLite's page cache for a connection that writes in bulk (default 2 MiB): the indexes a
# merge updates stay in it (figures in bench/README.md)
WRITER_CACHE_KIB = 131072
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


def merge(db: Database, scan_id: int, chunk: int = MERGE_ROWS, recount: bool = True) -> int:
    """Move the pending results of ``scan_id`` into their rows, ``chunk`` results per
    transaction; returns how many rows took a hash. Call when nothing adds results for
    that scan any more (its stage is over, or it has ended). ``recount`` False leaves the
    contents' counts to one :func:`dupfinder.db.contents.recount_all` afterwards (a cold
    load, whose rows have no content index yet).

    Each chunk is a few set-based statements: the contents its full hashes name are made,
    the results that still fit their rows are copied in file-id order into a temporary
    table, one UPDATE ... FROM gives the rows their hashes in that order, and the contents
    touched (before and after) are recounted. A result fits its row when size, mtime and
    inode are still the ones read (a file another scan saw rewritten at the same size keeps
    that scan's word) and, for a full hash, the row still has the prefix hash it was made
    after."""
    merged = 0
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {_MERGE}"))
        conn.execute(text(_CREATE_MERGE))
        conn.commit()
        try:
            while True:
                hi = conn.scalar(text(_CHUNK_END), {"scan": scan_id, "n": chunk})
                if hi is None:
                    return merged
                merged += _merge_upto(conn, {"scan": scan_id, "hi": int(hi)}, recount)
                conn.commit()
        finally:
            conn.rollback()
            conn.execute(text(f"DROP TABLE IF EXISTS {_MERGE}"))
            conn.commit()


_MERGE = "dupfinder_merge"
_CREATE_MERGE = (
    f"CREATE TEMPORARY TABLE {_MERGE} (file_id BIGINT, size BIGINT, mtime_ns BIGINT, "
    "inode BIGINT, prefix_hash VARCHAR(128), full_hash VARCHAR(128), hash_algo VARCHAR(16), "
    "content_id BIGINT, old_content BIGINT)")
_CHUNK_END = ("SELECT max(seq) FROM (SELECT seq FROM pending_hashes WHERE scan_id = :scan "
              "ORDER BY seq LIMIT :n) AS chunk")
_IN_CHUNK = "p.scan_id = :scan AND p.seq <= :hi"
_MAKE_CONTENTS = (  # with zero counts: the recount sets them; in the unique key's order
    "INSERT INTO contents (size, hash_algo, full_hash, files, inodes, hosts, wasted) "
    "SELECT DISTINCT p.size, p.hash_algo, p.full_hash, 0, 0, 0, 0 FROM pending_hashes p "
    f"WHERE {_IN_CHUNK} AND p.full_hash IS NOT NULL "
    "ORDER BY p.full_hash, p.size, p.hash_algo "
    "ON CONFLICT (full_hash, size, hash_algo) DO NOTHING")
_FITTING = (  # the latest result of each file: a full one comes after the prefix one
    f"INSERT INTO {_MERGE} SELECT p.file_id, p.size, p.mtime_ns, p.inode, "
    "COALESCE(p.prefix_hash, f.prefix_hash), p.full_hash, p.hash_algo, c.id, f.content_id "
    "FROM (SELECT *, row_number() OVER (PARTITION BY file_id ORDER BY seq DESC) AS nth "
    "FROM pending_hashes WHERE scan_id = :scan AND seq <= :hi) AS p "
    "JOIN file_hashes f ON f.id = p.file_id AND f.size = p.size AND f.mtime_ns = p.mtime_ns "
    "AND f.inode = p.inode "
    "LEFT JOIN contents c ON c.full_hash = p.full_hash AND c.size = p.size "
    "AND c.hash_algo = p.hash_algo "
    "WHERE p.nth = 1 AND (p.prefix_hash IS NOT NULL "
    "OR (f.prefix_hash IS NOT NULL AND f.hash_algo = p.hash_algo)) "
    "ORDER BY p.file_id")
_UPDATE = (
    "UPDATE file_hashes SET prefix_hash = m.prefix_hash, full_hash = m.full_hash, "
    f"hash_algo = m.hash_algo, content_id = m.content_id FROM {_MERGE} m "
    "WHERE file_hashes.id = m.file_id AND file_hashes.size = m.size "
    "AND file_hashes.mtime_ns = m.mtime_ns AND file_hashes.inode = m.inode")
_TOUCHED = (  # the contents of the merged rows, before and after
    f"SELECT content_id FROM {_MERGE} WHERE content_id IS NOT NULL "
    f"UNION SELECT old_content FROM {_MERGE} WHERE old_content IS NOT NULL")
# contents this chunk made for results that fitted no row after all (recounted ones always
# hold a file, committed ones too)
_UNUSED = "DELETE FROM contents WHERE id > :made_after AND files = 0"


def _merge_upto(conn: Connection, params: dict[str, int], recount: bool) -> int:
    """Merge one scan's results up to seq ``hi``, in the caller's transaction."""
    conn.execute(text(f"DELETE FROM {_MERGE}"))
    made_after = conn.scalar(text("SELECT coalesce(max(id), 0) FROM contents"))
    conn.execute(text(_MAKE_CONTENTS), params)
    conn.execute(text(_FITTING), params)
    written = conn.execute(text(_UPDATE)).rowcount
    if recount:
        contents.refresh(conn, list(conn.scalars(text(_TOUCHED), params)))
        conn.execute(text(_UNUSED), {"made_after": made_after})
    conn.execute(text("DELETE FROM pending_hashes WHERE scan_id = :scan AND seq <= :hi"),
                 params)
    return int(written or 0)
