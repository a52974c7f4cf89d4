"""Read-side queries: statistics, files, hosts, the latest scans (duplicate groups are in
:mod:`dupfinder.db.groups`, re-exported here).

Everything streams, so a catalogue of millions of rows is never held in memory. Folders are
filesystem paths.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dupfinder.db.bulk import STREAM_ROWS
from dupfinder.db.file_rows import hosts_of, under
from dupfinder.db.groups import (
    Group,
    GroupFile,
    Totals,
    charged_copies,
    group_totals,
    iter_groups,
)
from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.db.scans import recent_scans
from dupfinder.db.selection import EVERYTHING, Selection
from dupfinder.db.stored_paths import from_db
from dupfinder.errors import UsageError, param
from dupfinder.paths import display, for_message

F = FileHash
# the group queries' names, as the rest of the code has always imported them from here
__all__ = ["EVERYTHING", "CatalogFile", "Group", "GroupFile", "Selection", "Stats", "Totals",
           "Waste", "catalogue_hosts", "check_selection", "group_totals", "iter_files",
           "iter_groups", "scan_overview", "scanned_roots", "stats"]


class CatalogFile(NamedTuple):
    """A catalogued file, duplicate or not."""

    path: str
    size: int
    host: str
    mtime_ns: int


def iter_files(session: Session, sel: Selection = EVERYTHING, limit: int | None = None
               ) -> Iterator[CatalogFile]:
    """Stream every selected file, by host and path."""
    stmt = (select(F.path, F.size, F.host, F.mtime_ns).where(*sel.file_conditions())
            .order_by(F.host, F.path).limit(limit).execution_options(yield_per=STREAM_ROWS))
    for row in session.execute(stmt):
        yield CatalogFile(from_db(row.path), int(row.size), row.host, row.mtime_ns)


class Waste(NamedTuple):
    """Wasted bytes charged to one extension or folder."""

    name: str
    wasted: int
    files: int


@dataclass
class Stats:
    """Totals over the selected catalogue and where the waste lies."""

    files: int
    bytes: int
    hosts: int
    groups: int
    files_in_groups: int
    wasted: int
    top_extensions: list[Waste]
    top_folders: list[Waste]
    scans: Sequence[ScanMetadata]


def stats(session: Session, sel: Selection = EVERYTHING, top: int = 10) -> Stats:
    """Totals (counted by the database), the top extensions and folders by wasted bytes,
    and the latest scans.

    Waste is charged to the redundant copies: in each group the first inode (by host and
    path) is the one kept, every further inode's size counts for its extension and folder.
    """
    if sel.host or sel.roots:
        files, nbytes, hosts = session.execute(
            select(func.count(), func.coalesce(func.sum(F.size), 0),
                   func.count(func.distinct(F.host))).where(*sel.file_conditions())
        ).one()
    else:  # the host list by index seeks; size and count from the narrowest index
        hosts = len(hosts_of(session))
        files, nbytes = session.execute(
            select(func.count(), func.coalesce(func.sum(F.size), 0))
            .where(F.size >= sel.min_size)).one()
    totals = group_totals(session, sel)
    ext: Counter[str] = Counter()
    ext_n: Counter[str] = Counter()
    folder: Counter[str] = Counter()
    folder_n: Counter[str] = Counter()
    for size, key in charged_copies(session, sel) if top else ():
        cut = key.rfind("/")
        name = key[cut + 1:]
        dot = name.rfind(".")
        # os.path.splitext's rule: leading dots are not an extension
        e = name[dot:].lower() if dot > 0 and name[:dot].strip(".") else "(none)"
        d = key[:cut] or "/"
        ext[e] += size
        ext_n[e] += 1
        folder[d] += size
        folder_n[d] += 1
    return Stats(
        files=int(files), bytes=int(nbytes), hosts=int(hosts), groups=totals.groups,
        files_in_groups=totals.files, wasted=totals.wasted,
        top_extensions=[Waste(from_db(e), b, ext_n[e]) for e, b in ext.most_common(top)],
        top_folders=[Waste(from_db(d), b, folder_n[d]) for d, b in folder.most_common(top)],
        scans=recent_scans(session, top),
    )


def catalogue_hosts(session: Session) -> list[str]:
    """The host labels the catalogue holds files of, sorted."""
    return hosts_of(session)


def check_selection(session: Session, host: str | None, folders: Sequence[str],
                    hosts: Sequence[str] = (), empty_ok: bool = False) -> None:
    """Raise :class:`UsageError` for a question that is a mistake rather than one with an
    empty answer: nothing catalogued at all, a host label the catalogue does not know, a
    folder that neither exists nor holds catalogued files (a typo)."""
    if not empty_ok and session.execute(select(F.id).limit(1)).first() is None:
        raise UsageError("no files catalogued yet: run `dupfinder scan PATH`")
    for label in ([host] if host else []) + list(hosts):
        if session.execute(select(F.id).where(F.host == label).limit(1)).first() is None:
            known = catalogue_hosts(session)[:20]
            raise UsageError(f"{param('host')} {display(label)}: the catalogue has no files of "
                             f"that host (it has: {', '.join(display(k) for k in known)})")
    for folder in folders:
        if os.path.lexists(folder):
            continue
        hosts = catalogue_hosts(session)
        if session.execute(select(F.id).where(under([folder], hosts)).limit(1)).first() is None:
            raise UsageError(f"{for_message(folder)}: no such file or folder, and nothing "
                             "catalogued under it")


def scanned_roots(session: Session, host: str) -> list[str]:
    """Every folder the host has scanned (recorded with its scans)."""
    found: set[str] = set()
    for roots in session.scalars(select(ScanMetadata.roots).where(ScanMetadata.host == host)):
        found.update(roots or [])
    return sorted(found)


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
