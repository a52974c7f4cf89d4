"""Finding a file in the freedesktop trash that send2trash put it in.

Where a trashed file went is recorded in the journal right after trashing it, so that
``undo`` restores that very file and never another run's file of the same path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from configparser import ConfigParser
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote


class Trashed(NamedTuple):
    """One trashed file: its original path, when, the file in the trash and its info."""

    original: str
    deleted: str  # DeletionDate as written (local time, ISO 8601, to the second)
    stored: Path
    info: Path


def home_trash() -> str:
    """The home trash send2trash uses (it reads $XDG_DATA_HOME once, when imported)."""
    try:
        from send2trash.plat_other import HOMETRASH

        return str(HOMETRASH)
    except ImportError:  # not a freedesktop platform
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        return os.path.join(data, "Trash")


def trash_dirs(path: str) -> Iterator[tuple[Path, Path]]:
    """(trash folder, folder its relative paths start from) for each freedesktop trash a
    file at ``path`` may have gone to: the home trash, then its volume's."""
    yield Path(home_trash()), Path("/")
    top = Path(path).parent
    while not top.exists() and top.parent != top:
        top = top.parent
    dev = top.stat().st_dev
    while top.parent != top and top.parent.stat().st_dev == dev:
        top = top.parent
    uid = os.getuid()
    yield top / ".Trash" / str(uid), top
    yield top / f".Trash-{uid}", top


def find_in_trash(path: str, since: datetime | None = None) -> list[Trashed]:
    """The trashed copies of ``path`` (deleted at or after ``since``, local time), newest
    first."""
    found: list[Trashed] = []
    floor = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S") if since else ""
    for trash, top in trash_dirs(path):
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        for info in info_dir.glob("*.trashinfo"):
            parser = ConfigParser(interpolation=None)
            try:
                parser.read(info, encoding="utf-8")
                original = unquote(parser["Trash Info"]["Path"], errors="surrogateescape")
                when = parser["Trash Info"].get("DeletionDate", "")
            except (KeyError, OSError, UnicodeError, ValueError):
                continue
            if not original.startswith("/"):
                original = str(top / original)  # a volume trash stores relative paths
            stored = trash / "files" / info.name[: -len(".trashinfo")]
            if original == path and when >= floor and os.path.lexists(stored):
                found.append(Trashed(original, when, stored, info))
    return sorted(found, key=lambda t: t.deleted, reverse=True)


def info_for(stored: str) -> Path:
    """The ``.trashinfo`` file that belongs to a file stored in a trash."""
    p = Path(stored)
    return p.parent.parent / "info" / (p.name + ".trashinfo")
