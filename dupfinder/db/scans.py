"""Scan records: start, finish, find dead ones, and tell whether a rescan has hashing to do.

Timestamps that are compared across scans come from the database's clock (:func:`db_now`),
never the scanner's: hosts sharing a catalogue disagree about the time (a host 10 minutes
behind made another host's rescan believe nothing had changed and hash nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.paths import is_under
from dupfinder.states import ScanStatus

F = FileHash


def db_now(session: Session) -> datetime:
    """The current time by the database's clock, timezone-aware, in UTC."""
    if session.get_bind().dialect.name == "postgresql":
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


def settled_since(session: Session, host: str, roots: Sequence[str], algorithm: str,
                  min_size: int) -> bool:
    """Whether a previous scan already settled every hash these roots can need: the
    host's latest complete scan with the same algorithm and minimum size covered all of
    ``roots``, ended without errors or files changing under it, and no catalogue row of
    any host was written since it started, other than by that scan itself before its
    hashing stages (new rows are what create new candidates)."""
    prev = session.execute(
        select(ScanMetadata.id, ScanMetadata.started_at, ScanMetadata.roots,
               ScanMetadata.options)
        .where(ScanMetadata.host == host, ScanMetadata.status == ScanStatus.COMPLETE,
               ScanMetadata.algorithm == algorithm, ScanMetadata.errors == 0,
               ScanMetadata.changed_during_read == 0)
        .order_by(ScanMetadata.id.desc()).limit(1)
    ).first()
    if prev is None or (prev.options or {}).get("min_size") != min_size:
        return False
    covered = all(any(is_under(r, p) for p in prev.roots) for r in roots)
    if not covered:
        return False
    newer = select(F.id).where(
        F.last_seen >= prev.started_at,
        or_(F.scan_id.is_(None), F.scan_id != prev.id),
    ).limit(1)
    return session.execute(newer).first() is None


class RunningScan(NamedTuple):
    """A scan record still marked running, and the process that wrote it."""

    id: int
    pid: int | None


def running_scans(session: Session, host: str) -> list[RunningScan]:
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
            .values(status=ScanStatus.INTERRUPTED, message="process ended without finishing")
        )


def recent_scans(session: Session, limit: int = 10) -> Sequence[ScanMetadata]:
    """The latest scans, newest first."""
    return session.scalars(
        select(ScanMetadata).order_by(ScanMetadata.id.desc()).limit(limit)
    ).all()
