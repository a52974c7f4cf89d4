"""Read-side queries for the outputs: duplicate groups with their files, statistics.

Everything streams: groups arrive one after another, in order, from one query, so a
catalogue of millions of rows is never held in memory.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dupfinder.db.catalogue import (
    STREAM_ROWS,
    duplicate_groups,
    group_filters,
    group_totals,
    recent_scans,
    under_roots,
)
from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.paths import from_db

F = FileHash
SORTS = ("wasted", "size", "count")


@dataclass
class GroupFile:
    """One file of a duplicate group (``path`` is a filesystem path)."""

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


def iter_groups(session: Session, host: str | None = None, roots: Sequence[str] | None = None,
                min_size: int = 0, sort: str = "wasted") -> Iterator[Group]:
    """Stream duplicate groups, biggest waste first (or by ``size`` or file ``count``).

    ``roots`` are catalogue-form paths: only files under them take part. Within a group
    files are ordered by host and path.
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    g = duplicate_groups(session, host, roots, min_size).subquery()
    order = {"wasted": g.c.wasted, "size": g.c.size, "count": g.c.files}[sort]
    stmt = (
        select(g.c.hash_algo, g.c.full_hash, g.c.size, g.c.inodes, g.c.wasted,
               F.path, F.host, F.mtime_ns, F.device, F.inode)
        .join(g, and_(F.size == g.c.size, F.full_hash == g.c.full_hash,
                      F.hash_algo == g.c.hash_algo))
        .where(*group_filters(host, roots, min_size))
        .order_by(order.desc(), g.c.size.desc(), g.c.full_hash, g.c.hash_algo, F.host, F.path)
        .execution_options(yield_per=STREAM_ROWS)
    )
    current: Group | None = None
    number = 0
    for algo, full, size, inodes, wasted, path, fhost, mtime_ns, device, inode in \
            session.execute(stmt):
        if current is None or (current.hash, current.size, current.algorithm) != \
                (full, size, algo):
            if current is not None:
                yield current
            number += 1
            current = Group(number, int(size), full, algo, int(inodes), int(wasted))
        current.files.append(GroupFile(from_db(path), fhost, mtime_ns, device, inode))
    if current is not None:
        yield current


def iter_files(session: Session, host: str | None = None, roots: Sequence[str] | None = None,
               min_size: int = 0, limit: int | None = None
               ) -> Iterator[tuple[str, int, str, int]]:
    """Stream every catalogued file as (path, size, host, mtime_ns), by host and path."""
    stmt = select(F.path, F.size, F.host, F.mtime_ns).where(F.size >= min_size)
    if host:
        stmt = stmt.where(F.host == host)
    if roots:
        stmt = stmt.where(under_roots(roots))
    stmt = stmt.order_by(F.host, F.path).limit(limit).execution_options(yield_per=STREAM_ROWS)
    for path, size, fhost, mtime_ns in session.execute(stmt):
        yield from_db(path), int(size), fhost, mtime_ns


@dataclass
class Stats:
    """Totals over the selected catalogue and where the waste lies."""

    files: int
    bytes: int
    hosts: int
    groups: int
    files_in_groups: int
    wasted: int
    top_extensions: list[tuple[str, int, int]]  # (extension, wasted bytes, files)
    top_folders: list[tuple[str, int, int]]  # (folder, wasted bytes, files)
    scans: Sequence[ScanMetadata]


def stats(session: Session, host: str | None = None, roots: Sequence[str] | None = None,
          min_size: int = 0, top: int = 10) -> Stats:
    """Totals (counted by the database), the top extensions and folders by wasted bytes,
    and the latest scans.

    Waste is charged to the redundant copies: in each group the first inode (by host and
    path) is the one kept, every further inode's size counts for its extension and folder.
    """
    conds = [F.size >= min_size]
    if host:
        conds.append(F.host == host)
    if roots:
        conds.append(under_roots(roots))
    files, nbytes, hosts = session.execute(
        select(func.count(), func.coalesce(func.sum(F.size), 0),
               func.count(func.distinct(F.host))).where(*conds)
    ).one()
    groups, in_groups, wasted = group_totals(session, host, roots, min_size)
    ext: Counter[str] = Counter()
    ext_n: Counter[str] = Counter()
    folder: Counter[str] = Counter()
    folder_n: Counter[str] = Counter()
    for group in iter_groups(session, host, roots, min_size) if top else ():
        seen: set[tuple[str, int, int]] = set()
        for f in group.files:
            key = (f.host, f.device, f.inode)
            if not seen:
                seen.add(key)
                continue
            if key in seen:  # a hard link of an inode already counted
                continue
            seen.add(key)
            name = os.path.basename(f.path)
            e = os.path.splitext(name)[1].lower() or "(none)"
            d = os.path.dirname(f.path)
            ext[e] += group.size
            ext_n[e] += 1
            folder[d] += group.size
            folder_n[d] += 1
    return Stats(
        files=int(files), bytes=int(nbytes), hosts=int(hosts), groups=groups,
        files_in_groups=in_groups, wasted=wasted,
        top_extensions=[(e, b, ext_n[e]) for e, b in ext.most_common(top)],
        top_folders=[(d, b, folder_n[d]) for d, b in folder.most_common(top)],
        scans=recent_scans(session, top),
    )


def scan_overview(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The latest scans as plain dicts (for JSON and the report)."""
    return [
        {"id": s.id, "host": s.host, "roots": s.roots, "status": s.status,
         "algorithm": s.algorithm,
         "started": s.started_at.isoformat() if s.started_at else None,
         "finished": s.finished_at.isoformat() if s.finished_at else None,
         "files": s.files_seen, "groups": s.duplicate_groups, "wasted": s.wasted_bytes}
        for s in recent_scans(session, limit)
    ]
