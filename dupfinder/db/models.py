"""ORM models (SQLAlchemy 2.0 declarative style).

Tables
------
``file_hashes``     one row per file per host: the catalogue.
``scan_metadata``   one row per scan: roots, options, counts, status.
``action_runs``     one row per ``dupfinder dedupe`` run.
``action_journal``  one row per planned file action, written before the action is made.
``schema_info``     the schema version, so later releases can migrate without data loss.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# 2: action_runs.pid (find dead runs), action_journal.uid/gid (restore ownership)
# 3: scan_metadata.files_in_groups (an unchanged rescan reuses the totals of the last scan);
#    ix_file_hashes_groups covers the group queries (replaces ix_file_hashes_size_full)
SCHEMA_VERSION = 3

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Paths compare byte-wise so that "all files under a folder" is an indexed range query.
# SQLite's default BINARY collation already is; PostgreSQL needs the "C" collation.
PathText = Text().with_variant(Text(collation="C"), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every dupfinder table."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class FileHash(Base):
    """A file seen by a scan on one host, with the hashes computed for it so far.

    ``prefix_hash`` and ``full_hash`` are NULL until a stage needs them; ``hash_algo`` tells
    which algorithm produced them. (host, path) is unique, so several machines can share one
    catalogue. ``mtime_ns`` is the exact modification time in nanoseconds.
    """

    __tablename__ = "file_hashes"
    __table_args__ = (
        UniqueConstraint("host", "path", name="uq_file_hashes_host_path"),
        # "same size" (leading column), "same size and prefix", "same size and content".
        # Size leads both: a hash written later moves its index entry only within its
        # size's cluster (measured: 43k hash updates 0.70 s vs 1.11 s with full_hash alone)
        Index("ix_file_hashes_size_prefix", "size", "prefix_hash"),
        # the group queries read only this index (no row of the table) and in its order:
        # counting 1M files' groups on SQLite took 7.1 s with (size, full_hash), 2.1 s so
        Index("ix_file_hashes_groups", "size", "full_hash", "hash_algo", "host", "device",
              "inode"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(PathText)
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    device: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    nlink: Mapped[int] = mapped_column(Integer, default=1)
    prefix_hash: Mapped[str | None] = mapped_column(String(128))
    full_hash: Mapped[str | None] = mapped_column(String(128))
    hash_algo: Mapped[str | None] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scan_id: Mapped[int | None] = mapped_column(BigInteger)


class ScanMetadata(Base):
    """One scan: what was asked, what happened, how long each stage took."""

    __tablename__ = "scan_metadata"
    __table_args__ = (Index("ix_scan_metadata_host_status", "host", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    roots: Mapped[list[Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    algorithm: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="running")
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    files_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    files_new: Mapped[int] = mapped_column(BigInteger, default=0)
    files_changed: Mapped[int] = mapped_column(BigInteger, default=0)
    files_unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    files_removed: Mapped[int] = mapped_column(BigInteger, default=0)
    files_hashed: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_hashed: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_during_read: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicate_groups: Mapped[int] = mapped_column(BigInteger, default=0)
    files_in_groups: Mapped[int | None] = mapped_column(BigInteger)  # NULL before version 3
    wasted_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stage_seconds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)


class ActionRun(Base):
    """One ``dupfinder dedupe`` run (dry run or applied)."""

    __tablename__ = "action_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    files_planned: Mapped[int] = mapped_column(BigInteger, default=0)
    files_done: Mapped[int] = mapped_column(BigInteger, default=0)
    files_skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_reclaimed: Mapped[int] = mapped_column(BigInteger, default=0)


class ActionEntry(Base):
    """One planned file action, journaled before it is made (states: :class:`EntryState`)."""

    __tablename__ = "action_journal"
    __table_args__ = (Index("ix_action_journal_run", "run_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("action_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(PathText)
    kept_path: Mapped[str] = mapped_column(PathText)
    stash_path: Mapped[str | None] = mapped_column(PathText)
    size: Mapped[int] = mapped_column(BigInteger)
    full_hash: Mapped[str | None] = mapped_column(String(128))
    # the duplicate's own metadata before the action, so undo can restore it exactly
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    mode: Mapped[int | None] = mapped_column(Integer)
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="planned")
    message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SchemaInfo(Base):
    """A single row recording which schema version the database holds."""

    __tablename__ = "schema_info"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    app_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    upgraded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
