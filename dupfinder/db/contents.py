"""The table of contents: one row per full-hashed content, with who holds it.

Every question starts here: ``stats`` sums it, ``dupes`` walks its groups biggest waste
first, ``unique`` asks how many inodes hold a file's content. So the counts are kept, not
recounted: whatever writes ``file_hashes`` (a scan's merge, a sync removing or changing
files, dedupe, undo, a merge of catalogues) collects the content ids of the rows it changed,
before and after, and calls :func:`refresh` with them in the same transaction. A refresh
recounts those contents from their rows through ``ix_file_hashes_content``, so its cost is
the size of the groups touched, and a content no row holds any more is removed: the table
can never disagree with a recount (:func:`recount` is that recount).

A content is made by :func:`ensure` before a row points to it; ``content_id`` is NULL exactly
when a row has no full hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    and_,
    column,
    delete,
    exists,
    func,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy.orm import Session

from dupfinder.db.bulk import dialect_insert as _insert
from dupfinder.db.models import Content, FileHash

F, C = FileHash, Content
# a session, or a connection (the sync's own, which holds its temporary tables)
Executor = Session | Connection


def _dialect(session: Executor) -> str:
    return (session.dialect if isinstance(session, Connection)
            else session.get_bind().dialect).name
CHUNK = 500  # ids per statement


class ContentKey(NamedTuple):
    """What makes two files the same content."""

    size: int
    algo: str
    full: str


def _chunks(ids: Sequence[Any], n: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def _counts(condition: Any) -> Any:
    """Per content: files, distinct inodes, hosts, over the rows that ``condition`` picks."""
    per_inode = (select(F.content_id, F.host, func.count().label("links"))
                 .where(F.content_id.is_not(None), condition)
                 .group_by(F.content_id, F.host, F.device, F.inode).subquery())
    return (select(per_inode.c.content_id, func.sum(per_inode.c.links).label("files"),
                   func.count().label("inodes"),
                   func.count(func.distinct(per_inode.c.host)).label("hosts"))
            .group_by(per_inode.c.content_id).subquery())


def lock(session: Executor, ids: Iterable[int | None]) -> None:
    """PostgreSQL: lock the contents ``ids`` (in id order, so that two writers never wait
    for each other in a circle) until the transaction ends. Two transactions recounting one
    content at once would each miss the other's rows; with the lock the second recounts
    after the first has committed. (SQLite has one writer at a time.)"""
    if _dialect(session) != "postgresql":
        return
    for chunk in _chunks(sorted({i for i in ids if i is not None})):
        session.execute(select(C.id).where(C.id.in_(chunk)).order_by(C.id).with_for_update())


def refresh(session: Executor, ids: Iterable[int | None]) -> None:
    """Recount the contents ``ids`` from their rows (locked first: :func:`lock`); drop those
    no row holds any more. Many ids (a scan's merge) go through a temporary table, so that
    one statement recounts them all."""
    todo = sorted({i for i in ids if i is not None})
    if len(todo) > 4 * CHUNK:
        _refresh_many(session, todo)
        return
    lock(session, todo)
    for chunk in _chunks(todo):
        agg = _counts(F.content_id.in_(chunk))
        session.execute(
            update(C).where(C.id == agg.c.content_id)
            .values(files=agg.c.files, inodes=agg.c.inodes, hosts=agg.c.hosts,
                    wasted=(agg.c.inodes - 1) * C.size))
        session.execute(delete(C).where(C.id.in_(chunk), ~exists().where(F.content_id == C.id)))


_TOUCHED = "dupfinder_touched"
# the touched ids drive the join: each is a seek into ix_file_hashes_content (SQLite reads a
# CROSS JOIN in the order written; left to itself it scanned the whole index per chunk)
_RECOUNT = (
    "UPDATE contents SET files = a.files, inodes = a.inodes, hosts = a.hosts, "
    "wasted = (a.inodes - 1) * contents.size FROM (SELECT content_id, sum(links) AS files, "
    "count(*) AS inodes, count(DISTINCT host) AS hosts FROM (SELECT f.content_id, f.host, "
    f"count(*) AS links FROM {_TOUCHED} t {{join}} file_hashes f {{on}} f.content_id = t.id "
    "GROUP BY f.content_id, f.host, f.device, f.inode) AS per_inode GROUP BY content_id) AS a "
    "WHERE contents.id = a.content_id")
_DROP_EMPTY = (
    f"DELETE FROM contents WHERE id IN (SELECT id FROM {_TOUCHED}) AND NOT EXISTS "
    "(SELECT 1 FROM file_hashes f WHERE f.content_id = contents.id)")


def _refresh_many(session: Executor, todo: list[int]) -> None:
    note_touched(session, todo)
    recount_touched(session)


def _touched_table(session: Executor) -> bool:
    """Make the temporary table of touched ids if missing; True if it was there already."""
    pg = _dialect(session) == "postgresql"
    exists_sql = ("SELECT to_regclass('pg_temp.' || :t) IS NOT NULL" if pg else
                  "SELECT count(*) FROM sqlite_temp_master WHERE type = 'table' AND name = :t")
    there = bool(session.execute(text(exists_sql), {"t": _TOUCHED}).scalar())
    if not there:
        session.execute(text(f"CREATE TEMPORARY TABLE {_TOUCHED} (id BIGINT PRIMARY KEY)"))
    return there


def note_touched(session: Executor, ids: Iterable[int | None]) -> None:
    """Add contents to recount at :func:`recount_touched`, in the session's temporary table
    (a merge of millions of rows keeps its touched contents there, not in memory)."""
    _touched_table(session)
    ins = _insert(_dialect(session))(table(_TOUCHED, column("id")))
    todo = sorted({i for i in ids if i is not None})
    for i in range(0, len(todo), 10 * CHUNK):
        session.execute(ins.on_conflict_do_nothing(index_elements=["id"]),
                        [{"id": cid} for cid in todo[i:i + 10 * CHUNK]])


def recount_touched(session: Executor) -> None:
    """Recount every content :func:`note_touched` noted (locked first), drop those no row
    holds any more, and forget the notes."""
    if not _touched_table(session):
        return
    pg = _dialect(session) == "postgresql"
    if pg:
        # a temporary table has no statistics until analyzed: planned as a few rows, the
        # recount of many contents read every row once per content
        session.execute(text(f"ANALYZE {_TOUCHED}"))
        session.execute(text(f"SELECT id FROM contents WHERE id IN (SELECT id FROM {_TOUCHED}) "
                             "ORDER BY id FOR UPDATE"))
    session.execute(text(_RECOUNT.format(join="JOIN" if pg else "CROSS JOIN",
                                         on="ON" if pg else "WHERE")))
    session.execute(text(_DROP_EMPTY))
    session.execute(text(f"DELETE FROM {_TOUCHED}"))


def ensure(session: Executor, keys: Iterable[ContentKey]) -> dict[ContentKey, int]:
    """The ids of the contents ``keys``, made (with zero counts) where missing; concurrent
    scans making the same content meet in the unique key, not in a second row."""
    wanted = sorted(set(keys))
    found: dict[ContentKey, int] = {}
    ins = _insert(_dialect(session))(C)
    for chunk in _chunks(wanted):
        session.execute(ins.on_conflict_do_nothing(
            index_elements=[C.full_hash, C.size, C.hash_algo]),
            [{"size": k.size, "hash_algo": k.algo, "full_hash": k.full, "files": 0,
              "inodes": 0, "hosts": 0, "wasted": 0} for k in chunk])
        asked = set(chunk)
        for cid, size, algo, full in session.execute(
                select(C.id, C.size, C.hash_algo, C.full_hash)
                .where(C.full_hash.in_([k.full for k in chunk]))):
            key = ContentKey(size, algo, full)
            if key in asked:
                found[key] = cid
    return found


def ids_of_paths(session: Executor, host: str, paths: Sequence[str]) -> set[int]:
    """The content ids of rows (stored paths) about to change or go."""
    out: set[int] = set()
    for chunk in _chunks(list(paths)):
        out.update(i for i in session.scalars(
            select(F.content_id).where(F.host == host, F.path.in_(chunk),
                                       F.content_id.is_not(None))))
    return out


def ids_of_rows(session: Executor, row_ids: Sequence[int]) -> set[int]:
    """The content ids of rows (by id) about to change or go."""
    out: set[int] = set()
    for chunk in _chunks(list(row_ids)):
        out.update(i for i in session.scalars(
            select(F.content_id).where(F.id.in_(chunk), F.content_id.is_not(None))))
    return out


def recount(session: Executor) -> dict[ContentKey, tuple[int, int, int, int]]:
    """Every content recounted from the rows: key -> (files, inodes, hosts, wasted); what
    the kept table must equal."""
    per_inode = (select(F.size, F.hash_algo, F.full_hash, F.host, func.count().label("links"))
                 .where(F.full_hash.is_not(None), F.hash_algo.is_not(None))
                 .group_by(F.size, F.hash_algo, F.full_hash, F.host, F.device, F.inode)
                 .subquery())
    p = per_inode.c
    rows = session.execute(
        select(p.size, p.hash_algo, p.full_hash, func.sum(p.links), func.count(),
               func.count(func.distinct(p.host)))
        .group_by(p.size, p.hash_algo, p.full_hash))
    return {ContentKey(int(size), algo, full): (int(files), int(inodes), int(hosts),
                                                (int(inodes) - 1) * int(size))
            for size, algo, full, files, inodes, hosts in rows}


def kept(session: Executor) -> dict[ContentKey, tuple[int, int, int, int]]:
    """The kept table, in :func:`recount`'s shape."""
    return {ContentKey(int(r.size), r.hash_algo, r.full_hash):
            (int(r.files), int(r.inodes), int(r.hosts), int(r.wasted))
            for r in session.execute(select(C.size, C.hash_algo, C.full_hash, C.files,
                                             C.inodes, C.hosts, C.wasted))}


def linked_correctly(session: Executor) -> int:
    """How many rows point to a content other than their own (size, algorithm, hash) or
    have a full hash and no content: zero in a sound catalogue."""
    wrong = select(func.count()).select_from(F).outerjoin(C, C.id == F.content_id).where(
        (F.full_hash.is_not(None) & F.hash_algo.is_not(None)) != F.content_id.is_not(None)
        | (F.content_id.is_not(None) & ~and_(C.size == F.size, C.hash_algo == F.hash_algo,
                                              C.full_hash == F.full_hash)))
    return int(session.scalar(wrong) or 0)


def recount_all(session: Executor) -> None:
    """Recount every content in one pass over the rows (after a cold load), and drop the
    contents no row holds. On PostgreSQL the table is locked first: a scan that started
    meanwhile waits for the recount rather than have its own recount overwritten."""
    if _dialect(session) == "postgresql":
        session.execute(text("LOCK TABLE contents IN EXCLUSIVE MODE"))
    session.execute(text(
        "UPDATE contents SET files = a.files, inodes = a.inodes, hosts = a.hosts, "
        "wasted = (a.inodes - 1) * contents.size FROM (SELECT content_id, sum(links) AS files, "
        "count(*) AS inodes, count(DISTINCT host) AS hosts FROM (SELECT content_id, host, "
        "count(*) AS links FROM file_hashes WHERE content_id IS NOT NULL "
        "GROUP BY content_id, host, device, inode) AS per_inode GROUP BY content_id) AS a "
        "WHERE contents.id = a.content_id"))
    session.execute(text("DELETE FROM contents WHERE files = 0"))


def build_all(session: Executor) -> None:
    """Make the contents of every hashed row and point the rows to them (the migration to
    schema 4, and a repair)."""
    session.execute(delete(C))
    per_inode = (select(F.size, F.hash_algo, F.full_hash, F.host, func.count().label("links"))
                 .where(F.full_hash.is_not(None), F.hash_algo.is_not(None))
                 .group_by(F.size, F.hash_algo, F.full_hash, F.host, F.device, F.inode)
                 .subquery())
    p = per_inode.c
    session.execute(insert(C).from_select(
        ["size", "hash_algo", "full_hash", "files", "inodes", "hosts", "wasted"],
        select(p.size, p.hash_algo, p.full_hash, func.sum(p.links), func.count(),
               func.count(func.distinct(p.host)), (func.count() - 1) * p.size)
        .group_by(p.size, p.hash_algo, p.full_hash)))
    session.execute(update(F).values(content_id=(
        select(C.id).where(C.full_hash == F.full_hash, C.size == F.size,
                           C.hash_algo == F.hash_algo).scalar_subquery())))
