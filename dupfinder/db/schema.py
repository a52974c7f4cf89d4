"""Create and upgrade the schema; refuse a database written by a newer dupfinder.

Several dupfinder processes may start at once against one empty PostgreSQL database, so the
creation runs under a transaction-level advisory lock there. SQLite serialises writers itself.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from dupfinder import __version__
from dupfinder.db.contents import build_all, recount_all
from dupfinder.db.models import (
    PARTIAL_INDEXES,
    SCHEMA_VERSION,
    Base,
    Content,
    FileHash,
    PendingHash,
    SchemaInfo,
    utcnow,
)
from dupfinder.errors import DatabaseError, one_line

# Advisory lock key: the ASCII of "dupf" as a number.
_LOCK_KEY = 0x64757066



def _v1_to_v2(conn: Connection) -> None:
    """Dead dedupe runs are found by their pid; undo restores the owner of a file."""
    for table, column in (("action_runs", "pid"), ("action_journal", "uid"),
                          ("action_journal", "gid")):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER"))


def _v2_to_v3(conn: Connection) -> None:
    """A scan records the files in its groups, so an unchanged rescan can reuse its totals;
    the group queries get an index that covers them."""
    conn.execute(text("ALTER TABLE scan_metadata ADD COLUMN files_in_groups BIGINT"))
    conn.execute(text("DROP INDEX IF EXISTS ix_file_hashes_size_full"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_file_hashes_groups ON file_hashes "
                      "(size, full_hash, hash_algo, host, device, inode)"))


def _v3_to_v4(conn: Connection) -> None:
    """Every question reads a table of contents kept equal to the rows; hash results of a
    running scan wait in an unindexed table; the size index holds the algorithm."""
    Base.metadata.create_all(conn, tables=[Content.__table__, PendingHash.__table__])
    conn.execute(text("ALTER TABLE file_hashes ADD COLUMN content_id BIGINT"))
    conn.execute(text("DROP INDEX IF EXISTS ix_file_hashes_groups"))
    conn.execute(text("DROP INDEX IF EXISTS ix_file_hashes_size_prefix"))
    build_all(conn)
    restore_indexes(conn)


# version N -> function that upgrades a version-N database to N+1, in place.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3,
                                                       3: _v3_to_v4}


# the secondary indexes of the rows: a cold load into an empty catalogue builds them once,
# sorted, after its rows and hashes are in, instead of updating them row by row
BULK_INDEXES = ("ix_file_hashes_size", "ix_file_hashes_content")


def suspend_indexes(conn: Connection) -> None:
    """Drop :data:`BULK_INDEXES` for a cold load (the unique (host, path) key stays)."""
    for name in BULK_INDEXES:
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


def restore_indexes(conn: Connection) -> None:
    """Create whichever index is missing. Only a missing one is created: on PostgreSQL even
    ``CREATE INDEX IF NOT EXISTS`` locks its table, and every command opening the catalogue
    beside a running scan deadlocked with it."""
    have = _index_names(conn)
    try:
        for index in FileHash.__table__.indexes:
            if index.name not in have:
                index.create(conn)
        create_partial_indexes(conn, have)
    except OperationalError as exc:  # a read-only catalogue keeps what it has
        if "readonly" not in str(exc.orig):
            raise


def finish_cold_load(conn: Connection, *, stepwise: bool = False) -> None:
    """The end of a cold load: the indexes it dropped, then every content's counts in one
    pass (the load merged its hashes without counting). The last index and the counts are
    one transaction, so a load killed before it commits leaves an index of
    :data:`BULK_INDEXES` missing, and the next open of the catalogue finishes it
    (:func:`_ensure`): no content stays uncounted. ``stepwise`` (the load itself) commits
    the other indexes first, one transaction each, so that SQLite's WAL holds one index at a
    time rather than all of them and the counts. The load recounts even with its indexes
    back: a command that opened the catalogue meanwhile restored them."""
    try:
        if stepwise:
            have = _index_names(conn)
            for index in FileHash.__table__.indexes:
                if index.name in BULK_INDEXES[:-1] and index.name not in have:
                    begin_writing(conn)
                    index.create(conn)
                    conn.commit()
        begin_writing(conn)
        restore_indexes(conn)
        recount_all(conn)
        if conn.dialect.name == "postgresql":  # the planner's statistics of the new rows:
            # before autovacuum came by, a page of a question was planned as a few rows
            conn.execute(text("ANALYZE file_hashes"))
            conn.execute(text("ANALYZE contents"))
    except OperationalError as exc:  # a read-only catalogue keeps what it has
        if "readonly" not in str(exc.orig):
            raise


def begin_writing(conn: Connection) -> bool:
    """Make the DDL that follows part of the connection's transaction on SQLite. pysqlite
    begins a transaction only before DML, so a CREATE INDEX or ALTER TABLE would commit on
    its own and a kill could leave half a change; IMMEDIATE waits for the write lock (busy
    timeout) instead of failing on a stale snapshot later. Returns whether it began one."""
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return True
    return False


def _index_names(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        return set(conn.scalars(text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")))
    return set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index'")))


def create_partial_indexes(conn: Connection, have: set[str] | None = None) -> None:
    """The indexes of :data:`dupfinder.db.models.PARTIAL_INDEXES`, where missing."""
    have = _index_names(conn) if have is None else have
    for name, spec in PARTIAL_INDEXES.items():
        if name not in have:
            conn.execute(text(f"CREATE INDEX {name} ON {spec}"))


def ensure_schema(engine: Engine) -> int:
    """Create missing tables, record or check the schema version, run pending migrations.

    Returns the schema version now in the database.
    """
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
                return _ensure(conn)
        except (OperationalError, ProgrammingError) as exc:
            # a concurrent SQLite process created a table between check and create
            if "already exists" in str(exc.orig) and attempt < 2:
                continue
            raise DatabaseError(f"cannot prepare the database schema: {one_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot prepare the database schema: {one_line(exc)}") from exc
    raise AssertionError("unreachable")


def _ensure(conn: Connection) -> int:
    has_info = conn.dialect.has_table(conn, SchemaInfo.__tablename__)
    if has_info:
        row = conn.execute(select(SchemaInfo.version).where(SchemaInfo.id == 1)).first()
        version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database has schema version {version}, newer than this dupfinder "
                f"({__version__}) understands ({SCHEMA_VERSION}); upgrade dupfinder"
            )
        if version is not None and version < SCHEMA_VERSION:
            if begin_writing(conn):  # read again under the lock: another may have upgraded
                return _ensure(conn)
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](conn)
            conn.execute(
                SchemaInfo.__table__.update()
                .where(SchemaInfo.id == 1)
                .values(version=SCHEMA_VERSION, app_version=__version__, upgraded_at=utcnow())
            )
            return SCHEMA_VERSION
        if version is not None:
            Base.metadata.create_all(conn)  # tables a partial creation may have missed
            if set(BULK_INDEXES) <= _index_names(conn):
                restore_indexes(conn)
            else:  # a cold load was killed before its end (or is running)
                finish_cold_load(conn)
            return version
    Base.metadata.create_all(conn)
    create_partial_indexes(conn)
    conn.execute(
        SchemaInfo.__table__.insert().values(
            id=1, version=SCHEMA_VERSION, app_version=__version__, created_at=utcnow()
        )
    )
    return SCHEMA_VERSION


def schema_version(engine: Engine) -> int | None:
    """The version recorded in the database, or None if it has no dupfinder schema."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, SchemaInfo.__tablename__):
            return None
        row = conn.execute(select(SchemaInfo.version).where(SchemaInfo.id == 1)).first()
        return row[0] if row else None
