"""Duplicate groups, read from the table of contents (:mod:`dupfinder.db.contents`).

A group is a content (size, algorithm, full hash) held by at least two distinct inodes;
hard links to one inode are one file, not wasted space. A question about the whole
catalogue reads the kept counts: groups come biggest waste first straight from
``ix_contents_wasted``, a page at a time, and each page's files from
``ix_file_hashes_content``. A question about some folders, one host or reference folders
starts from the rows it is about (a range of the (host, path) index, or one host's rows),
takes the contents they hold and counts the groups over the selected members only: its
cost follows its answer, not the catalogue. Every page is a short read of its own, so
nothing holds a SQLite read transaction open while the output is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select, tuple_
from sqlalchemy.orm import Session

from dupfinder.db.file_rows import hosts_of, under
from dupfinder.db.models import Content, FileHash
from dupfinder.db.selection import EVERYTHING, Selection
from dupfinder.db.stored_paths import from_db, to_db
from dupfinder.states import GroupSort

F, C = FileHash, Content
PAGE = 1000  # groups per page
MEMBERS = 500  # contents per member query


@dataclass(frozen=True)
class GroupFile:
    """One file of a duplicate group."""

    path: str
    host: str
    mtime_ns: int
    device: int
    inode: int


@dataclass
class Group:
    """Files with one content: same algorithm, full hash and size, on >= 2 inodes."""

    number: int
    size: int
    hash: str
    algorithm: str
    inodes: int
    wasted: int
    files: list[GroupFile] = field(default_factory=list)


class Totals(NamedTuple):
    """Duplicate groups over a selection."""

    groups: int
    files: int
    wasted: int


class _Row(NamedTuple):
    content_id: int
    size: int
    hash: str
    algo: str
    files: int
    inodes: int
    wasted: int


def whole(sel: Selection) -> bool:
    """Whether ``sel`` asks about every group (at most a size limit): the kept counts of
    the contents are then its answer as they stand."""
    return not (sel.host or sel.roots or sel.references)


def _entry_conditions(sel: Selection, hosts: Sequence[str]) -> list[ColumnElement[bool]]:
    """The rows a selection starts from: under its folders, else under its reference
    folders, else of its host; each a range of the (host, path) index for each host."""
    conds: list[ColumnElement[bool]] = [F.content_id.is_not(None)]
    if sel.host:
        conds.append(F.host == sel.host)
    if sel.roots:
        conds.append(under(sel.roots, hosts))
    elif sel.references:
        conds.append(or_(*(r.condition(hosts) for r in sel.references)))
    return conds


def _hosts(session: Session | Connection, sel: Selection) -> list[str]:
    return [sel.host] if sel.host else hosts_of(session)


def group_rows(sel: Selection = EVERYTHING, hosts: Sequence[str] = ()) -> Select[Any]:
    """One row per duplicate group of the selection: content_id, size, hash, algo, files,
    inodes, wasted (counted over the selected members). ``hosts`` are the catalogue's
    (:func:`dupfinder.db.file_rows.hosts_of`), for a selection by folders."""
    if whole(sel):
        return select(C.id.label("content_id"), C.size, C.full_hash.label("hash"),
                      C.hash_algo.label("algo"), C.files, C.inodes, C.wasted).where(
            C.inodes > 1, C.size >= sel.min_size)
    held = select(F.content_id).where(*_entry_conditions(sel, hosts))
    per_inode = (
        select(F.content_id, func.count().label("links"), *sel.inode_flags())
        .where(F.content_id.in_(held), *sel.member_conditions())
        .group_by(F.content_id, F.host, F.device, F.inode)
        .subquery()
    )
    g = (select(per_inode.c.content_id, func.sum(per_inode.c.links).label("files"),
                func.count().label("inodes"))
         .group_by(per_inode.c.content_id)
         .having(func.count() > 1, *sel.group_conditions(per_inode))
         .subquery())
    return (select(g.c.content_id, C.size, C.full_hash.label("hash"),
                   C.hash_algo.label("algo"), g.c.files, g.c.inodes,
                   ((g.c.inodes - 1) * C.size).label("wasted"))
            .join(C, C.id == g.c.content_id).where(C.size >= sel.min_size))


def group_totals(session: Session, sel: Selection = EVERYTHING) -> Totals:
    """(groups, files in groups, wasted bytes) over the selection."""
    g = group_rows(sel, [] if whole(sel) else _hosts(session, sel)).subquery()
    row = session.execute(select(func.count(), func.coalesce(func.sum(g.c.files), 0),
                                 func.coalesce(func.sum(g.c.wasted), 0))).one()
    return Totals(int(row[0]), int(row[1]), int(row[2]))


_ORDER = {  # biggest first; ties by size, then by hash and algorithm, all descending
    GroupSort.WASTED: lambda r: (r.wasted, r.size, r.hash, r.algo),
    GroupSort.SIZE: lambda r: (r.size, r.wasted, r.hash, r.algo),
    GroupSort.COUNT: lambda r: (r.files, r.wasted, r.size, r.hash, r.algo),
}


def iter_groups(session: Session, sel: Selection = EVERYTHING,
                sort: GroupSort = GroupSort.WASTED) -> Iterator[Group]:
    """Stream duplicate groups, biggest waste first (or by ``size`` or file ``count``), each
    with its selected files ordered by host and path."""
    order = GroupSort(sort)
    # a connection of its own for the stream: each page ends its read (rollback) and keeps
    # the connection (a session would hand it back, and SQLite's are opened anew each time)
    with session.get_bind().connect() as conn:
        pages = (_whole_pages(conn, sel) if whole(sel) and order == GroupSort.WASTED
                 else _sorted_pages(conn, sel, order))
        number = 0
        for page in pages:
            members = _members(conn, sel, [r.content_id for r in page])
            conn.rollback()  # no read outlives a page
            for r in page:
                number += 1
                yield Group(number, int(r.size), r.hash, r.algo, int(r.inodes),
                            int(r.wasted), members.get(r.content_id, []))


def _whole_pages(session: Connection, sel: Selection) -> Iterator[list[_Row]]:
    """Every group in ``ix_contents_wasted`` order, a page at a time, by key."""
    key = (C.wasted, C.size, C.full_hash, C.hash_algo)
    base = group_rows(sel).order_by(*(k.desc() for k in key)).limit(PAGE)
    last: tuple[Any, ...] | None = None
    while True:
        stmt = base if last is None else base.where(tuple_(*key) < tuple_(*last))
        page = list(map(_Row._make, session.execute(stmt).cursor.fetchall()))
        if not page:
            return
        yield page
        tail = page[-1]
        last = (tail.wasted, tail.size, tail.hash, tail.algo)
        if len(page) < PAGE:
            return


def _sorted_pages(session: Connection, sel: Selection, order: GroupSort
                  ) -> Iterator[list[_Row]]:
    """The selection's groups (as many as its answer has), sorted, then paged."""
    rows = sorted((_Row(*r) for r in session.execute(group_rows(sel, _hosts(session, sel)))),
                  key=_ORDER[order], reverse=True)
    session.rollback()
    for i in range(0, len(rows), PAGE):
        yield rows[i:i + PAGE]


