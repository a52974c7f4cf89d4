"""ORM models (SQLAlchemy 2.0 declarative style).

Tables
------
``file_hashes``     one row per file per host: the catalogue.
``contents``        one row per full-hashed content: how many files, inodes and hosts hold
                    it and the bytes its extra copies waste, kept equal to the rows.
``pending_hashes``  hash results of running scans, appended unindexed and merged into
                    ``file_hashes`` in key order.
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
# 4: contents (the table of contents every question reads), file_hashes.content_id and its
#    index (replace ix_file_hashes_groups); ix_file_hashes_size holds the algorithm;
#    pending_hashes
SCHEMA_VERSION = 4

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
    which algorithm produced them, and ``content_id`` names the :class:`Content` of a full
    hash (NULL exactly when ``full_hash`` is). (host, path) is unique, so several machines
    can share one catalogue. ``mtime_ns`` is the exact modification time in nanoseconds.
    """

    __tablename__ = "file_hashes"
    __table_args__ = (
        UniqueConstraint("host", "path", name="uq_file_hashes_host_path"),
        # "same size", "same size and algorithm", "same size and prefix": every count a
        # scan or `unique` needs is a range of this index. Size leads, so a hash written
        # later moves its entry only within its size's cluster.
        Index("ix_file_hashes_size", "size", "hash_algo", "prefix_hash"),
        # ix_file_hashes_content: see PARTIAL_INDEXES
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
    content_id: Mapped[int | None] = mapped_column(BigInteger)


class Content(Base):
    """One content (size, algorithm, full hash) and who holds it: ``files`` rows, ``inodes``
    distinct (host, device, inode), ``hosts``, and ``wasted`` = (inodes - 1) * size. A
    duplicate group is a content with two inodes or more. Every write of ``file_hashes``
    refreshes the contents it touched in the same transaction
    (:func:`dupfinder.db.contents.refresh`), so these counts always equal a recount."""

    __tablename__ = "contents"
    __table_args__ = (
        UniqueConstraint("full_hash", "size", "hash_algo", name="uq_contents_hash"),
        # ix_contents_wasted: see PARTIAL_INDEXES
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger)
    hash_algo: Mapped[str] = mapped_column(String(16))
    full_hash: Mapped[str] = mapped_column(String(128))
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    inodes: Mapped[int] = mapped_column(BigInteger, default=0)
    hosts: Mapped[int] = mapped_column(Integer, default=0)
    wasted: Mapped[int] = mapped_column(BigInteger, default=0)


# Partial indexes, kept as DDL (the same text on both backends): declaring them with
# SQLAlchemy's dialect options loaded its PostgreSQL dialect into every command, slowing
# the start-up of commands on a SQLite catalogue. Created with the tables
# (:mod:`dupfinder.db.schema`).
PARTIAL_INDEXES = {
    # the files of a content, with everything a group lists and its inodes' count need,
    # so a group's files are read from the index alone, in order; only hashed rows
    "ix_file_hashes_content": "file_hashes (content_id, host, path, device, inode, mtime_ns) "
                              "WHERE content_id IS NOT NULL",
    # the groups, biggest waste first (then by size, hash, algorithm: the order a page is
    # read in), without reading the single-copy contents; it holds all a page and the
    # totals read
    "ix_contents_wasted": "contents (wasted, size, full_hash, hash_algo, files, inodes) "
                          "WHERE inodes > 1",
}


class PendingHash(Base):
    """A hash result a scan has not merged into ``file_hashes`` yet: appended with no index
    (committed at least once a second, so a killed scan loses at most that much) and merged
    in key order once per stage, or by the next scan. ``size``, ``mtime_ns`` and ``inode``
    are what the file was when read: a row that differs now is not given the hash."""

    __tablename__ = "pending_hashes"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scan_id: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    prefix_hash: Mapped[str | None] = mapped_column(String(128))
    full_hash: Mapped[str | None] = mapped_column(String(128))
    hash_algo: Mapped[str] = mapped_column(String(16))


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
