"""Database URLs: parsed from what a person typed (a URL or a SQLite file), and masked
for every message."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dupfinder.errors import ConfigError, register_secret
from dupfinder.paths import absolute


def sqlite_url(path: str | os.PathLike[str]) -> URL:
    """A SQLite URL for a file path (``~`` expanded, made absolute)."""
    return URL.create("sqlite+pysqlite", database=absolute(os.fspath(path)))


def backend_of(url: URL) -> str:
    """``postgresql`` or ``sqlite`` for a URL."""
    return url.get_backend_name()


def mask_url(url: URL | str) -> str:
    """Render a URL for people: the password is always replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            return _mask_text(url)
    return url.render_as_string(hide_password=True)


def _mask_text(text: str) -> str:
    """Mask the password of a URL that does not parse, so an error can still show what the
    user typed (``scheme://user:***@host...``, or ``user:***@host...`` without a scheme)."""
    scheme, sep, rest = text.rpartition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{hostpart}"
    return f"{scheme}{sep}{rest}"


def looks_like_path(text: str) -> bool:
    """Whether a ``--db-url`` value is a plain SQLite file path rather than a URL: it starts
    with ``/``, ``~`` or ``.``, or it holds no ``:`` and has a folder or a file extension
    (``catalogue.db``, ``data/cat``). A bare word (``file_hashes``, ``not a url``) is more
    likely a mistake than a file name: write ``./file_hashes`` to mean the file."""
    if "://" in text:
        return False
    if text.startswith(("/", "~", ".")):
        return True
    return ":" not in text and ("/" in text or bool(os.path.splitext(text)[1]))


def parse_db_url(text: str, source: str) -> URL:
    """Parse and check a database URL given by the user; errors name the source.

    ``postgres://`` (the Heroku/libpq spelling) means ``postgresql://``; a plain path
    (absolute, relative or ``~``) means a SQLite file."""
    if not text.strip():
        raise ConfigError(f"{source}: the database URL is empty")
    if looks_like_path(text):
        return sqlite_url(text)
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        # SQLAlchemy converts the port with int(): ``host:notaport`` is a ValueError
        why = ("the port must be a number" if isinstance(exc, ValueError) else
               "expected postgresql://user@host/database, sqlite:///path.db or a file path "
               "such as ./catalogue.db")
        raise ConfigError(
            f"{source}: not a valid database URL: '{mask_url(text)}' ({why})"
        ) from exc
    register_secret(url.password if isinstance(url.password, str) else None)
    backend = url.get_backend_name()
    driver = url.drivername.partition("+")[2]
    if backend == "postgres":  # libpq's and Heroku's name for the scheme
        backend = "postgresql"
        url = url.set(drivername="postgresql" + (f"+{driver}" if driver else ""))
    if backend == "postgresql":
        if driver not in ("", "psycopg2"):
            raise ConfigError(
                f"{source}: unsupported PostgreSQL driver '{driver}' (use postgresql:// "
                "or postgresql+psycopg2://)"
            )
        url = url.set(drivername="postgresql+psycopg2")
        if not url.database:
            raise ConfigError(
                f"{source}: the PostgreSQL URL {mask_url(text)} names no database "
                "(add /DATABASE at the end)"
            )
        # libpq rejects such a port before connecting, which would otherwise look like an
        # unreachable server and fall back to SQLite; port 0 would silently mean 5432
        if url.port is not None and not 0 < url.port < 65536:
            raise ConfigError(
                f"{source}: port {url.port} is out of range (1-65535) in {mask_url(text)}"
            )
    elif backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(f"{source}: unsupported SQLite driver '{driver}' (use sqlite:///)")
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"{source}: an in-memory SQLite database cannot hold a catalogue; "
                "give a file path (sqlite:////abs/path.db, or just the path)"
            )
        url = sqlite_url(url.database)
    else:
        raise ConfigError(
            f"{source}: unsupported database '{backend}' in {mask_url(text)} (dupfinder "
            "supports postgresql and sqlite)"
        )
    return url
