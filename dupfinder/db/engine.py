"""Engines and sessions: pooling, the start-up ping, and the fallback from an unreachable
PostgreSQL server to SQLite (the pragmas are in :mod:`dupfinder.db.sqlite_conn`, what a
PostgreSQL failure means in :mod:`dupfinder.db.pg_conn`).

No engine or connection crosses a process boundary: worker processes build their own with
:func:`worker_database` from the URL string and dispose it when they end.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from dupfinder.config import Settings, backend_of, mask_url
from dupfinder.db.pg_conn import classify_pg_failure, gist
from dupfinder.db.schema import ensure_schema
from dupfinder.db.sqlite_conn import (
    SQLITE_BUSY_TIMEOUT_MS,
    read_only_error,
    reading_pragmas,
    sqlite_read_only_uri,
    writing_pragmas,
)
from dupfinder.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    UsageError,
    one_line,
    register_secret,
)


@dataclass
class Database:
    """An open catalogue: the engine, a session factory, and how it was reached."""

    engine: Engine
    url: URL
    sessions: sessionmaker[Session] = field(repr=False)
    fallback_reason: str | None = None

    @property
    def backend(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return backend_of(self.url)

    @property
    def display_url(self) -> str:
        """The URL with its password masked."""
        return mask_url(self.url)

    def url_string(self) -> str:
        """The full URL (with password) for handing to worker processes; never print it."""
        return self.url.render_as_string(hide_password=False)

    def session(self) -> Session:
        """A new ORM session bound to this database."""
        return self.sessions()

    def own_files(self) -> frozenset[str]:
        """A SQLite catalogue's own files (the file and its ``-wal``, ``-shm`` and
        ``-journal``), by the path given and through links; none for PostgreSQL. A scan
        never catalogues them, and a watch takes no write to them for a change."""
        if self.backend != "sqlite" or not self.url.database:
            return frozenset()
        bases = {os.path.abspath(self.url.database), os.path.realpath(self.url.database)}
        return frozenset(base + suffix for base in bases
                         for suffix in ("", "-wal", "-shm", "-journal"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def make_engine(url: URL, *, pool_size: int = 20, max_overflow: int = 30,
                pool_timeout: int = 30, connect_timeout: int = 5) -> Engine:
    """Build an engine for ``url``: a sized, pre-pinged pool for PostgreSQL; WAL for SQLite.

    An existing SQLite catalogue we may not write is opened read-only (see
    :func:`sqlite_read_only_uri`) so that the reading commands still work on it.
    """
    register_secret(url.password if isinstance(url.password, str) else None)
    if backend_of(url) == "sqlite":
        path = Path(url.database or "")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the folder for SQLite database {path}: {exc.strerror}"
            ) from exc
        timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
        read_only = sqlite_read_only_uri(path)
        options: dict[str, Any] = {}
        if read_only is not None:
            uri = read_only
            options["creator"] = lambda: sqlite3.connect(uri, uri=True, timeout=timeout)
        engine = create_engine(
            url,
            connect_args={"timeout": timeout},
            # opening a connection is cheap, and an idle pooled one would keep its page
            # cache (the scan's merge enlarges its own: see dupfinder.db.pending.merge)
            poolclass=NullPool,
            **options,
        )
        if read_only is None:
            event.listen(engine, "connect", writing_pragmas)
        else:
            event.listen(engine, "connect", reading_pragmas)
            event.listen(engine, "handle_error", read_only_error(path))
        return engine
    connect_args: dict[str, Any] = {"application_name": "dupfinder"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = connect_timeout
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
        # psycopg2's executemany is one round trip per row; upserts and hash updates are
        # executemany statements that insertmanyvalues does not cover, so batch them
        executemany_mode="values_plus_batch",
        executemany_batch_page_size=500,
    )


def _where(url: URL) -> str:
    if backend_of(url) == "sqlite":
        return f"SQLite database {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``; raises the driver's error when the database cannot be used."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def create_pg_database(url: URL, connect_timeout: int = 5) -> None:
    """Create the PostgreSQL database named in ``url`` (connecting to ``postgres``)."""
    admin = make_engine(url.set(database="postgres"), pool_size=1, max_overflow=0,
                        connect_timeout=connect_timeout)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            ).first()
            if not exists:
                quoted = admin.dialect.identifier_preparer.quote(url.database or "")
                try:
                    conn.execute(text(f"CREATE DATABASE {quoted}"))
                except DBAPIError as exc:  # created meanwhile by a concurrent dupfinder
                    if "already exists" not in str(exc.orig):
                        raise
    finally:
        admin.dispose()


def connect(url: URL, **engine_options: Any) -> Engine:
    """Open and ping ``url``, creating the PostgreSQL database if it is missing.

    Raises :class:`DatabaseError` with one line naming the server and the cause, the
    subclass :class:`DatabaseUnreachable` when a PostgreSQL server did not answer.
    """
    engine = make_engine(url, **engine_options)
    try:
        ping(engine)
        return engine
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        if backend_of(url) == "sqlite":
            raise DatabaseError(f"cannot open {_where(url)}: {one_line(exc)}") from exc
        kind = classify_pg_failure(exc)
        if kind == "config":
            raise ConfigError(
                f"invalid connection setting for {_where(url)}: {one_line(exc)}"
            ) from exc
        if kind != "missing-db":
            cls = DatabaseUnreachable if kind == "unreachable" else DatabaseError
            raise cls(f"cannot connect to {_where(url)}: {one_line(exc)}") from exc
    try:
        create_pg_database(url, engine_options.get("connect_timeout", 5))
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"database '{url.database}' does not exist on {_where(url)} and could not be "
            f"created: {one_line(exc)}"
        ) from exc
    engine = make_engine(url, **engine_options)
    try:
        ping(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot connect to {_where(url)}: {one_line(exc)}") from exc
    return engine


def read_only_engine(url: URL) -> Engine:
    """An engine that only reads an existing catalogue (a merge's source): a SQLite file is
    opened ``mode=ro`` (never created, never written, not even switched to WAL) and a
    PostgreSQL database is never created. Errors as :func:`connect`'s, and a missing file
    or database is a :class:`UsageError` naming it."""
    if backend_of(url) == "sqlite":
        path = url.database or ""
        if not os.path.isfile(path):
            raise UsageError(f"no catalogue at {path}: no such file")
        uri = f"file:{urllib.parse.quote(path)}?mode=ro"
        timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
        engine = create_engine(url, poolclass=NullPool,
                               creator=lambda: sqlite3.connect(uri, uri=True, timeout=timeout))
        event.listen(engine, "connect", reading_pragmas)
    else:
        engine = make_engine(url, pool_size=2, max_overflow=2)
    try:
        ping(engine)
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        if backend_of(url) == "postgresql" and classify_pg_failure(exc) == "missing-db":
            raise UsageError(f"no catalogue at {_where(url)}: database '{url.database}' "
                             "does not exist") from exc
        if backend_of(url) == "postgresql" and classify_pg_failure(exc) == "unreachable":
            raise DatabaseUnreachable(f"cannot connect to {_where(url)}: {one_line(exc)}"
                                      ) from exc
        raise DatabaseError(f"cannot open {_where(url)}: {one_line(exc)}") from exc
    return engine


def open_database(
    settings: Settings,
    no_fallback: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Database:
    """Open the configured catalogue, falling back to SQLite when PostgreSQL is unreachable.

    The fallback is told in one line through ``warn`` (nothing is said by default). It is for the
    configured default server only (config file or built-in default): a database named
    explicitly (``--db-url``, ``$DUPFINDER_DB_URL``, ``Catalogue.open(url)``; see
    :attr:`Settings.fallback_allowed`) is never swapped for another, and an unreachable one
    is an error naming it. With ``no_fallback`` or ``fallback.enabled = false`` an
    unreachable server is an error too.
    """
    db = settings.database
    options = {
        "pool_size": db["pool_size"],
        "max_overflow": db["max_overflow"],
        "pool_timeout": db["pool_timeout"],
        "connect_timeout": db["connect_timeout"],
    }
    url = settings.url()
    reason: str | None = None
    try:
        engine = connect(url, **options)
    except DatabaseUnreachable as exc:
        if settings.url_source is not None:
            raise DatabaseUnreachable(
                f"{exc} (fallback to SQLite is off: {settings.url_source} names "
                f"{settings.url_as_given}, and a database named explicitly is never swapped "
                "for another)"
            ) from exc
        if no_fallback or not settings.fallback_allowed:
            raise DatabaseUnreachable(f"{exc} (fallback to SQLite is off)") from exc
        url = settings.fallback_url()
        reason = str(exc)
        # one short line: which server, the gist of why, and the file used instead (the
        # driver's full message wrapped onto two lines of a terminal)
        (warn or _silent)(
            f"dupfinder: {_where(settings.url())} unreachable "
            f"({gist(exc.__cause__ or exc)}); falling back to SQLite at {url.database}"
        )
        engine = connect(url, **options)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return Database(
        engine=engine,
        url=url,
        sessions=sessionmaker(engine, expire_on_commit=False),
        fallback_reason=reason,
    )


def _silent(_line: str) -> None:
    return None


def worker_database(url: str) -> Database:
    """A fresh engine and session factory for a worker process (small pool, no schema work).

    Call once per process, after fork or spawn; dispose it when the worker ends.
    """
    parsed = make_url(url)
    engine = make_engine(parsed, pool_size=1, max_overflow=2)
    return Database(engine=engine, url=parsed, sessions=sessionmaker(engine))

