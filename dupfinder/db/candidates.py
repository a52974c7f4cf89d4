"""Which files a scan must hash (the results go through :mod:`dupfinder.db.pending`).

Candidates are this host's files anywhere in the catalogue, not only under the scan's roots:
``scan ~/Pictures`` then ``scan /backup`` must find the copies between them without a third
scan. Reading a file another scan catalogued is made safe where it is read
(:func:`dupfinder.scan.hashing.open_readonly` refuses anything but a regular file, so a FIFO
that replaced a file cannot hang the scan), and problems with such files are not this scan's
errors (:mod:`dupfinder.scan.workers`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

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
    tuple_,
)

from dupfinder.db.bulk import TempTables, fresh_temp_table, pages_by_seq
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
