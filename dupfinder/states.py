"""The states and choices dupfinder records and accepts, as ``StrEnum``s.

They are stored in the database as their plain string values, so a member compares equal
to what a query reads back and old catalogues need no migration.
"""

from __future__ import annotations

from enum import StrEnum


class ScanStatus(StrEnum):
    """A scan record's status."""

    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or found dead by a later command
    FAILED = "failed"  # an error ended it; what was committed stays
    MERGED = "merged"  # not a scan: `dupfinder merge` wrote the host's rows from elsewhere


class RunStatus(StrEnum):
    """A dedupe run's status."""

    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    UNDONE = "undone"
    PARTLY_UNDONE = "partly undone"


class EntryState(StrEnum):
    """One journaled action: ``planned`` before anything is touched, then one of the others."""

    PLANNED = "planned"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"


class Action(StrEnum):
    """What ``dedupe`` does with each duplicate."""

    DELETE = "delete"
    TRASH = "trash"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    MOVE = "move"
    REFLINK = "reflink"  # a copy-on-write clone of the kept file (btrfs, XFS, ...)


class KeepPolicy(StrEnum):
    """Which copy of a group stays."""

    OLDEST = "oldest"
    NEWEST = "newest"
    SHORTEST_PATH = "shortest-path"
    LONGEST_PATH = "longest-path"
    FIRST_ROOT = "first-root"


class Stage(StrEnum):
    """The hashing stages of a scan."""

    PREFIX = "prefix"
    FULL = "full"


class Scope(StrEnum):
    """How folders given to a question select duplicate groups."""

    TOUCHING = "touching"  # groups with a file under a folder, with all their files
    WITHIN = "within"  # only the files under the folders take part
    ACROSS = "across"  # groups spanning two or more of the folders, their files there


class GroupSort(StrEnum):
    """Orders of duplicate groups."""

    WASTED = "wasted"
    SIZE = "size"
    COUNT = "count"
