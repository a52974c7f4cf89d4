"""Reverse a dedupe run: bring trashed and moved files back, turn links into copies again.

Never overwrites anything at the original path that dupfinder did not put there; deleted
files cannot come back and are reported as such. A run that died is reconciled first, so
files whose entry was still ``planned`` come back too. Only the run's own host may undo it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field

from dupfinder.actions import recover
from dupfinder.actions.fileops import same_content
from dupfinder.actions.locking import run_lock
from dupfinder.actions.reflink import make_private
from dupfinder.actions.trash import find_in_trash, info_for
from dupfinder.db import journal
from dupfinder.db.bulk import signed64
from dupfinder.db.engine import Database
from dupfinder.db.journal import EntryRecord
from dupfinder.errors import SafetyError, UsageError
from dupfinder.states import Action, EntryState, RunStatus


class CannotUndo(Exception):
    """This entry cannot be restored, for the reason given."""


@dataclass
class UndoResult:
    """What an undo restored and what it could not."""

    run_id: int
    restored: list[str] = field(default_factory=list)
    not_restored: list[tuple[str, str]] = field(default_factory=list)
    restored_bytes: int = 0
    already_undone: bool = False


def _restore_owner(entry: EntryRecord, path: str) -> None:
    """Give a re-created file its old mode and owner (the owner only where permitted)."""
    if entry.uid is not None and entry.gid is not None:
        with contextlib.suppress(PermissionError):
            os.chown(path, entry.uid, entry.gid, follow_symlinks=False)
    if entry.mode is not None:
        os.chmod(path, entry.mode)


def _copy_back(entry: EntryRecord) -> None:
    """Replace the link at ``path`` by a copy of the keeper, with the old mode, owner and
    mtime."""
    path, kept = entry.path, entry.kept
    if entry.action == Action.SYMLINK:
        if not os.path.islink(path) or os.readlink(path) != os.path.abspath(kept):
            raise CannotUndo("the path no longer holds the link dupfinder made")
    else:
        st, kst = os.lstat(path), os.stat(kept)
        if (st.st_dev, st.st_ino) != (kst.st_dev, kst.st_ino):
            raise CannotUndo("the path is no longer a hard link of the copy that stayed")
    if not os.path.isfile(kept) or os.path.getsize(kept) != entry.size:
        raise CannotUndo("the copy that stayed is gone or changed; nothing to copy back")
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.dupfinder-undo-{entry.id}")
    shutil.copyfile(kept, tmp)
    _restore_owner(entry, tmp)
    if entry.mtime_ns is not None:
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
    if not same_content(tmp, kept):
        os.unlink(tmp)
        raise CannotUndo("the copy did not verify")
    os.replace(tmp, path)


def _from_trash(entry: EntryRecord) -> None:
    """Bring back the very file this entry trashed (its place in the trash is journaled);
    an entry of an older dupfinder without it takes the newest trashed copy of its path
    whose content equals the copy that stayed."""
    stored = entry.stash
    if stored is None:
        for t in find_in_trash(entry.path):
            if os.path.exists(entry.kept) and same_content(str(t.stored), entry.kept):
                stored = str(t.stored)
                break
    if stored is None or not os.path.lexists(stored):
        raise CannotUndo("not found in the trash (emptied?)")
    os.rename(stored, entry.path)
    info_for(stored).unlink(missing_ok=True)


def _regular(path: str) -> os.stat_result | None:
    """``path``'s stat if it is a regular file (not a link), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def already_restored(entry: EntryRecord) -> bool:
    """Whether an earlier undo restored this entry and died before journaling it (kill -9
    between the two): the path holds a regular file of the entry's size and content, and
    what the action left there (the link, the trashed or moved file) is gone. Without this
    the next undo took the restored file for something else and left the run partly undone
    for good."""
    st = _regular(entry.path)
    if st is None or st.st_size != entry.size:
        return False
    kst = _regular(entry.kept)
    if kst is not None and (kst.st_dev, kst.st_ino) == (st.st_dev, st.st_ino):
        return False  # still the hard link the run made
    if entry.action in (Action.TRASH, Action.MOVE) and entry.stash is not None \
            and os.path.lexists(entry.stash):
        return False  # the file is still where the run put it
    if entry.action in (Action.HARDLINK, Action.SYMLINK) or kst is not None:
        return kst is not None and same_content(entry.path, entry.kept)
    return entry.mtime_ns is not None and st.st_mtime_ns == entry.mtime_ns


