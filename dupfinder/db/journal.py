"""The dedupe journal (``action_runs``, ``action_journal``) and the catalogue updates that
follow file actions. Every action is journaled as planned before it is made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from dupfinder.db import catalogue
from dupfinder.db.models import ActionEntry, ActionRun, FileHash, utcnow

E = ActionEntry


def start_run(session: Session, host: str, action: str, options: dict[str, Any]) -> int:
    """Record a new run (status ``running``); returns its id."""
    run = ActionRun(host=host, action=action, options=options, status="running",
                    started_at=utcnow())
    session.add(run)
    session.flush()
    return run.id


def add_entries(session: Session, run_id: int, entries: Sequence[dict[str, Any]],
                batch_size: int = 1000) -> None:
    """Journal planned actions in batches: dicts of seq, action, path, kept_path, size,
    full_hash, mtime_ns, mode (paths in catalogue form)."""
    now = utcnow()
    for chunk in catalogue.batched(entries, batch_size):
        session.execute(insert(E), [{**e, "run_id": run_id, "state": "planned",
                                     "updated_at": now} for e in chunk])
    session.execute(update(ActionRun).where(ActionRun.id == run_id)
                    .values(files_planned=len(entries)))


def entries(session: Session, run_id: int, states: Sequence[str] | None = None,
            newest_first: bool = False) -> Sequence[ActionEntry]:
    """A run's journal entries in the order they were (or will be) made."""
    stmt = select(E).where(E.run_id == run_id)
    if states:
        stmt = stmt.where(E.state.in_(states))
    stmt = stmt.order_by(E.seq.desc() if newest_first else E.seq)
    return session.scalars(stmt).all()


def set_state(session: Session, entry_id: int, state: str, message: str | None = None,
              stash_path: str | None = None) -> None:
    """Move one entry to ``state`` (done, skipped, failed, undone, undo_failed)."""
    values: dict[str, Any] = {"state": state, "message": message, "updated_at": utcnow()}
    if stash_path is not None:
        values["stash_path"] = stash_path
    session.execute(update(E).where(E.id == entry_id).values(**values))


def finish_run(session: Session, run_id: int, status: str) -> dict[str, int]:
    """Close a run with its status and counts computed from the journal."""
    counts = dict(session.execute(
        select(E.state, func.count()).where(E.run_id == run_id).group_by(E.state)
    ).all())
    reclaimed = session.scalar(
        select(func.coalesce(func.sum(E.size), 0)).where(E.run_id == run_id, E.state == "done",
                                                         E.action != "move")
    ) or 0
    values = {"status": status, "finished_at": utcnow(), "files_done": counts.get("done", 0),
              "files_skipped": counts.get("skipped", 0) + counts.get("failed", 0),
              "bytes_reclaimed": int(reclaimed)}
    session.execute(update(ActionRun).where(ActionRun.id == run_id).values(**values))
    return {k: int(v) for k, v in counts.items()}


def get_run(session: Session, run_id: int) -> ActionRun | None:
    """One run by id."""
    return session.get(ActionRun, run_id)


def latest_run(session: Session, host: str) -> ActionRun | None:
    """The host's most recent run that acted on files."""
    return session.scalars(
        select(ActionRun).where(ActionRun.host == host, ActionRun.files_done > 0)
        .order_by(ActionRun.id.desc()).limit(1)
    ).first()


def runs(session: Session, host: str, limit: int = 20) -> Sequence[ActionRun]:
    """The host's latest runs, newest first."""
    return session.scalars(
        select(ActionRun).where(ActionRun.host == host).order_by(ActionRun.id.desc())
        .limit(limit)
    ).all()


def set_run_status(session: Session, run_id: int, status: str) -> None:
    """Change a run's status (e.g. ``undone``)."""
    session.execute(update(ActionRun).where(ActionRun.id == run_id).values(status=status))


# ------------------------------------------------------------------ catalogue updates


def forget_file(session: Session, host: str, path: str) -> None:
    """A file left its place (deleted, trashed, moved, replaced by a symlink)."""
    session.execute(delete(FileHash).where(FileHash.host == host, FileHash.path == path))


def relink_file(session: Session, host: str, path: str, device: int, inode: int, nlink: int,
                mtime_ns: int) -> None:
    """A file became a hard link of its keeper: same content, the keeper's inode."""
    session.execute(
        update(FileHash).where(FileHash.host == host, FileHash.path == path)
        .values(device=device, inode=inode, nlink=nlink, mtime_ns=mtime_ns)
    )


def restore_file(session: Session, host: str, path: str, name: str, size: int,
                 mtime_ns: int, device: int, inode: int, nlink: int) -> None:
    """A file is back at its place (undo); its hashes are left for the next scan."""
    now = utcnow()
    catalogue.upsert_files(session, [{
        "host": host, "path": path, "name": name, "size": size, "mtime_ns": mtime_ns,
        "device": device, "inode": inode, "nlink": nlink, "scan_id": None,
        "first_seen": now, "last_seen": now,
    }])
