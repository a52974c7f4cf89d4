"""Files under some folders with too few copies elsewhere ("what exists only here?").

The files examined are one host's catalogue rows under the filesystem folders ``roots``. A
*copy* of such a file is another catalogued file with the same content that

* lies outside the roots, or on another host (the roots are folders of the examined host),
* is on one of the counted ``hosts`` (default: every host), and
* is a different inode: a hard link (same host, device and inode) is the same file, not a
  copy. Hard links of one inode outside the roots count as one copy.

Same content means the same size and, for a non-empty file, the same full hash by the same
algorithm (``hash_algo``). Empty files all have the same content and need no hash.

Rule for files that are not hashed yet (the scanner hashes a file only when its size
collides with another inode's, and reads it in full only when the prefix hashes collide too):
an outside file of the same size is a *possible* copy unless the hashes both sides have
prove the contents differ (different prefix hash or different full hash by the same
algorithm). A file whose known copies are fewer than ``min_copies`` is reported; it is
reported as ``undecided`` when its known plus possible copies would reach ``min_copies``,
i.e. when the answer depends on hashes not computed yet (a scan of both sides computes
them). In particular a file whose size no outside file has is unique without being hashed.

Everything is counted by the database in one statement, with no per-file query: outside
inodes are grouped by (size), (size, algorithm), (size, algorithm, prefix hash) and (size,
algorithm, full hash), and each examined file picks its counts up by equality joins, so the
work stays linear however many files share a size. Results stream, ordered by path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from dupfinder.db.bulk import stream_raw
from dupfinder.db.files import under
from dupfinder.db.models import FileHash
from dupfinder.db.paths import from_db

F = FileHash


class UniqueFile(NamedTuple):
    """A file under the roots with fewer than ``min_copies`` known copies outside them.

    ``copies`` counts the known copies (distinct inodes); ``undecided`` is true when files
    of the same size outside are not hashed enough to tell, and counting them as copies
    would reach ``min_copies``.
    """

    path: str
    host: str
    size: int
    copies: int
    undecided: bool


class UniqueTotals(NamedTuple):
    """How many reported files, and their bytes (each inode counted once)."""

    files: int
    bytes: int


def _unique_rows(roots: Sequence[str] | None, min_copies: int, hosts: Iterable[str] | None,
                 host: str, undecided: bool | None) -> Select[Any]:
    """One row per reported file: path, host, size, device, inode, copies, undecided."""
    outside: ColumnElement[bool] = or_(F.host != host, not_(under(roots)))
    if hosts is not None:
        # host = ... OR ...: stream_raw compiles once, without "expanding" IN parameters
        outside = and_(outside, or_(false(), *(F.host == h for h in hosts)))
    # the outside files, one row per inode (hard links fold), and the examined files
    o = (
        select(literal(None, F.path.type).label("path"), F.host, F.device, F.inode,
               func.min(F.size).label("size"), func.min(F.hash_algo).label("algo"),
               func.min(F.prefix_hash).label("prefix"), func.min(F.full_hash).label("full"),
               literal(1).label("outside"))
        .where(outside)
        .group_by(F.host, F.device, F.inode)
    )
    mine = select(F.path, F.host, F.device, F.inode, F.size, F.hash_algo.label("algo"),
                  F.prefix_hash.label("prefix"), F.full_hash.label("full"),
                  literal(0).label("outside")).where(F.host == host, under(roots))
    u = union_all(mine, o).subquery("u")

    def outside_count(*partition: Any, when: ColumnElement[bool] | None = None) -> Any:
        counted = u.c.outside if when is None else case((when, u.c.outside), else_=0)
        return func.sum(counted).over(partition_by=partition)

    def own(col: Any) -> Any:  # the examined file's own inode as seen outside, if linked
        return func.max(case((u.c.outside == 1, col))).over(
            partition_by=(u.c.host, u.c.device, u.c.inode, u.c.size))

    w = select(
        u.c.path, u.c.host, u.c.size, u.c.device, u.c.inode, u.c.algo, u.c.prefix, u.c.full,
        u.c.outside,
        outside_count(u.c.size).label("n_size"),
        outside_count(u.c.size, u.c.algo).label("n_algo"),
        outside_count(u.c.size, u.c.algo, u.c.prefix).label("n_prefix"),
        outside_count(u.c.size, u.c.algo, u.c.prefix,
                      when=u.c.full.is_not(None)).label("n_prefix_full"),
        outside_count(u.c.size, u.c.algo, u.c.full).label("n_full"),
        outside_count(u.c.host, u.c.device, u.c.inode, u.c.size).label("own_n"),
        own(u.c.algo).label("own_algo"), own(u.c.prefix).label("own_prefix"),
        own(u.c.full).label("own_full"),
    ).subquery("w")

    empty = w.c.size == 0
    has_full = and_(w.c.full.is_not(None), w.c.algo.is_not(None))
    has_prefix = and_(w.c.prefix.is_not(None), w.c.algo.is_not(None))
    n_size = w.c.n_size
    # outside inodes with the same content; those whose hashes do not prove a difference
    known = case((empty, n_size), (has_full, w.c.n_full), else_=0)
    other_algo = n_size - case((w.c.algo.is_not(None), w.c.n_algo), else_=0)
    possible = case(
        (empty, 0),
        (has_full, other_algo + w.c.n_prefix - w.c.n_prefix_full),
        (has_prefix, other_algo + w.c.n_prefix),
        else_=n_size,
    )
    # the same tests for the examined file's own inode seen from outside
    own_there = w.c.own_n > 0
    own_algo_differs = or_(w.c.own_algo.is_(None), w.c.own_algo != w.c.algo)
    own_known = and_(own_there, or_(
        empty, and_(has_full, w.c.own_algo == w.c.algo, w.c.own_full == w.c.full)))
    own_possible = and_(own_there, not_(empty), case(
        (has_full, or_(own_algo_differs,
                       and_(w.c.own_prefix == w.c.prefix, w.c.own_full.is_(None)))),
        (has_prefix, or_(own_algo_differs, w.c.own_prefix == w.c.prefix)),
        else_=literal(True),
    ))
    copies = known - case((own_known, 1), else_=0)
    maybe = possible - case((own_possible, 1), else_=0)
    inner = (select(w.c.path, w.c.host, w.c.size, w.c.device, w.c.inode,
                    copies.label("copies"), maybe.label("maybe"))
             .where(w.c.outside == 0).subquery("inner"))
    is_undecided = inner.c.copies + inner.c.maybe >= min_copies
    stmt = select(inner.c.path, inner.c.host, inner.c.size, inner.c.device, inner.c.inode,
                  inner.c.copies, is_undecided.label("undecided")
                  ).where(inner.c.copies < min_copies)
    if undecided is not None:
        stmt = stmt.where(is_undecided if undecided else not_(is_undecided))
    return stmt


def unique_files(session: Session, roots: Sequence[str] | None, min_copies: int = 1,
                 hosts: Iterable[str] | None = None, *, host: str,
                 undecided: bool | None = None) -> Iterator[UniqueFile]:
    """Stream ``host``'s files under the filesystem folders ``roots`` that have fewer than
    ``min_copies`` known copies outside them, ordered by path.

    Copies on every host count unless ``hosts`` names the hosts that do (``host`` itself
    included: its files outside the roots count only when it is named). ``undecided``:
    None reports every such file, True only the undecided ones, False only the decided
    ones. No ``roots`` examines every file of the host (copies then lie on other hosts).
    """
    rows = _unique_rows(roots, min_copies, hosts, host, undecided).subquery()
    stmt = (select(rows.c.path, rows.c.host, rows.c.size, rows.c.copies, rows.c.undecided)
            .order_by(rows.c.path))
    for path, on, size, copies, undecided_ in stream_raw(session, stmt):
        yield UniqueFile(from_db(path), on, int(size), int(copies), bool(undecided_))


def unique_totals(session: Session, roots: Sequence[str] | None, min_copies: int = 1,
                  hosts: Iterable[str] | None = None, *, host: str,
                  undecided: bool | None = None) -> UniqueTotals:
    """(files, bytes) of what :func:`unique_files` reports, counted by the database.

    ``files`` counts paths; ``bytes`` counts each inode once (hard links under the roots
    take the space once).
    """
    rows = _unique_rows(roots, min_copies, hosts, host, undecided).subquery()
    per_inode = (select(func.count().label("paths"), func.max(rows.c.size).label("size"))
                 .group_by(rows.c.device, rows.c.inode).subquery())
    files, nbytes = session.execute(
        select(func.coalesce(func.sum(per_inode.c.paths), 0),
               func.coalesce(func.sum(per_inode.c.size), 0))
    ).one()
    return UniqueTotals(int(files), int(nbytes))
