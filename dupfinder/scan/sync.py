"""The walk against the catalogue: new, changed, unchanged and gone files, by merge join.

The walk (:mod:`dupfinder.scan.walk`) and the catalogue's rows under the roots
(:func:`dupfinder.db.rows.rows_under`) come in the same order, so one pass over both tells
every file apart: a path in both is unchanged (same size, mtime, device and inode: not
written at all) or changed; a path only walked is new; a row the walk passed without a
file is gone, unless the walk kept it (a :class:`~dupfinder.scan.walk.Skipped` path, and
below a skipped folder everything: what the filters did not select, or what could not be
read, was not examined, so it is not known to be gone). Nothing of the catalogue is held in
memory, and a root that is new to the catalogue costs no comparison at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dupfinder.db.bulk import signed64
from dupfinder.db.rows import CatalogRow, NewRow, RowWriter
from dupfinder.db.stored_paths import order_key, subtree_range
from dupfinder.scan.collisions import Seen
from dupfinder.scan.walk import Entry, Skipped


@dataclass
class SyncCounts:
    """Files seen by the walk and what the sync did with them."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


class Sync:
    """Feed it the walk (:meth:`feed`), then :meth:`finish`; every walked file reaches
    ``on_seen`` with its catalogue id (a new or changed one once its row is written)."""

    def __init__(self, rows: Iterator[CatalogRow], writer: RowWriter,
                 on_seen: Callable[[Seen], None]) -> None:
        self.rows, self.writer, self.on_seen = rows, writer, on_seen
        self.row = next(self.rows, None)
        self.kept: list[tuple[str, str]] = []  # key ranges whose rows stay: [lo, hi)
        self.counts = SyncCounts()

    def feed(self, e: Entry | Skipped) -> None:
        """One item of the walk."""
        key = order_key(e.path)
        self._advance(key)
        row = self.row
        same = row is not None and row.key == key
        if same:
            self.row = next(self.rows, None)
        if isinstance(e, Skipped):
            if e.folder:
                lo, hi = subtree_range(key)  # type: ignore[arg-type]
                self.kept.append((lo, hi))
            return
        c = self.counts
        c.seen += 1
        if not same:
            c.new += 1
            self.writer.add(NewRow(e.path, key, e.name, e.size, e.mtime_ns, e.device, e.inode,
                                   e.nlink))
            return
        assert row is not None
        if (row.size, row.mtime_ns, row.device, row.inode) == (
                e.size, e.mtime_ns, signed64(e.device), signed64(e.inode)):
            c.unchanged += 1
            self.on_seen(Seen(row.id, e.path, e.size, e.mtime_ns, row.device, row.inode,
                              e.nlink, row.prefix, row.full, row.algo, fresh=False))
        else:
            c.changed += 1
            self.writer.change(row.id, NewRow(e.path, key, e.name, e.size, e.mtime_ns,
                                              e.device, e.inode, e.nlink), row.content_id)

    def _advance(self, key: str) -> None:
        """Settle every row that sorts before ``key``: the walk passed it without a file."""
        while self.row is not None and self.row.key < key:
            row = self.row
            if not any(lo <= row.key < hi for lo, hi in self.kept):
                self.writer.remove(row.id, row.content_id)
            self.row = next(self.rows, None)
        if self.kept:  # ranges the walk is past hold no unsettled row any more
            self.kept = [r for r in self.kept if r[1] > key]

    def finish(self) -> SyncCounts:
        """The rows after the walk's last path, then everything written."""
        while self.row is not None:
            row = self.row
            if not any(lo <= row.key < hi for lo, hi in self.kept):
                self.writer.remove(row.id, row.content_id)
            self.row = next(self.rows, None)
        self.writer.flush()
        self.counts.removed = self.writer.removed
        return self.counts


def seen_of(pairs: list[tuple[int, NewRow]]) -> Iterator[Seen]:
    """The rows a writer has just written, as the collision tracker takes them (device and
    inode as the catalogue's signed columns hold them, like every row it reads)."""
    for rid, r in pairs:
        yield Seen(rid, r.path, r.size, r.mtime_ns, signed64(r.device), signed64(r.inode),
                   r.nlink)