def undo_entry(entry: EntryRecord) -> None:
    """Reverse one done action, or raise :class:`CannotUndo`."""
    path = entry.path
    if entry.action == Action.DELETE:
        raise CannotUndo("deleted files cannot be restored")
    if entry.action != Action.REFLINK and already_restored(entry):
        return
    if entry.action in (Action.HARDLINK, Action.SYMLINK):
        _copy_back(entry)
        return
    if entry.action == Action.REFLINK:
        if not os.path.isfile(path) or os.path.getsize(path) != entry.size:
            raise CannotUndo("the file is gone or changed since it was cloned")
        make_private(path, entry.id)
        return
    if os.path.lexists(path):
        raise CannotUndo("something else is at the original path now")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if entry.action == Action.TRASH:
        _from_trash(entry)
    elif entry.action == Action.MOVE:
        if entry.stash is None or not os.path.lexists(entry.stash):
            raise CannotUndo("the moved file is no longer where it was moved to")
        shutil.move(entry.stash, path)
        _restore_owner(entry, path)
    else:
        raise CannotUndo(f"unknown action {entry.action}")


def undo(db: Database, host: str, run_id: int | None = None) -> UndoResult:
    """Reverse a run's done actions, newest first (default: the host's latest run that
    acted); the catalogue gets the files back."""
    with run_lock(db, host):
        recover.close_dead_runs(db, host)
        with db.session() as s:
            run = journal.get_run(s, run_id) if run_id is not None \
                else journal.latest_run(s, host)
        if run is None:
            raise UsageError(f"no dedupe run {run_id}" if run_id is not None
                             else f"no dedupe run of host {host} to undo")
        if run.host != host:
            raise SafetyError(f"run {run.id} belongs to host {run.host}; only its own host "
                              "can undo it")
        result = UndoResult(run.id)
        if run.status == RunStatus.UNDONE:
            result.already_undone = True
            return result
        recover.reconcile(db, host, run)
        with db.session() as s:  # what an earlier undo could not restore is tried again
            done = journal.entries(s, run.id, states=[EntryState.DONE, EntryState.UNDO_FAILED],
                                   newest_first=True)
        for entry in done:
            _undo_one(db, host, entry, result)
        with db.session() as s:
            journal.set_run_status(s, run.id, RunStatus.UNDONE if not result.not_restored
                                   else RunStatus.PARTLY_UNDONE)
            s.commit()
    return result


def _undo_one(db: Database, host: str, entry: EntryRecord, result: UndoResult) -> None:
    with db.session() as s:
        try:
            undo_entry(entry)
        except (CannotUndo, OSError) as exc:
            reason = str(exc) if isinstance(exc, CannotUndo) else (exc.strerror or str(exc))
            journal.set_state(s, entry.id, EntryState.UNDO_FAILED, reason)
            result.not_restored.append((entry.path, reason))
        else:
            st = os.lstat(entry.path)
            journal.restore_file(s, host, entry.path, st.st_size, st.st_mtime_ns,
                                 signed64(st.st_dev), signed64(st.st_ino), st.st_nlink,
                                 like=entry.kept, full_hash=entry.full_hash)
            journal.set_state(s, entry.id, EntryState.UNDONE)
            result.restored.append(entry.path)
            result.restored_bytes += entry.size
        s.commit()

