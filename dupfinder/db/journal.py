"""The dedupe journal (``action_runs``, ``action_journal``) and the catalogue updates that
follow file actions. Every action is journaled as planned before it is made.

Callers hand in and get back filesystem paths and named records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from dupfinder.db import contents
from dupfinder.db.bulk import batched
from dupfinder.db.file_rows import upsert_files
from dupfinder.db.models import ActionEntry, ActionRun, FileHash
from dupfinder.db.scans import db_now
from dupfinder.db.stored_paths import from_db, maybe_from_db, to_db
from dupfinder.states import Action, EntryState, RunStatus

E = ActionEntry


@dataclass(frozen=True)
class RunRecord:
    """One dedupe run as the journal holds it."""

    id: int
    host: str
    action: Action
    options: dict[str, Any]
    status: RunStatus
    pid: int | None
    started_at: datetime | None
    finished_at: datetime | None
    files_planned: int
    files_done: int
    files_skipped: int
    bytes_reclaimed: int


@dataclass(frozen=True)
class EntryRecord:
    """One journaled action; ``stash`` is where a moved or trashed file went."""

    id: int
    run_id: int
    seq: int
    action: Action
    path: str
    kept: str
    stash: str | None
    size: int
    full_hash: str | None
    mtime_ns: int | None
    mode: int | None
    uid: int | None
    gid: int | None
    state: EntryState
    message: str | None


@dataclass(frozen=True)
class NewEntry:
    """An action to journal before it is made."""

    action: Action
    path: str
    kept: str
    size: int
    full_hash: str | None
    mtime_ns: int | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    stash: str | None = None


def _run(r: ActionRun) -> RunRecord:
    return RunRecord(r.id, r.host, Action(r.action), dict(r.options or {}), RunStatus(r.status),
                     r.pid, r.started_at, r.finished_at, r.files_planned, r.files_done,
                     r.files_skipped, r.bytes_reclaimed)


def _entry(e: ActionEntry) -> EntryRecord:
    return EntryRecord(e.id, e.run_id, e.seq, Action(e.action), from_db(e.path),
                       from_db(e.kept_path), maybe_from_db(e.stash_path), e.size, e.full_hash,
                       e.mtime_ns, e.mode, e.uid, e.gid, EntryState(e.state), e.message)


def start_run(session: Session, host: str, action: Action, options: dict[str, Any],
              pid: int) -> int:
    """Record a new run (status ``running``, owned by process ``pid``); returns its id."""
    run = ActionRun(host=host, action=action, options=options, status=RunStatus.RUNNING,
                    pid=pid, started_at=db_now(session))
    session.add(run)
    session.flush()
    return run.id


def add_entries(session: Session, run_id: int, entries: Sequence[NewEntry],
                batch_size: int = 1000) -> list[int]:
    """Journal planned actions in batches, in order; returns their ids in that order."""
    now = db_now(session)
    for start, chunk in enumerate(batched(entries, batch_size)):
        session.execute(insert(E), [
            {"run_id": run_id, "seq": start * batch_size + i, "action": e.action,
             "path": to_db(e.path), "kept_path": to_db(e.kept),
             "stash_path": to_db(e.stash) if e.stash is not None else None,
             "size": e.size, "full_hash": e.full_hash, "mtime_ns": e.mtime_ns, "mode": e.mode,
             "uid": e.uid, "gid": e.gid, "state": EntryState.PLANNED, "updated_at": now}
            for i, e in enumerate(chunk)
        ])
    session.execute(update(ActionRun).where(ActionRun.id == run_id)
                    .values(files_planned=len(entries)))
    return list(session.scalars(select(E.id).where(E.run_id == run_id).order_by(E.seq)))


def entries(session: Session, run_id: int, states: Sequence[EntryState] | None = None,
            newest_first: bool = False) -> list[EntryRecord]:
    """A run's journal entries in the order they were (or will be) made."""
    stmt = select(E).where(E.run_id == run_id)
    if states:
        stmt = stmt.where(E.state.in_(states))
    stmt = stmt.order_by(E.seq.desc() if newest_first else E.seq)
    return [_entry(e) for e in session.scalars(stmt)]


def set_state(session: Session, entry_id: int, state: EntryState, message: str | None = None,
              stash: str | None = None) -> None:
    """Move one entry to ``state``; ``stash`` records where the file went."""
    values: dict[str, Any] = {"state": state, "message": message,
                              "updated_at": db_now(session)}
    if stash is not None:
        values["stash_path"] = to_db(stash)
    session.execute(update(E).where(E.id == entry_id).values(**values))


