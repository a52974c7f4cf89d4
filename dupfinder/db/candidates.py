"""Which files a scan must hash, and writing the hashes back.

Candidates are this host's files anywhere in the catalogue, not only under the scan's roots:
``scan ~/Pictures`` then ``scan /backup`` must find the copies between them without a third
scan. Reading a file another scan catalogued is made safe where it is read
(:func:`dupfinder.scan.hashing.open_readonly` refuses anything but a regular file, so a FIFO
that replaced a file cannot hang the scan), and problems with such files are not this scan's
errors (:mod:`dupfinder.scan.workers`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from psycopg2.extras import execute_values
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Select,
    Table,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session

from dupfinder.db.bulk import TempTables, fresh_temp_table, pages_by_seq, raw_cursor
from dupfinder.db.engine import Database
from dupfinder.db.models import FileHash, PathText
from dupfinder.db.paths import from_db

F = FileHash
_COLUMNS = (F.id, F.path, F.size, F.mtime_ns, F.device, F.inode)


class Candidate(NamedTuple):
    """A file to hash: its catalogue id, one path to read, and the metadata the hash will
    be valid for."""

    id: int
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int


def _distinct_inodes(*cols: Any) -> Select[Any]:
    """Rows of ``cols`` plus a file identity, one per distinct inode (hard links fold)."""
    return select(*cols, F.host, F.device, F.inode).distinct()


def prefix_candidates(host: str, algo: str, min_size: int = 0) -> Select[Any]:
    """The host's files that need a prefix hash: their size is shared by another file
    (another inode, on any host) and they have no hash by ``algo`` yet.

    Ordered by device and inode so that hard links arrive together and reads follow the
    disk layout.
    """
    ident = _distinct_inodes(F.size).where(F.size >= min_size).subquery()
    sizes = select(ident.c.size).group_by(ident.c.size).having(func.count() > 1)
    return (
        select(*_COLUMNS)
        .where(
            F.host == host,
            F.size.in_(sizes),
            or_(F.prefix_hash.is_(None), F.hash_algo.is_(None), F.hash_algo != algo),
        )
        .order_by(F.device, F.inode, F.id)
    )


def full_candidates(host: str, algo: str) -> Select[Any]:
    """The host's files that need a full hash: no full hash by ``algo`` yet, and either
    their (size, prefix hash) collides with another inode's, or their size matches a file
    of another host that has no hash yet. The second case cannot wait for that host (we
    cannot read its files), so hashing now lets whichever host scans next complete the
    group. Same row shape and order as :func:`prefix_candidates`."""
    ident = (
        _distinct_inodes(F.size, F.prefix_hash)
        .where(F.hash_algo == algo, F.prefix_hash.is_not(None))
        .subquery()
    )
    clashes = (
        select(ident.c.size, ident.c.prefix_hash)
        .group_by(ident.c.size, ident.c.prefix_hash)
        .having(func.count() > 1)
    )
    remote_pending = select(F.size).where(F.host != host, F.prefix_hash.is_(None))
    return (
        select(*_COLUMNS)
        .where(
            F.host == host, F.hash_algo == algo, F.full_hash.is_(None),
            or_(tuple_(F.size, F.prefix_hash).in_(clashes), F.size.in_(remote_pending)),
        )
        .order_by(F.device, F.inode, F.id)
    )


_staged = Table(
    "dupfinder_candidates", MetaData(),
    # SQLite's rowid, PostgreSQL's bigserial: numbered in the order the rows are inserted
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    *(Column(c.key, PathText if c.key == "path" else BigInteger) for c in _COLUMNS),
    prefixes=["TEMPORARY"],
)


class StagedCandidates(TempTables):
    """A stage's candidates, copied into a temporary table and read back a page at a time.

    Streaming the candidate query itself held one read transaction open for a whole stage,
    and while a reader holds an old snapshot SQLite cannot reset its WAL: it grew to 13.4 GB
    beside a 423 MB catalogue at 1M files. Here the copy is one short statement, and every
    page (by key on the copy's own sequence, which follows device, inode and id) is a
    transaction of its own, so checkpoints run between pages. The copy also gives the
    progress bar its totals without running the query a second time.

    Use as a context manager; iterate for the :class:`Candidate` rows in order.
    """

    tables = (_staged,)

    def __init__(self, db: Database, stmt: Select[Any]) -> None:
        super().__init__(db)
        self.stmt = stmt
        self.files = self.bytes = 0

    def __enter__(self) -> StagedCandidates:
        conn = self._open()
        fresh_temp_table(conn, _staged)
        conn.execute(insert(_staged).from_select([c.key for c in _COLUMNS], self.stmt))
        row = conn.execute(select(func.count().label("files"),
                                  func.coalesce(func.sum(_staged.c.size), 0).label("bytes"))
                           ).one()
        conn.commit()
        self.files, self.bytes = int(row.files), int(row.bytes)
        return self

    def __iter__(self) -> Iterator[Candidate]:
        for rows in pages_by_seq(self.conn, _staged, [c.key for c in _COLUMNS]):
            for _, fid, path, size, mtime_ns, device, inode in rows:
                yield Candidate(fid, from_db(path), size, mtime_ns, device, inode)


class HashWriter:
    """Writes hash results sent back by the workers from the scan's own process: the way
    SQLite, which admits one writer, is fastest.

    Workers that wrote their own batches of 1000 queued for the write lock and spent half
    their time writing (random-order updates at 34-36k rows/s). Here results are gathered
    and written sorted by id, in one transaction per ``interval`` seconds (or ``MAX_ROWS``,
    to bound memory), so a killed scan loses at most that much finished work.
    """

    MAX_ROWS = 50_000
    # SQLite's page cache for the writer's connection (default 2 MiB): 200k hash updates
    # in random order took 5.2 s with 2 MiB, 4.0 s with 16, 3.9 s with 32, 3.7 s with 64
    CACHE_KIB = 32768

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db, self.interval = db, interval
        self.pending: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        self.queued = 0
        self._since = time.monotonic()
        self._session: Session | None = None

    def __enter__(self) -> HashWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the writer's connection (what is still queued is not written)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def add(self, batch: HashBatch) -> None:
        """Queue results; write them all once ``interval`` has passed or enough are queued."""
        self.pending.setdefault(batch.columns, []).extend(batch.rows)
        self.queued += len(batch.rows)
        if self.queued >= self.MAX_ROWS or time.monotonic() - self._since >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write and commit everything queued."""
        pending, self.pending, self.queued = self.pending, {}, 0
        self._since = time.monotonic()
        if not pending:
            return
        if self._session is None:  # one connection for the stage, with a larger cache
            self._session = self.db.session()
            if self.db.backend == "sqlite":
                self._session.execute(text(f"PRAGMA cache_size=-{self.CACHE_KIB}"))
        for columns, rows in pending.items():
            rows.sort()  # by id: rows in key order touch fewer pages
            save_hashes(self._session, HashBatch(columns, rows))
        self._session.commit()


PREFIX_COLUMNS = ("prefix_hash", "full_hash", "hash_algo")
FULL_COLUMNS = ("full_hash",)


class HashBatch(NamedTuple):
    """Hash results to write: ``rows`` of (id, size, mtime_ns, inode, *values), where size,
    mtime_ns and inode are what the file was when it was read and the values fill
    ``columns`` (:data:`PREFIX_COLUMNS` or :data:`FULL_COLUMNS`). Plain tuples: they cross
    from the workers to the scan's process by the hundred thousand."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def save_hashes(session: Session, batch: HashBatch) -> int:
    """Write a batch of hash results; returns the rows written.

    A row is written only where its size, mtime and inode still equal the values read: a
    concurrent scan that saw the file rewritten at the same size must win, or the stale hash
    would stay forever.
    """
    if not batch.rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # one UPDATE ... FROM (VALUES ...) per batch: ~4x the rows/s of execute_batch
        cursor = raw_cursor(session)
        try:
            execute_values(cursor, _pg_hash_update_sql(batch.columns), batch.rows,
                           page_size=len(batch.rows))
            return cursor.rowcount
        finally:
            cursor.close()
    dbapi = session.connection().connection.dbapi_connection
    before = dbapi.total_changes
    cursor = dbapi.cursor()
    try:  # straight to the driver: the scan's one writer is its bottleneck
        cursor.executemany(_sqlite_hash_update_sql(batch.columns), batch.rows)
    finally:
        cursor.close()
    return dbapi.total_changes - before


# the file metadata a hash was computed for: a row whose values differ now was changed by
# another scan meanwhile, and the hash must not land on it
_GUARD = ("size", "mtime_ns", "inode")


@functools.cache
def _pg_hash_update_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE file_hashes ... FROM (VALUES %s)`` for execute_values. The column names
    come from our own code (FileHash attributes), never from input."""
    _known(columns)
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    names = ", ".join(("id", *_GUARD, *columns))
    guard = " AND ".join(f"file_hashes.{g} = v.{g}" for g in _GUARD)
    return (f"UPDATE file_hashes SET {sets} FROM (VALUES %s) AS v({names}) "
            f"WHERE file_hashes.id = v.id AND {guard}")


@functools.cache
def _sqlite_hash_update_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE file_hashes SET ... WHERE id = ?1 AND <guard>`` taking a row of
    :class:`HashBatch` as it is (numbered parameters)."""
    _known(columns)
    sets = ", ".join(f"{c} = ?{n}" for n, c in enumerate(columns, start=5))
    guard = " AND ".join(f"{g} = ?{n}" for n, g in enumerate(_GUARD, start=2))
    return f"UPDATE file_hashes SET {sets} WHERE id = ?1 AND {guard}"


def _known(columns: tuple[str, ...]) -> None:
    """Column names go into SQL text: they come from our own code, and must be the table's."""
    if not set(columns) <= set(FileHash.__table__.c.keys()):
        raise ValueError(f"unknown columns: {columns}")
