"""Sync the walk with the catalogue: new, changed, unchanged and gone files.

The walk's rows are staged in a temporary table (:mod:`dupfinder.db.walked`) and the database
compares them with the catalogue, so a rescan holds no copy of the catalogue in memory.
Unchanged files (same size, mtime, device and inode) are not written at all. New and changed
files are upserted in chunks, each committed (a change clears the stored hashes). Rows under
the scanned roots that the walk would have selected and did not find leave the catalogue;
rows the scan's filters did not select (too small, excluded, hidden, below a link not
followed or a folder not entered) and rows below what could not be read stay, since they
were not examined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dupfinder.db.engine import Database
from dupfinder.db.walked import Walked, WalkTable
from dupfinder.scan.walk import Entry, Skipped


@dataclass
class SyncCounts:
    """Files seen by the walk and what the sync did with them."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


def sync(db: Database, host: str, roots: list[str], entries: Iterable[Entry | Skipped],
         scan_id: int, now: datetime, batch_size: int, unreadable: Callable[[], list[str]],
         progress: Callable[[int], Any] | None = None) -> SyncCounts:
    """Bring the host's catalogue under ``roots`` in line with ``entries``.

    A :class:`Skipped` path (and below a skipped folder, everything) keeps its rows:
    the scan's filters did not select it, so it was not examined. ``unreadable`` is called
    after the walk ends and names what could not be read, kept likewise. ``progress`` gets
    the number of rows as they are written.

    (Running the database side in a thread of its own, to overlap it with the walk, was
    measured slower: 2.55 s against 2.18 s for a cold 100k-file sync, 1.98 s against 1.60 s
    warm; the two halves mostly hold the GIL.)
    """
    keep: set[str] = set()  # folders whose rows stay: skipped or unreadable
    with WalkTable(db, host, scan_id, now, progress) as table:
        batch: list[Walked] = []
        for e in entries:
            if isinstance(e, Skipped):
                batch.append(Walked(e.path))
                if e.folder:
                    keep.add(e.path)
            else:
                batch.append(Walked(*e, selected=True))
            if len(batch) >= batch_size:
                table.add(batch)
                batch = []
        table.add(batch)
        keep.update(unreadable())
        counts = table.finish()
        removed = 0
        gone: list[int] = []
        for fid, path in table.gone(roots):
            if not _kept(path, keep):
                gone.append(fid)
            if len(gone) >= batch_size:
                removed += table.delete(gone)
                gone = []
        removed += table.delete(gone)
    return SyncCounts(counts.seen, counts.new, counts.changed, counts.unchanged, removed)


def _kept(path: str, keep: set[str]) -> bool:
    """Whether ``path`` or a folder above it is in ``keep`` (one set look-up per level,
    not one comparison per kept folder)."""
    while True:
        if path in keep:
            return True
        parent = path.rpartition("/")[0]
        if not parent or parent == path:
            return False
        path = parent