def finish_run(session: Session, run_id: int, status: RunStatus) -> None:
    """Close a run with its status and counts computed from the journal."""
    counts = dict(session.execute(
        select(E.state, func.count()).where(E.run_id == run_id).group_by(E.state)
    ).all())
    reclaimed = session.scalar(
        select(func.coalesce(func.sum(E.size), 0))
        .where(E.run_id == run_id, E.state == EntryState.DONE, E.action != Action.MOVE)
    ) or 0
    values = {"status": status, "finished_at": db_now(session),
              "files_done": counts.get(EntryState.DONE, 0),
              "files_skipped": counts.get(EntryState.SKIPPED, 0)
              + counts.get(EntryState.FAILED, 0),
              "bytes_reclaimed": int(reclaimed)}
    session.execute(update(ActionRun).where(ActionRun.id == run_id).values(**values))


def get_run(session: Session, run_id: int) -> RunRecord | None:
    """One run by id."""
    run = session.get(ActionRun, run_id)
    return _run(run) if run is not None else None


def latest_run(session: Session, host: str) -> RunRecord | None:
    """The host's most recent run that acted, or may have acted, on files: a run that
    died before it could count counts too (its entries say what happened)."""
    acted = select(E.run_id).where(E.state.in_([EntryState.DONE, EntryState.PLANNED]))
    run = session.scalars(
        select(ActionRun).where(ActionRun.host == host,
                                (ActionRun.files_done > 0) | ActionRun.id.in_(acted))
        .order_by(ActionRun.id.desc()).limit(1)
    ).first()
    return _run(run) if run is not None else None


def runs(session: Session, host: str, limit: int = 20) -> list[RunRecord]:
    """The host's latest runs, newest first."""
    return [_run(r) for r in session.scalars(
        select(ActionRun).where(ActionRun.host == host).order_by(ActionRun.id.desc())
        .limit(limit))]


def running_runs(session: Session, host: str) -> list[RunRecord]:
    """The host's runs still marked running (some may belong to dead processes)."""
    return [_run(r) for r in session.scalars(
        select(ActionRun).where(ActionRun.host == host, ActionRun.status == RunStatus.RUNNING))]


def symlink_entries(session: Session, host: str) -> list[EntryRecord]:
    """The host's done symlink actions: links dedupe made that may still be in place."""
    stmt = (select(E).join(ActionRun, ActionRun.id == E.run_id)
            .where(ActionRun.host == host, E.action == Action.SYMLINK,
                   E.state == EntryState.DONE))
    return [_entry(e) for e in session.scalars(stmt)]


def set_run_status(session: Session, run_id: int, status: RunStatus) -> None:
    """Change a run's status (e.g. ``undone``)."""
    session.execute(update(ActionRun).where(ActionRun.id == run_id).values(status=status))


# ------------------------------------------------------------------ catalogue updates


def forget_file(session: Session, host: str, path: str) -> None:
    """A file left its place (deleted, trashed, moved, replaced by a symlink)."""
    where = (FileHash.host == host, FileHash.path == to_db(path))
    touched = set(session.scalars(select(FileHash.content_id).where(*where)))
    session.execute(delete(FileHash).where(*where))
    contents.refresh(session, touched)


def relink_file(session: Session, host: str, path: str, device: int, inode: int, nlink: int,
                mtime_ns: int) -> None:
    """A file became a hard link of its keeper (or a clone of it): same content, the
    keeper's inode, so its content counts one inode less."""
    where = (FileHash.host == host, FileHash.path == to_db(path))
    touched = set(session.scalars(select(FileHash.content_id).where(*where)))
    session.execute(update(FileHash).where(*where)
                    .values(device=device, inode=inode, nlink=nlink, mtime_ns=mtime_ns))
    contents.refresh(session, touched)


def restore_file(session: Session, host: str, path: str, size: int, mtime_ns: int,
                 device: int, inode: int, nlink: int, like: str | None = None,
                 full_hash: str | None = None) -> None:
    """A file is back at its place (undo). Its content is known, so it takes the hashes of
    ``like`` (the copy that stayed) when that row still has the content journaled, and
    ``dupes`` lists it again at once, without a rescan."""
    now = db_now(session)
    where = (FileHash.host == host, FileHash.path == to_db(path))
    touched = set(session.scalars(select(FileHash.content_id).where(*where)))
    upsert_files(session, [{
        "host": host, "path": path, "name": path.rsplit("/", 1)[-1], "size": size,
        "mtime_ns": mtime_ns, "device": device, "inode": inode, "nlink": nlink,
        "scan_id": None, "first_seen": now, "last_seen": now,
    }])
    if like is not None and full_hash is not None:
        kept = session.execute(
            select(FileHash.prefix_hash, FileHash.full_hash, FileHash.hash_algo,
                   FileHash.content_id)
            .where(FileHash.host == host, FileHash.path == to_db(like),
                   FileHash.size == size, FileHash.full_hash == full_hash)
        ).first()
        if kept is not None:
            session.execute(update(FileHash).where(*where).values(
                prefix_hash=kept.prefix_hash, full_hash=kept.full_hash,
                hash_algo=kept.hash_algo, content_id=kept.content_id))
    touched.update(session.scalars(select(FileHash.content_id).where(*where)))
    contents.refresh(session, touched)
