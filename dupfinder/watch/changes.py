"""What the watch has seen change and not yet written: the paths to scan again, each
when its writer is done, and the renames, in the order they happened.

A file closed after writing is ready at once. A file written to, created or touched
without a close (a writer that keeps it open, a hard link) is ready once it has been
quiet for ``settle`` seconds; every further write moves that on, so a 2 GiB copy is read
once, when it ends. A rename is applied before the paths that follow it, and paths
waiting below its old name move with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dupfinder.paths import is_under


@dataclass
class Batch:
    """What to write now: renames (old, new, folder) in order, then the paths to scan."""

    moves: list[tuple[str, str, bool]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moves or self.paths)


class Pending:
    """Paths waiting to be scanned again, by when they are ready, and renames waiting to
    be applied."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self.ready_at: dict[str, float] = {}  # path -> monotonic time it is ready
        self.moves: list[tuple[str, str, bool]] = []

    def __len__(self) -> int:
        return len(self.ready_at) + len(self.moves)

    def now(self, path: str, at: float) -> None:
        """``path`` is ready at once (closed after writing, deleted, created)."""
        self.ready_at[path] = min(self.ready_at.get(path, at), at)

    def quiet(self, path: str, at: float) -> None:
        """``path`` is being written: ready ``settle`` seconds after its last write."""
        self.ready_at[path] = at + self.settle

    def move(self, old: str, new: str, folder: bool) -> None:
        """A rename: applied in order; what waits below ``old`` waits below ``new`` now."""
        self.moves.append((old, new, folder))
        cut = len(old)
        for path in [p for p in self.ready_at if is_under(p, old)]:
            at = self.ready_at.pop(path)
            moved = new + path[cut:]
            self.ready_at[moved] = min(self.ready_at.get(moved, at), at)

    def put_back(self, batch: Batch, at: float) -> None:
        """A batch that could not be written: its renames first again, its paths ready at
        ``at`` (or sooner, if they were due sooner)."""
        self.moves[:0] = batch.moves
        for path in batch.paths:
            self.now(path, at)

    def next_due(self) -> float | None:
        """When the next path is ready (None: nothing waits)."""
        if self.moves:
            return 0.0
        return min(self.ready_at.values(), default=None)

    def take(self, at: float, everything: bool = False) -> Batch:
        """The renames and the paths ready at ``at`` (all of them with ``everything``)."""
        batch = Batch(self.moves)
        self.moves = []
        for path, ready in list(self.ready_at.items()):
            if everything or ready <= at:
                batch.paths.append(path)
                del self.ready_at[path]
        return batch
