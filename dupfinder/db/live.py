"""What ``dupfinder watch`` writes besides a scan's rows, and what it asks to say what
changed: moved rows, and the duplicate groups at some paths before and after.

A rename moves the rows at and below the old path to the new one in one statement, with
their hashes: a file keeps its device and inode through a rename, so no content's counts
change (the rows a rename replaces at the new path are removed first, and their contents
recounted, in the same transaction).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, String, and_, case, delete, func, literal, select, update

from dupfinder.db import contents
from dupfinder.db.bulk import batched
from dupfinder.db.file_rows import under
from dupfinder.db.models import Content, FileHash
from dupfinder.db.stored_paths import from_db, to_db

F, C = FileHash, Content


def move_rows(conn: Connection, host: str, old: str, new: str, now: datetime) -> int:
    """Move the host's rows at and below ``old`` to ``new``; returns how many moved.
    Commits."""
    replaced = conn.execute(select(F.id, F.content_id).where(under([new], [host]))).all()
    if replaced:
        for part in batched([r.id for r in replaced], 500):
            conn.execute(delete(F).where(F.id.in_(part)))
        contents.refresh(conn, {r.content_id for r in replaced})
    o = to_db(old)
    moved = conn.execute(
        update(F).where(under([old], [host])).values(
            path=literal(to_db(new), String) + func.substr(F.path, len(o) + 1, type_=String),
            name=case((F.path == o, to_db(os.path.basename(new))), else_=F.name),
            last_seen=now, scan_id=None)).rowcount or 0
    conn.commit()
    return moved


class Copy(NamedTuple):
    """A file of a duplicate group."""

    content_id: int
    path: str
    size: int


class Held(NamedTuple):
    """A duplicate group's count of inodes, and its files' size."""

    inodes: int
    size: int


def groups_under(conn: Connection, host: str, scope: Sequence[str]) -> dict[int, Held]:
    """The duplicate groups (content id -> inodes and size) with a file of ``host`` at or
    below a path of ``scope``."""
    found = conn.execute(
        select(C.id, C.inodes, C.size).join(F, F.content_id == C.id)
        .where(C.inodes > 1, under(scope, [host])).distinct())
    return {r.id: Held(r.inodes, r.size) for r in found}


def inodes_of(conn: Connection, ids: Iterable[int]) -> dict[int, int]:
    """Each content's inodes now (a content no longer held is left out)."""
    out: dict[int, int] = {}
    todo = sorted(set(ids))
    for i in range(0, len(todo), 500):
        part = todo[i:i + 500]
        out.update((r.id, r.inodes) for r in conn.execute(
            select(C.id, C.inodes).where(C.id.in_(part))))
    return out


def copies_written(conn: Connection, host: str, scope: Sequence[str], scan_id: int
                   ) -> list[Copy]:
    """The files scan ``scan_id`` wrote at or below ``scope`` that are in a group now."""
    found = conn.execute(
        select(F.content_id, F.path, F.size).join(C, F.content_id == C.id)
        .where(F.scan_id == scan_id, C.inodes > 1, under(scope, [host]))
        .order_by(F.path))
    return [Copy(r.content_id, from_db(r.path), r.size) for r in found]


def other_file(conn: Connection, content_id: int, host: str, path: str | None
               ) -> tuple[str, str] | None:
    """(host, path) of a file of the content other than ``path`` of ``host``: this host's
    first, then by path (the copy a new file duplicates, or the one a group leaves)."""
    query = select(F.host, F.path).where(F.content_id == content_id)
    if path is not None:
        query = query.where(~and_(F.host == host, F.path == to_db(path)))
    row = conn.execute(query.order_by((F.host != host), F.path).limit(1)).first()
    return None if row is None else (row.host, from_db(row.path))


def first_others(conn: Connection, copies: Sequence[Copy], host: str, scan_id: int
                 ) -> dict[str, tuple[str, str]]:
    """For each new copy, (host, path) of another file of its content: this host's first,
    then files the scan ``scan_id`` did not write, then by path. One query per 500
    contents, two rows of each (one of them is not the copy)."""
    out: dict[str, tuple[str, str]] = {}
    ids = sorted({c.content_id for c in copies})
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        rank = func.row_number().over(
            partition_by=F.content_id,
            order_by=((F.host != host), func.coalesce(F.scan_id == scan_id, False),
                      F.path)).label("rank")
        ranked = (select(F.content_id, F.host, F.path, rank)
                  .where(F.content_id.in_(part)).subquery())
        firsts: dict[int, list[tuple[str, str]]] = {}
        for r in conn.execute(select(ranked).where(ranked.c.rank <= 2)
                              .order_by(ranked.c.content_id, ranked.c.rank)):
            firsts.setdefault(r.content_id, []).append((r.host, from_db(r.path)))
        for c in copies:
            if c.content_id in firsts:
                other = next((f for f in firsts[c.content_id] if f != (host, c.path)), None)
                if other is not None:
                    out[c.path] = other
    return out
