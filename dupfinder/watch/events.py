"""What the watch tells its caller, as fields: the command line words them, ``--format json``
writes them as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Said(StrEnum):
    """What a :class:`WatchEvent` is about."""

    WATCHING = "watching"  # the initial scan is done; ``count`` folders are watched
    NEW_COPY = "new copy"  # ``path`` is a new copy of ``other`` (``other_host``'s)
    NOT_DUPLICATED = "not duplicated"  # ``path``'s group ended: it has no copy left
    GROUP_GONE = "group gone"  # every file of a group of ``size`` bytes is gone
    UPDATED = "updated"  # a batch was written: ``count`` paths looked at, ``moved`` rows
    OVERFLOW = "overflow"  # the kernel dropped events: ``paths`` (the roots) rescanned
    LIMIT = "limit"  # the watch limit (``count``) left ``paths`` unwatched
    ROOT_GONE = "root gone"  # root ``path`` deleted, moved away or unmounted; rows kept
    ROOT_BACK = "root back"  # root ``path`` is there again: rescanned and watched
    UNMOUNTED = "unmounted"  # ``path`` below a root unmounted; its rows kept
    NETWORK = "network"  # ``paths`` are on network file systems: no events, rescanned
    RESCAN = "rescan"  # ``paths`` (unwatched) rescanned, as ``--rescan-every`` asks
    WAITING = "waiting"  # a dedupe, undo or merge holds the host: changes wait for its end


@dataclass
class WatchEvent:
    """One thing the watch found or did."""

    said: Said
    path: str = ""
    other: str = ""
    other_host: str = ""
    size: int = 0
    count: int = 0
    moved: int = 0
    paths: list[str] = field(default_factory=list)
