"""Reverse a dedupe run: bring trashed and moved files back, turn links into copies again.

Never overwrites anything at the original path that dupfinder did not put there; deleted
files cannot come back and are reported as such.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from configparser import ConfigParser
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from dupfinder.actions.apply import same_content
from dupfinder.db import journal
from dupfinder.db.catalogue import signed64
from dupfinder.db.engine import Database
from dupfinder.db.models import ActionEntry
from dupfinder.paths import from_db


class CannotUndo(Exception):
    """This entry cannot be restored, for the reason given."""


@dataclass
class UndoOutcome:
    """What an undo restored and what it could not."""

    run_id: int
    restored: list[str] = field(default_factory=list)
    not_restored: list[tuple[str, str]] = field(default_factory=list)


def _home_trash() -> str:
    """The home trash send2trash uses (it reads $XDG_DATA_HOME once, when imported)."""
    try:
        from send2trash.plat_other import HOMETRASH

        return str(HOMETRASH)
    except ImportError:  # not a freedesktop platform
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        return os.path.join(data, "Trash")


def _trash_dirs(path: str) -> Iterator[tuple[Path, Path]]:
    """(trash folder, folder its relative paths start from) for each freedesktop trash a
    file at ``path`` may have gone to: the home trash, then its volume's."""
    yield Path(_home_trash()), Path("/")
    top = Path(path).parent
    dev = top.stat().st_dev if top.exists() else None
    while dev is not None and top.parent != top and top.parent.stat().st_dev == dev:
        top = top.parent
    uid = os.getuid()
    yield top / ".Trash" / str(uid), top
    yield top / f".Trash-{uid}", top


def _from_trash(path: str) -> None:
    best: tuple[str, Path, Path] | None = None
    for trash, top in _trash_dirs(path):
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
            if original == path and (best is None or when > best[0]):
                best = (when, info, trash / "files" / info.name[: -len(".trashinfo")])
    if best is None:
        raise CannotUndo("not found in the trash (emptied?)")
    _, info, stored = best
    os.rename(stored, path)
    info.unlink()


def _copy_back(entry: ActionEntry, path: str, kept: str) -> None:
    """Replace the link at ``path`` by a copy of the keeper, with the old mode and mtime."""
    if entry.action == "symlink":
        if not os.path.islink(path) or os.readlink(path) != os.path.abspath(kept):
            raise CannotUndo("the path no longer holds the link dupfinder made")
    else:
        st, kst = os.lstat(path), os.stat(kept)
        if (st.st_dev, st.st_ino) != (kst.st_dev, kst.st_ino):
            raise CannotUndo("the path is no longer a hard link of the copy that stayed")
    if not os.path.isfile(kept) or os.path.getsize(kept) != entry.size:
        raise CannotUndo("the copy that stayed is gone or changed; nothing to copy back")
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.dupfinder-undo-{os.getpid()}")
    shutil.copyfile(kept, tmp)
    if entry.mode is not None:
        os.chmod(tmp, entry.mode)
    if entry.mtime_ns is not None:
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
    if not same_content(tmp, kept):
        os.unlink(tmp)
        raise CannotUndo("the copy did not verify")
    os.replace(tmp, path)


def undo_entry(entry: ActionEntry) -> None:
    """Reverse one done action, or raise :class:`CannotUndo`."""
    path, kept = from_db(entry.path), from_db(entry.kept_path)
    if entry.action == "delete":
        raise CannotUndo("deleted files cannot be restored")
    if entry.action in ("hardlink", "symlink"):
        _copy_back(entry, path, kept)
        return
    if os.path.lexists(path):
        raise CannotUndo("something else is at the original path now")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if entry.action == "trash":
        _from_trash(path)
    elif entry.action == "move":
        if entry.stash_path is None or not os.path.lexists(from_db(entry.stash_path)):
            raise CannotUndo("the moved file is no longer where it was moved to")
        shutil.move(from_db(entry.stash_path), path)
    else:
        raise CannotUndo(f"unknown action {entry.action}")


def undo(db: Database, host: str, run_id: int) -> UndoOutcome:
    """Reverse a run's done actions, newest first; the catalogue gets the files back."""
    outcome = UndoOutcome(run_id)
    with db.session() as s:
        done = journal.entries(s, run_id, states=["done"], newest_first=True)
        s.expunge_all()
    for entry in done:
        path = from_db(entry.path)
        with db.session() as s:
            try:
                undo_entry(entry)
            except (CannotUndo, OSError) as exc:
                reason = str(exc) if isinstance(exc, CannotUndo) else (exc.strerror or str(exc))
                journal.set_state(s, entry.id, "undo_failed", reason)
                outcome.not_restored.append((path, reason))
            else:
                st = os.lstat(path)
                journal.restore_file(s, host, entry.path, os.path.basename(entry.path),
                                     st.st_size, st.st_mtime_ns, signed64(st.st_dev),
                                     signed64(st.st_ino), st.st_nlink)
                journal.set_state(s, entry.id, "undone")
                outcome.restored.append(path)
            s.commit()
    with db.session() as s:
        journal.set_run_status(s, run_id, "undone" if not outcome.not_restored
                               else "partly undone")
        s.commit()
    return outcome
