"""The catalogue's file rows: the upsert rule and the "under these folders" condition
(a scan's sync compares its walk with them through :mod:`dupfinder.db.rows`).

Callers hand in and get back filesystem paths; the stored form is made here.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, column, literal, or_, select, table, text
from sqlalchemy.orm import Session

from dupfinder.db.bulk import copy_csv, raw_cursor, sqlite_executemany
from dupfinder.db.bulk import dialect_insert as _insert
from dupfinder.db.models import FileHash
from dupfinder.db.stored_paths import DbPath, db_roots, from_db, subtree_range, to_db

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


def under(roots: Iterable[str] | None, hosts: Sequence[str] | None = None
          ) -> ColumnElement[bool]:
    """:func:`under_roots` for filesystem folders (no folders: every file). With ``hosts``
    each host's range is its own, so the (host, path) index serves the question (a range
    of paths alone, on any host, is no range of that index)."""
    if hosts is None or not roots:
        return under_roots(db_roots(roots))
    # one term per (host, path) and (host, range), each a seek of that index: SQLite does
    # not carry a host test outside an OR into its terms, and with it outside read every
    # row of the host instead
    terms: list[ColumnElement[bool]] = []
    for root in db_roots(roots):
        lo, hi = subtree_range(root)
        for h in hosts:
            terms += [and_(F.host == h, F.path == root),
                      and_(F.host == h, F.path >= lo, F.path < hi)]
    return or_(*terms)


def hosts_of(session: Any) -> list[str]:
    """The hosts the catalogue holds files of, sorted: one index seek per host (a skip
    scan of the (host, path) index), not a pass over the rows."""
    found = session.execute(text(
        "WITH RECURSIVE h(host) AS (SELECT min(host) FROM file_hashes UNION ALL "
        "SELECT (SELECT min(host) FROM file_hashes WHERE host > h.host) FROM h "
        "WHERE h.host IS NOT NULL) SELECT host FROM h WHERE host IS NOT NULL"))
    return [row[0] for row in found]


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
    # ON CONFLICT: several times faster than execute_values, and far faster than
    # SQLAlchemy's executemany.
    columns = tuple(rows[0])
    sql, stage = _pg_upsert_sql(dialect, columns)
    cursor = raw_cursor(session)
    try:
        names = ", ".join(columns)
        cursor.execute(  # the columns' types, none of file_hashes' constraints
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
            f"AS SELECT {names} FROM file_hashes WITH NO DATA"
        )
        copy_csv(cursor, stage, columns, [tuple(r[c] for c in columns) for r in rows])
        cursor.execute(sql)
        cursor.execute(f"TRUNCATE {stage}")
    finally:
        cursor.close()


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
    from sqlalchemy.dialects import postgresql  # only a PostgreSQL catalogue needs it

    ins = postgresql.insert(F.__table__).from_select(list(columns), select(*source.c))
    return str(on_conflict(ins).compile(dialect=dialect)), stage


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (host, path) DO UPDATE of one row of parameters."""
    ins = _insert(dialect)(F.__table__)
    return on_conflict(ins)


def on_conflict(ins: Any) -> Any:
    """The upsert rule: a known (host, path) takes the new metadata and keeps its hashes
    (and its content) only when size, mtime, device and inode are unchanged. The caller
    refreshes the contents of the rows it changed (:mod:`dupfinder.db.contents`)."""
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
            "content_id": case((same, c.content_id), else_=None),
        },
    )


def catalogued_paths(session: Session, host: str, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` (filesystem paths) that the catalogue holds as ``host``'s files,
    looked up by the (host, path) key a few hundred at a time."""
    wanted = sorted({to_db(p) for p in paths})
    found: set[str] = set()
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        found.update(from_db(p) for p in session.scalars(
            select(F.path).where(F.host == host, F.path.in_(chunk))))
    return found
