"""The catalogue's file rows: what a scan's sync reads, upserts and removes.

Callers hand in and get back filesystem paths; the stored form is made here.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, column, delete, literal, or_, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dupfinder.db.bulk import batched, raw_cursor, sqlite_executemany, stream_raw
from dupfinder.db.models import FileHash
from dupfinder.db.paths import DbPath, db_roots, from_db, subtree_range, to_db

F = FileHash


def under_roots(roots: Sequence[DbPath]) -> ColumnElement[bool]:
    """SQL condition: the file's path is one of ``roots`` or lies below one of them.

    Uses index-friendly ranges, not LIKE.
    """
    parts: list[ColumnElement[bool]] = []
    for root in roots:
        lo, hi = subtree_range(root)
        parts.append(F.path == root)
        parts.append(and_(F.path >= lo, F.path < hi))
    return or_(*parts) if parts else literal(True)


def under(roots: Iterable[str] | None) -> ColumnElement[bool]:
    """:func:`under_roots` for filesystem folders (no folders: every file)."""
    return under_roots(db_roots(roots))


class KnownFile(NamedTuple):
    """A catalogued file as the sync compares it with the walk (and as the hashing stages
    read their candidates)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int


def existing_files(session: Session, host: str, roots: Sequence[str]) -> Iterator[KnownFile]:
    """Stream the host's rows under the filesystem folders ``roots``."""
    stmt = (select(F.id, F.path, F.size, F.mtime_ns, F.device, F.inode)
            .where(F.host == host, under(roots)))
    for fid, path, size, mtime_ns, device, inode in stream_raw(session, stmt):
        yield KnownFile(fid, from_db(path), size, mtime_ns, device, inode)


def upsert_files(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or update a batch of file records in one statement.

    Each row has host, path, name (filesystem forms), size, mtime_ns, device, inode, nlink,
    scan_id, last_seen (and first_seen). A conflicting (host, path) row is updated; its
    hashes are kept when size, mtime, device and inode are unchanged and cleared otherwise.
    """
    if not rows:
        return
    rows = [{**r, "path": to_db(r["path"]), "name": to_db(r["name"])} for r in rows]
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        sqlite_executemany(session, _upsert_statement("sqlite"), rows)
        return
    # PostgreSQL: COPY the batch into a temporary table, then one INSERT ... SELECT ...
    # ON CONFLICT. Measured on 2 cores: ~100k rows/s, against ~36k with execute_values
    # and ~8k through SQLAlchemy's executemany.
    columns = tuple(rows[0])
    sql, stage = _pg_upsert_sql(dialect, columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    text: dict[Any, str] = {}  # format each shared timestamp once per batch
    writer.writerows([tuple(_csv_value(r[c], text) for c in columns) for r in rows])
    buf.seek(0)
    cursor = raw_cursor(session)
    try:
        names = ", ".join(columns)
        cursor.execute(  # the columns' types, none of file_hashes' constraints
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
            f"AS SELECT {names} FROM file_hashes WITH NO DATA"
        )
        cursor.copy_expert(f"COPY {stage} ({names}) FROM STDIN WITH (FORMAT csv)", buf)
        cursor.execute(sql)
        cursor.execute(f"TRUNCATE {stage}")
    finally:
        cursor.close()


def _csv_value(value: Any, memo: dict[Any, str]) -> Any:
    if isinstance(value, datetime):
        if value not in memo:
            memo[value] = value.isoformat()
        return memo[value]
    return value


@functools.cache
def _pg_upsert_sql(dialect: Any, columns: tuple[str, ...]) -> tuple[str, str]:
    """The PostgreSQL upsert reading its rows from a staging table (one per column set),
    compiled by SQLAlchemy: returns the SQL and the staging table's name. The column names
    come from our own code, never from input."""
    known = set(F.__table__.c.keys())
    if not set(columns) <= known:
        raise ValueError(f"unknown columns: {columns}")
    stage = "dupfinder_stage_" + hashlib.sha1(",".join(columns).encode()).hexdigest()[:10]
    source = table(stage, *(column(c) for c in columns))
    ins = postgresql.insert(F.__table__).from_select(list(columns), select(*source.c))
    return str(_on_conflict(ins).compile(dialect=dialect)), stage


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (host, path) DO UPDATE of one row of parameters."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(F.__table__)
    return _on_conflict(ins)


def _on_conflict(ins: Any) -> Any:
    """The upsert rule: a known (host, path) takes the new metadata and keeps its hashes
    only when size, mtime, device and inode are unchanged."""
    t = FileHash.__table__
    ex = ins.excluded
    c = t.c
    same = and_(
        c.size == ex.size, c.mtime_ns == ex.mtime_ns, c.device == ex.device, c.inode == ex.inode
    )
    return ins.on_conflict_do_update(
        index_elements=[c.host, c.path],
        set_={
            "name": ex.name,
            "size": ex.size,
            "mtime_ns": ex.mtime_ns,
            "device": ex.device,
            "inode": ex.inode,
            "nlink": ex.nlink,
            "last_seen": ex.last_seen,
            "scan_id": ex.scan_id,
            "prefix_hash": case((same, c.prefix_hash), else_=None),
            "full_hash": case((same, c.full_hash), else_=None),
            "hash_algo": case((same, c.hash_algo), else_=None),
        },
    )


def delete_files(session: Session, ids: Iterable[int], batch_size: int = 1000) -> int:
    """Remove catalogue rows by id, in batches; returns how many were removed."""
    removed = 0
    for chunk in batched(ids, batch_size):
        removed += session.execute(delete(F).where(F.id.in_(chunk))).rowcount or 0
    return removed
