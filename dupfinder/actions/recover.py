"""Runs that ended badly: find them, close them, and read back from the disk what their
``planned`` entries actually did.

An entry is journaled ``planned`` before its action, and moves to ``done`` after. A run
killed, stopped by SIGTERM or cut off from its database in between leaves an entry
``planned`` whose file may already be in the trash, at the move target, or replaced by a
link. :func:`reconcile` looks at the disk and records what happened, so ``undo`` can bring
such files back and ``journal`` tells the truth.
"""

from __future__ import annotations

import os

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dupfinder.actions.fileops import probe_path, same_content, temp_beside
from dupfinder.actions.trash import find_in_trash
from dupfinder.db import journal
from dupfinder.db.bulk import signed64
from dupfinder.db.engine import Database
from dupfinder.db.journal import EntryRecord, RunRecord
from dupfinder.db.locks import action_lock
from dupfinder.errors import SafetyError, UsageError
from dupfinder.processes import pid_alive
from dupfinder.states import Action, EntryState, RunStatus


def close_run_quietly(db: Database, run_id: int, status: RunStatus) -> None:
    """Best effort: record how a run ended, without hiding the error that ended it (the
    database may be the thing that failed)."""
    try:
        with db.session() as s:
            journal.finish_run(s, run_id, status)
            s.commit()
    except (SQLAlchemyError, OSError):
        pass


def close_dead_runs(db: Database, host: str) -> list[int]:
    """Mark the host's runs still ``running`` as interrupted. Call only while holding the
    host's action lock: no live run can then exist, whatever a reused pid says."""
    with db.session() as s:
        dead = [r.id for r in journal.running_runs(s, host)]
        for run_id in dead:
            journal.finish_run(s, run_id, RunStatus.INTERRUPTED)
        s.commit()
    return dead


def close_dead_runs_if_idle(db: Database, host: str) -> None:
    """:func:`close_dead_runs` when no run of the host is going on (a reading command must
    not wait for one, nor fail because of one); while one is, only the runs whose process
    is gone are closed (a live run's own process is alive, so it is never among them)."""
    try:
        with action_lock(db, host):
            close_dead_runs(db, host)
        return
    except SafetyError:
        pass
    with db.session() as s:
        for run in journal.running_runs(s, host):
            if run.pid is not None and not pid_alive(run.pid):
                journal.finish_run(s, run.id, RunStatus.INTERRUPTED)
        s.commit()


def symlink_targets(db: Database, host: str) -> frozenset[str]:
    """Files that symbolic links made by dedupe still point to: deleting or moving one of
    them would leave those links dangling."""
    with db.session() as s:
        links = journal.symlink_entries(s, host)
    targets = set()
    for e in links:
        target = os.path.abspath(e.kept)
        try:
            if os.readlink(e.path) == target:
                targets.add(e.kept)
        except OSError:
            continue
    return frozenset(targets)


def record_done(s: Session, host: str, action: Action, path: str, kept: str) -> None:
    """The catalogue after an action: a hard link takes the keeper's identity, every other
    action takes the file out of its place."""
    if action == Action.HARDLINK:
        kst = os.stat(kept)
        journal.relink_file(s, host, path, signed64(kst.st_dev), signed64(kst.st_ino),
                            kst.st_nlink, kst.st_mtime_ns)
    elif action == Action.REFLINK:  # a file of its own still, with the same content
        st = os.lstat(path)
        journal.relink_file(s, host, path, signed64(st.st_dev), signed64(st.st_ino),
                            st.st_nlink, st.st_mtime_ns)
    else:
        journal.forget_file(s, host, path)


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _discard_temp(path: str, tag: int, kept: str) -> None:
    """Remove a leftover temporary link of entry ``tag`` (it is only ever a link)."""
    tmp = temp_beside(path, tag)
    if os.path.islink(tmp) or (os.path.lexists(tmp) and _same_file(tmp, kept)):
        os.unlink(tmp)


def _put_back_probe(path: str, tag: int) -> None:
    """A run killed while proving an entry's files distinct leaves its probe hard link:
    one more name of the duplicate, removed; were the duplicate's own name gone, the probe
    would be its last name, and takes that name back."""
    probe = probe_path(path, tag)
    if not os.path.lexists(probe):
        return
    if not os.path.lexists(path):
        os.rename(probe, path)
    elif _same_file(probe, path):
        os.unlink(probe)


