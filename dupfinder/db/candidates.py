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
from collections.abc import Iterator
from typing import Any

from psycopg2.extras import execute_values
from sqlalchemy import Select, and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from dupfinder.db.bulk import STREAM_ROWS, raw_cursor, sqlite_executemany
from dupfinder.db.files import KnownFile
from dupfinder.db.models import FileHash
from dupfinder.db.paths import from_db

F = FileHash
_COLUMNS = (F.id, F.path, F.size, F.mtime_ns, F.device, F.inode)


# a file to hash, with the metadata its hash is valid for: the sync's row shape
Candidate = KnownFile


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
        .order_by(F.device, F.inode)
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
        .order_by(F.device, F.inode)
    )


def stream_candidates(session: Session, stmt: Select[Any]) -> Iterator[Candidate]:
    """Stream a candidate statement's rows, a few thousand at a time."""
    for row in session.execute(stmt.execution_options(yield_per=STREAM_ROWS)):
        yield Candidate(row.id, from_db(row.path), row.size, row.mtime_ns, row.device,
                        row.inode)


def count_and_bytes(session: Session, stmt: Select[Any]) -> tuple[int, int]:
    """(rows, sum of sizes) that a candidate statement would return."""
    sub = stmt.order_by(None).subquery()
    row = session.execute(select(func.count(), func.coalesce(func.sum(sub.c.size), 0))).one()
    return int(row[0]), int(row[1])


# the file metadata a hash was computed for: a row whose values differ now was changed by
# another scan meanwhile, and the hash must not land on it
_GUARD = ("size", "mtime_ns", "inode")


def save_hashes(session: Session, updates: list[dict[str, Any]]) -> int:
    """Write a batch of hash results: dicts of id, size, mtime_ns, inode (what the file
    was when read) and any of prefix_hash, full_hash, hash_algo; returns the rows written.

    A row is written only where its size, mtime and inode still equal the values read: a
    concurrent scan that saw the file rewritten at the same size must win, or the stale hash
    would stay forever. Every dict must carry the same keys.
    """
    if not updates:
        return 0
    columns = tuple(k for k in updates[0] if k != "id" and k not in _GUARD)
    if session.get_bind().dialect.name == "postgresql":
        # one UPDATE ... FROM (VALUES ...) per batch: ~4x the rows/s of execute_batch
        cursor = raw_cursor(session)
        try:
            execute_values(cursor, _pg_hash_update_sql(columns),
                           [(u["id"], *(u[g] for g in _GUARD), *(u[c] for c in columns))
                            for u in updates],
                           page_size=len(updates))
            return cursor.rowcount
        finally:
            cursor.close()
    params = [{"b_" + k: v for k, v in u.items()} for u in updates]
    before = session.connection().connection.dbapi_connection.total_changes
    sqlite_executemany(session, _hash_update(columns), params)
    return session.connection().connection.dbapi_connection.total_changes - before


@functools.cache
def _pg_hash_update_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE file_hashes ... FROM (VALUES %s)`` for execute_values. The column names
    come from our own code (FileHash attributes), never from input."""
    known = set(FileHash.__table__.c.keys())
    if not set(columns) <= known:
        raise ValueError(f"unknown columns: {columns}")
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    names = ", ".join(("id", *_GUARD, *columns))
    guard = " AND ".join(f"file_hashes.{g} = v.{g}" for g in _GUARD)
    return (f"UPDATE file_hashes SET {sets} FROM (VALUES %s) AS v({names}) "
            f"WHERE file_hashes.id = v.id AND {guard}")


@functools.cache
def _hash_update(columns: tuple[str, ...]) -> Any:
    t = FileHash.__table__
    return (
        update(t)
        .where(and_(t.c.id == bindparam("b_id"),
                    *(t.c[g] == bindparam("b_" + g) for g in _GUARD)))
        .values({c: bindparam("b_" + c) for c in columns})
    )
