"""Engines and sessions: pooling, SQLite pragmas, the start-up ping, PostgreSQL fallback.

No engine or connection crosses a process boundary: worker processes build their own with
:func:`worker_database` from the URL string and dispose it when they end.
"""

from __future__ import annotations

import os
import re
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
from dupfinder.db.schema import ensure_schema
from dupfinder.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    UsageError,
    one_line,
    register_secret,
)

SQLITE_BUSY_TIMEOUT_MS = 60_000
# Checkpoint the WAL every 32 MiB instead of SQLite's 4 MiB. A checkpoint can only reset
# the WAL when no reader holds an older snapshot: the scan never keeps a read open across
# a stage (when it did, the WAL grew with the catalogue instead of staying bounded).
WAL_AUTOCHECKPOINT_PAGES = 8192


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

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cur.close()


def _sqlite_read_only_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA query_only=ON")  # a write fails at once as "readonly database"
    cur.close()


def _read_only_error(path: Path) -> Callable[[Any], None]:
    """A ``handle_error`` hook: a write to a read-only catalogue becomes one line naming the
    file, instead of a "database error during the scan ... run it again" that cannot help."""

    def hook(context: Any) -> None:
        if "readonly database" in str(context.original_exception):
            raise DatabaseError(
                f"SQLite database {path} is read-only for this user: reading commands "
                "(dupes, stats, report) work, this command needs to write"
            ) from context.original_exception

    return hook


def sqlite_read_only_uri(path: Path) -> str | None:
    """A ``file:`` URI opening an existing SQLite catalogue read-only, or None if we can write.

    Writing needs the file and, for the ``-wal``/``-shm``/``-journal`` files, its folder (unless
    those already exist and are writable). Without write access a normal open fails with
    "unable to open database file" even for reading, because a WAL database wants its ``-shm``
    file. ``mode=ro`` avoids writes; when the folder is read-only and there is no ``-wal``
    file (so no un-checkpointed changes to miss), ``immutable=1`` tells SQLite not to need
    ``-shm`` or locks at all: nobody without write access to that folder can change the file.
    """
    if not path.is_file():
        return None
    folder_writable = os.access(path.parent, os.W_OK)
    sidecars = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    if os.access(path, os.W_OK) and (
        folder_writable or all(os.access(p, os.W_OK) for p in sidecars)
    ):
        return None
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    if not folder_writable and not sidecars[0].exists():
        uri += "&immutable=1"
    return uri


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
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            event.listen(engine, "connect", _sqlite_read_only_pragmas)
            event.listen(engine, "handle_error", _read_only_error(path))
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


# libpq's complaints about connection settings it refuses before connecting, e.g.
# 'invalid sslmode value: "bogus"', 'invalid port number: "99999"', 'invalid connection
# option "foo"', 'invalid integer value "x" for connection option "connect_timeout"'.
_BAD_SETTING = re.compile(
    r"\binvalid (?:dsn|connection option|integer value|port number|[\w ]{1,40} value)\b"
)


def classify_pg_failure(exc: BaseException) -> str:
    """Sort a PostgreSQL connection failure: ``config``, ``missing-db``, ``auth`` or
    ``unreachable``. ``config`` (a setting libpq refuses) is the user's mistake and must never
    be taken for an unreachable server, which would fall back to SQLite."""
    msg = str(getattr(exc, "orig", exc)).lower()
    if _BAD_SETTING.search(msg):
        return "config"
    if "does not exist" in msg and "database" in msg:
        return "missing-db"
    if "password" in msg or "authentication" in msg or "role" in msg and "not exist" in msg:
        return "auth"
    if "no pg_hba.conf entry" in msg or "permission denied" in msg:
        return "auth"
    return "unreachable"


_GISTS = (("refused", "connection refused"), ("timeout", "timed out"),
          ("timed out", "timed out"), ("could not translate host name", "unknown host"),
          ("name or service not known", "unknown host"), ("no route", "no route to host"),
          ("network is unreachable", "network unreachable"))


def _gist(exc: BaseException) -> str:
    """A few words for why a server could not be reached."""
    msg = str(getattr(exc, "orig", exc)).lower()
    for needle, words in _GISTS:
        if needle in msg:
            return words
    first = one_line(exc).split(";")[0].strip()
    return first if len(first) <= 60 else first[:57] + "..."


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
        event.listen(engine, "connect", _sqlite_read_only_pragmas)
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

    The fallback prints one line through ``warn`` (stderr by default). It is for the
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
            f"({_gist(exc.__cause__ or exc)}); falling back to SQLite at {url.database}"
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