def _members(session: Connection, sel: Selection, ids: Sequence[int]
             ) -> dict[int, list[GroupFile]]:
    """The selected files of the contents ``ids``, by host and path."""
    out: dict[int, list[GroupFile]] = {}
    for i in range(0, len(ids), MEMBERS):
        part = ids[i:i + MEMBERS]
        found = session.execute(
            select(F.content_id, F.path, F.host, F.mtime_ns, F.device, F.inode)
            .where(F.content_id.in_(part), *sel.member_conditions())
            .order_by(F.content_id, F.host, F.path))
        # the driver's tuples: SQLAlchemy's row-by-row fetch cost more than the query
        for cid, path, host, mtime, device, inode in found.cursor.fetchall():
            out.setdefault(cid, []).append(GroupFile(from_db(path), host, mtime, device, inode))
    return out


def charged_copies(session: Session, sel: Selection = EVERYTHING) -> Iterator[tuple[int, str]]:
    """(size, order key of the path) of every copy a group's waste is charged to: in each
    group the first inode (by host and path) is the one kept, and each further inode's
    first path counts once. For the whole catalogue this is one pass over
    ``ix_file_hashes_content``, in its order, a range of contents per read."""
    if not whole(sel):
        for g in iter_groups(session, sel):
            for f in _charged([(f.host, f.path, f.device, f.inode) for f in g.files]):
                yield g.size, to_db(f)
        return
    with session.get_bind().connect() as conn:
        last = 0
        top = conn.scalar(select(func.max(C.id))) or 0
        while last < top:
            rows = conn.execute(
                select(F.content_id, C.size, F.host, F.path, F.device, F.inode)
                .select_from(C).join(F, F.content_id == C.id)
                # the range on the rows' side too: PostgreSQL otherwise read every row
                # (a hash join) for each page
                .where(C.id > last, C.id <= last + CHARGE_PAGE, C.inodes > 1,
                       C.size >= sel.min_size, F.content_id > last,
                       F.content_id <= last + CHARGE_PAGE)
                .order_by(F.content_id, F.host, F.path)).cursor.fetchall()
            conn.rollback()
            last += CHARGE_PAGE
            start = 0
            for i in range(1, len(rows) + 1):
                if i == len(rows) or rows[i][0] != rows[start][0]:
                    size = rows[start][1]
                    for key in _charged([r[2:] for r in rows[start:i]]):
                        yield size, key
                    start = i


CHARGE_PAGE = 20_000  # contents per read


def _charged(files: list[tuple[str, str, int, int]]) -> Iterator[str]:
    """Of one group's (host, path, device, inode) in (host, path) order, the paths charged:
    the first of each inode but the first inode's."""
    seen = {(files[0][0], files[0][2], files[0][3])}
    for host, path, device, inode in files[1:]:
        key = (host, device, inode)
        if key not in seen:  # not a hard link of an inode already counted
            seen.add(key)
            yield path
