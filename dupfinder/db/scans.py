"""Scan records: start, finish, find dead ones, and tell whether a rescan has hashing to do.

Timestamps that are compared across scans come from the database's clock (:func:`db_now`),
never the scanner's: hosts sharing a catalogue disagree about the time (a host 10 minutes
behind made another host's rescan believe nothing had changed and hash nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, or_, select, text, update
from sqlalchemy.orm import Session

from dupfinder.db.models import ActionRun, FileHash, ScanMetadata
from dupfinder.paths import is_under
from dupfinder.states import ScanStatus

F = FileHash


def db_now(session: Session | Connection) -> datetime:
    """The current time by the database's clock, timezone-aware, in UTC."""
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    # SQLite's own clock (the C library's), to the millisecond
    stamp = session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
    return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)


def start_scan(session: Session, host: str, roots: list[str], algorithm: str,
               options: dict[str, Any], pid: int) -> tuple[int, datetime]:
    """Record a new running scan; returns its id and its start by the database's clock."""
    now = db_now(session)
    scan = ScanMetadata(host=host, roots=roots, algorithm=algorithm, options=options,
                        status=ScanStatus.RUNNING, pid=pid, started_at=now)
    session.add(scan)
    session.flush()
    return scan.id, now


class Settled(NamedTuple):
    """The scan that settled a rescan's hashing (see :func:`settled_scan`), with the group
    totals it recorded (``files_in_groups`` is None for scans before schema version 3)."""

    id: int
    started_at: datetime
    roots: list[str]
    duplicate_groups: int
    files_in_groups: int | None
    wasted_bytes: int


def settled_scan(session: Session, host: str, roots: Sequence[str], algorithm: str,
                 min_size: int) -> Settled | None:
    """The previous scan that already settled every hash these roots can need, if any: the
    host's latest complete scan with the same algorithm and minimum size covered all of
    ``roots``, ended without errors or files changing under it, and no catalogue row of
    any host was written (or merged in) since it started, other than by that scan itself
    before its hashing stages (new rows are what create new candidates)."""
    prev = session.execute(
        select(ScanMetadata.id, ScanMetadata.started_at, ScanMetadata.roots,
               ScanMetadata.options, ScanMetadata.duplicate_groups,
               ScanMetadata.files_in_groups, ScanMetadata.wasted_bytes)
        .where(ScanMetadata.host == host, ScanMetadata.status == ScanStatus.COMPLETE,
               ScanMetadata.algorithm == algorithm, ScanMetadata.errors == 0,
               ScanMetadata.changed_during_read == 0)
        .order_by(ScanMetadata.id.desc()).limit(1)
    ).first()
    if prev is None or (prev.options or {}).get("min_size") != min_size:
        return None
    covered = all(any(is_under(r, p) for p in prev.roots) for r in roots)
    if not covered:
        return None
    newer = select(F.id).where(
        F.last_seen >= prev.started_at,
        or_(F.scan_id.is_(None), F.scan_id != prev.id),
    ).limit(1)
    if session.execute(newer).first() is not None:
        return None
    # a merge keeps the rows' own times, so it leaves a record instead: rows it brought may
    # collide with this host's files
    merged = select(ScanMetadata.id).where(ScanMetadata.status == ScanStatus.MERGED,
                                           ScanMetadata.started_at >= prev.started_at).limit(1)
    if session.execute(merged).first() is not None:
        return None
    return Settled(prev.id, prev.started_at, list(prev.roots), prev.duplicate_groups,
                   prev.files_in_groups, prev.wasted_bytes)


def unchanged_totals(session: Session, prev: Settled, roots: Sequence[str], current: int
                     ) -> tuple[int, int, int] | None:
    """(groups, files in groups, wasted bytes) as ``prev`` recorded them, if they still hold
    for a rescan of the same ``roots`` that itself changed nothing: nothing was written
    since ``prev`` began (:func:`settled_scan`), and no other scan or dedupe run has been
    at work since then, as some of their changes leave no newer row behind (hashes written,
    hard links made, rows removed). ``current`` is the rescan's own record. Counting the
    groups again was a large part of a rescan that found nothing changed."""
    if prev.files_in_groups is None or sorted(prev.roots) != sorted(roots):
        return None
    since = prev.started_at
    busy_scan = select(ScanMetadata.id).where(
        ScanMetadata.id.not_in([prev.id, current]),
        or_(ScanMetadata.finished_at.is_(None), ScanMetadata.finished_at >= since),
    ).limit(1)
    busy_run = select(ActionRun.id).where(
        or_(ActionRun.finished_at.is_(None), ActionRun.finished_at >= since)).limit(1)
    if session.execute(busy_scan).first() or session.execute(busy_run).first():
        return None
    return prev.duplicate_groups, prev.files_in_groups, prev.wasted_bytes


def alone(session: Session, scan_id: int) -> bool:
    """Whether no other scan, of any host, is marked running."""
    return session.execute(select(ScanMetadata.id).where(
        ScanMetadata.status == ScanStatus.RUNNING, ScanMetadata.id != scan_id).limit(1)
    ).first() is None


def catalogue_empty(session: Session) -> bool:
    """Whether the catalogue holds no file at all."""
    return session.execute(select(F.id).limit(1)).first() is None


class RunningScan(NamedTuple):
    """A scan record still marked running, and the process that wrote it."""

    id: int
    pid: int | None


def running_scans(session: Session | Connection, host: str) -> list[RunningScan]:
    """The host's scans still marked running."""
    rows = session.execute(
        select(ScanMetadata.id, ScanMetadata.pid).where(
            ScanMetadata.host == host, ScanMetadata.status == ScanStatus.RUNNING
        )
    )
    return [RunningScan(r.id, r.pid) for r in rows]


def finish_scan(session: Session, scan_id: int, status: ScanStatus, **counts: Any) -> None:
    """Close a scan record with its status, end time and counts."""
    session.execute(
        update(ScanMetadata)
        .where(ScanMetadata.id == scan_id)
        .values(status=status, finished_at=db_now(session), **counts)
    )


def mark_interrupted(session: Session, scan_ids: Sequence[int]) -> None:
    """Mark scans that died without closing their record as interrupted."""
    if scan_ids:
        session.execute(
            update(ScanMetadata)
            .where(ScanMetadata.id.in_(scan_ids))
            # it ended before now: a bound for whoever asks what changed since when
            .values(status=ScanStatus.INTERRUPTED, message="process ended without finishing",
                    finished_at=db_now(session))
        )


def recent_scans(session: Session, limit: int = 10) -> Sequence[ScanMetadata]:
    """The latest scans, newest first."""
    return session.scalars(
        select(ScanMetadata).order_by(ScanMetadata.id.desc()).limit(limit)
    ).all()
