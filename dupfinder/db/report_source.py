"""What the HTML report shows, read from the catalogue: the totals, the latest scans and
the duplicate folders now, the groups and the files as streams opened when the page is
written (holding every group in a list made the report's memory grow with the catalogue).
:mod:`dupfinder.output.report` renders it and asks the database nothing itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dupfinder.config import mask_url
from dupfinder.db.engine import Database
from dupfinder.db.folders import FolderGroup, duplicate_folders
from dupfinder.db.queries import (
    EVERYTHING,
    CatalogFile,
    Group,
    Selection,
    Stats,
    iter_files,
    iter_groups,
    scan_overview,
    stats,
)


@dataclass
class ReportSource:
    """A report's data: ``groups()`` and ``files(limit)`` stream from the catalogue, each
    in a session of its own (consume the groups first)."""

    stats: Stats
    scans: list[dict[str, Any]]
    folder_groups: list[FolderGroup]
    groups: Callable[[], Iterator[Group]]
    files: Callable[[int], Iterator[CatalogFile]]
    roots: list[str]  # the folders asked about (none: the whole catalogue)
    where: str  # the catalogue, password masked


def report_source(db: Database, sel: Selection = EVERYTHING) -> ReportSource:
    """The report's data for the selected files of ``db``."""
    with db.session() as s:
        st = stats(s, sel, top=0)
        scans = scan_overview(s)
        folder_groups = duplicate_folders(s, sel.roots, sel.host)
        s.rollback()  # no read transaction held across the streams

    def groups() -> Iterator[Group]:
        with db.session() as s:
            yield from iter_groups(s, sel)

    def files(limit: int) -> Iterator[CatalogFile]:
        with db.session() as s:
            yield from iter_files(s, sel, limit=limit)

    return ReportSource(st, scans, folder_groups, groups, files, list(sel.roots or []),
                        mask_url(db.url))
