"""What a walk yields and what it could not look at: the records the walk, the walk of
parts of the roots (:mod:`dupfinder.scan.scope`) and the sync (:mod:`dupfinder.scan.sync`)
share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Skipped(NamedTuple):
    """A path the walk saw but did not select (a filter, a link not followed, a folder not
    entered) or could not look at. Its catalogue rows, and with ``folder`` every row below
    it, are kept: what was not examined is not known to be gone (a narrower rescan must not
    forget what a wider scan found)."""

    path: str
    folder: bool


class Entry(NamedTuple):
    """A regular file the walk found, with the metadata the catalogue keeps."""

    path: str
    name: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int


@dataclass
class WalkProblems:
    """What the walk could not look at, with the reason, for the summary and ``-v``."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    # folders that could not be listed and entries that could not be looked at: their
    # catalogue rows are kept, since what could not be seen was not seen to be gone
    unreadable: list[str] = field(default_factory=list)
    skipped_links: int = 0

    def add(self, path: str, exc: OSError | str) -> None:
        """Record one problem."""
        reason = exc if isinstance(exc, str) else (exc.strerror or type(exc).__name__)
        self.errors.append((path, reason))
