"""Batching and the drivers' fast paths that every bulk statement shares.

SQLAlchemy's per-row parameter handling cost more than the database's own work for the
scanner's batches, so bulk statements are compiled once by SQLAlchemy and then run with the
driver's executemany or cursor.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, Table
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

if TYPE_CHECKING:
    from dupfinder.db.engine import Database

STREAM_ROWS = 5000


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most ``size`` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def dialect_insert(dialect: str) -> Any:
    """The ``insert`` of the dialect (with ``on_conflict_do_*``), imported when first asked:
    loading SQLAlchemy's PostgreSQL dialect would slow every SQLite command's start-up."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def signed64(n: int) -> int:
    """Fold an unsigned 64-bit number (inode, device) into the signed BIGINT range."""
    return n - (1 << 64) if n >= 1 << 63 else n


def raw_cursor(session: Session) -> Any:
    """A DB-API cursor on the session's own connection (inside its transaction)."""
    return session.connection().connection.dbapi_connection.cursor()


def stream_raw(session: Session, stmt: Select[Any]) -> Iterator[tuple[Any, ...]]:
    """Stream the rows of ``stmt`` as plain tuples with the driver's cursor (server-side on
    PostgreSQL): building SQLAlchemy rows cost more than the query itself on a rescan."""
    dialect = session.get_bind().dialect
    compiled = stmt.compile(dialect=dialect)
    dbapi = session.connection().connection.dbapi_connection
    if dialect.name == "postgresql":
        cursor = dbapi.cursor(name=f"dupfinder_stream_{id(stmt):x}")
        cursor.itersize = STREAM_ROWS
        cursor.execute(str(compiled), compiled.params)
    else:
        cursor = dbapi.cursor()
        cursor.execute(str(compiled), [compiled.params[k] for k in compiled.positiontup or ()])
    try:
        while rows := cursor.fetchmany(STREAM_ROWS):
            yield from rows
    finally:
        cursor.close()


def copy_csv(cursor: Any, table: str, columns: Sequence[str],
             rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: load ``rows`` into ``table`` with one COPY (CSV) on a psycopg2 cursor.
    Names come from our own code, never from input. Each distinct timestamp is formatted
    once (``str(datetime)`` per row was a visible part of a batch's cost)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    rows = list(rows)
    stamps = [i for i, v in enumerate(rows[0] if rows else ()) if isinstance(v, datetime)]
    if stamps:  # a batch shares its timestamps: format each distinct one once
        text: dict[datetime, str] = {}
        rows = [list(r) for r in rows]
        for r in rows:
            for i in stamps:
                v = r[i]
                if v not in text:
                    text[v] = v.isoformat()
                r[i] = text[v]
    writer.writerows(rows)
    buf.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
                       buf)


def sqlite_executemany(session: Session, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """Run ``stmt`` (compiled by SQLAlchemy) for ``rows`` with the sqlite3 driver's own
    executemany on the session's connection."""
    sql, keys, processors = _sqlite_compiled(stmt, tuple(rows[0]))
    if processors:
        # a batch shares its timestamps: convert each distinct value once, not per row
        memo: dict[tuple[int, Any], Any] = {}

        def conv(i: int, value: Any) -> Any:
            key = (i, value)
            if key not in memo:
                memo[key] = processors[i](value)
            return memo[key]

        data = [tuple(conv(i, r[k]) if processors[i] else r[k] for i, k in enumerate(keys))
                for r in rows]
    else:
        data = [tuple(r[k] for k in keys) for r in rows]
    cursor = raw_cursor(session)
    try:
        cursor.executemany(sql, data)
    finally:
        cursor.close()


@functools.cache
def _sqlite_compiled(stmt: Any, keys: tuple[str, ...]) -> tuple[str, tuple[str, ...], list[Any]]:
    """SQL with ``?`` placeholders, the parameter order, and each parameter's bind
    processor (e.g. datetimes to SQLAlchemy's SQLite text format), or [] if none has one."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    procs = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
             for name in order]
    return str(compiled), order, procs if any(procs) else []


def fresh_temp_table(conn: Connection, table: Table) -> None:
    """(Re)create a temporary table on ``conn``, without its indexes, and commit."""
    table.drop(conn, checkfirst=True)
    conn.execute(CreateTable(table))
    conn.commit()


def pages_by_seq(conn: Connection, table: Table, columns: Sequence[str]
                 ) -> Iterator[list[tuple[Any, ...]]]:
    """Read a table back a page of ``STREAM_ROWS`` at a time in the order of its ``seq``
    key, as (seq, *columns) tuples. Every page is a transaction of its own: no read
    outlives a page, so SQLite can reset its WAL between pages. The driver's own tuples
    cost less than SQLAlchemy's rows."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"SELECT {', '.join(('seq', *columns))} FROM {table.name} WHERE seq > {mark} "
           f"ORDER BY seq LIMIT {STREAM_ROWS}")
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    last = 0
    while True:
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, (last,))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        dbapi.commit()
        if not rows:
            return
        last = rows[-1][0]
        yield rows


class TempTables:
    """A connection of its own for temporary tables, which belong to the connection that
    made them: opened by :meth:`_open` (in ``__enter__``), and on exit the ``tables`` are
    dropped and the connection closed."""

    tables: tuple[Table, ...] = ()

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    @property
    def conn(self) -> Connection:
        """The connection holding the tables."""
        assert self._conn is not None, f"use {type(self).__name__} as a context manager"
        return self._conn

    def _open(self) -> Connection:
        self._conn = self.db.engine.connect()
        return self._conn

    def __exit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()
            for table in self.tables:
                table.drop(conn, checkfirst=True)
            conn.commit()
        finally:
            conn.close()