def _effect(run: RunRecord, e: EntryRecord) -> tuple[EntryState, str | None, str | None]:
    """What a ``planned`` entry's action did: (state, message, stash)."""
    _put_back_probe(e.path, e.id)
    present = os.path.lexists(e.path)
    not_done = (EntryState.SKIPPED, "not done: the run ended before this action", None)
    if e.action == Action.REFLINK:
        tmp = temp_beside(e.path, e.id)  # a clone not yet renamed over the duplicate
        if os.path.isfile(tmp) and not os.path.islink(tmp):
            os.unlink(tmp)
        return (EntryState.SKIPPED, "the run ended around this clone; the file's content "
                "is the same either way", None)
    if e.action in (Action.HARDLINK, Action.SYMLINK):
        _discard_temp(e.path, e.id, e.kept)
        made = (_same_file(e.path, e.kept) and not os.path.islink(e.path)
                if e.action == Action.HARDLINK
                else os.path.islink(e.path) and os.readlink(e.path) == os.path.abspath(e.kept))
        return (EntryState.DONE, "found done after the run ended", None) if made else not_done
    if e.action == Action.MOVE:
        stash = e.stash
        if stash is None:
            return not_done
        part = temp_beside(stash, e.id)  # a copy across file systems cut short
        if os.path.lexists(part):
            os.unlink(part)
        stashed = os.path.lexists(stash)
        if present and stashed and _same_file(e.path, stash):
            os.unlink(stash)  # linked but not yet unlinked from its place: one file
            return not_done
        if present and stashed and same_content(e.path, stash):
            os.unlink(stash)  # copied across but not yet removed from its place
            return not_done
        if present:
            return not_done
        if stashed:
            return EntryState.DONE, "found done after the run ended", stash
        return EntryState.FAILED, "gone from its place and not at the move target", None
    if present:
        return not_done
    if e.action == Action.TRASH:
        found = _own_trashed_copy(run, e)
        if found:
            return EntryState.DONE, "found done after the run ended", found
        return EntryState.FAILED, "gone from its place and not found in the trash", None
    return EntryState.DONE, "found done after the run ended", None  # delete


def _own_trashed_copy(run: RunRecord, e: EntryRecord) -> str | None:
    """The copy of ``e.path`` in the trash that this entry put there, newest first among
    those trashed since the run started.

    Not simply the newest: a later run may have trashed a new file of the same path before
    this run was read back, and ``undo`` would then restore that other file. Ours has the
    entry's size and mtime (trashing keeps them) and, while the copy that stayed is still
    there, its content."""
    kept_ok = os.path.isfile(e.kept) and os.path.getsize(e.kept) == e.size
    for t in find_in_trash(e.path, run.started_at):
        try:
            st = os.lstat(t.stored)
            if st.st_size != e.size or (e.mtime_ns is not None
                                        and st.st_mtime_ns != e.mtime_ns):
                continue
            if kept_ok and not same_content(str(t.stored), e.kept):
                continue
        except OSError:
            continue
        return str(t.stored)
    return None


def reconcile(db: Database, host: str, run: RunRecord) -> int:
    """Record what the ``planned`` entries of an ended run did; returns how many changed.
    Only the run's own host can look at its files."""
    if run.host != host or run.status == RunStatus.RUNNING:
        return 0
    with db.session() as s:
        pending = journal.entries(s, run.id, states=[EntryState.PLANNED])
    for e in pending:
        state, message, stash = _effect(run, e)
        with db.session() as s:
            if state == EntryState.DONE:
                record_done(s, host, e.action, e.path, e.kept)
            journal.set_state(s, e.id, state, message, stash=stash)
            s.commit()
    if pending:
        with db.session() as s:
            journal.finish_run(s, run.id, run.status)
            s.commit()
    return len(pending)


def journal_of(db: Database, host: str, run_id: int) -> list[EntryRecord]:
    """The entries of run ``run_id``; for a run of ``host`` that died, what it actually did
    is read back from the disk first (another host's runs are shown as recorded: their
    files cannot be looked at from here)."""
    with db.session() as s:
        run = journal.get_run(s, run_id)
    if run is None:
        raise UsageError(f"no dedupe run {run_id}")
    if run.host == host:
        close_dead_runs_if_idle(db, host)
        with db.session() as s:
            run = journal.get_run(s, run_id)
        assert run is not None
        reconcile(db, host, run)
    with db.session() as s:
        return journal.entries(s, run_id)
