"""Configuration: where settings come from, validation, database URL building, masking.

Lookup order for the file: ``--config PATH``, ``$DUPFINDER_CONFIG``, ``./config.json``, the
user's config folder (platformdirs), built-in defaults. ``--db-url`` and ``$DUPFINDER_DB_URL``
override the file's database section.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dupfinder.errors import ConfigError, param, register_secret
from dupfinder.paths import absolute, for_message

APP_NAME = "dupfinder"
ENV_CONFIG = "DUPFINDER_CONFIG"
ENV_DB_URL = "DUPFINDER_DB_URL"
ENV_HOST_LABEL = "DUPFINDER_HOST_LABEL"
BACKENDS = ("postgresql", "sqlite")


def default_sqlite_path() -> str:
    """The SQLite catalogue used when nothing else is configured (and for fallback)."""
    return str(Path(platformdirs.user_data_dir(APP_NAME)) / "file_hashes.db")


def user_config_path() -> Path:
    """The per-user config file location (e.g. ``~/.config/dupfinder/config.json``)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.json"


# key -> (allowed python types, nullable, default factory)
_INT = (int,)
_STR = (str,)
_BOOL = (bool,)
DATABASE_KEYS: dict[str, tuple[tuple[type, ...], bool, Any]] = {
    "backend": (_STR, False, lambda: "postgresql"),
    "host": (_STR, False, lambda: "localhost"),
    "port": (_INT, False, lambda: 5432),
    "user": (_STR, True, lambda: None),
    "password": (_STR, True, lambda: None),
    "database": (_STR, False, lambda: "file_hashes"),
    "sqlite_path": (_STR, False, default_sqlite_path),
    "pool_size": (_INT, False, lambda: 20),
    "max_overflow": (_INT, False, lambda: 30),
    "pool_timeout": (_INT, False, lambda: 30),
    "connect_timeout": (_INT, False, lambda: 5),
}
FALLBACK_KEYS: dict[str, tuple[tuple[type, ...], bool, Any]] = {
    "enabled": (_BOOL, False, lambda: True),
    "sqlite_path": (_STR, False, default_sqlite_path),
}
TOP_KEYS = {"database", "fallback", "host_label"}


class Setting(NamedTuple):
    """One line of ``dupfinder config show``."""

    key: str
    value: str
    source: str


@dataclass
class Settings:
    """The effective settings and, for each one, where it came from."""

    database: dict[str, Any]
    fallback: dict[str, Any]
    host_label: str
    config_file: Path | None
    url_override: URL | None = None
    # where each setting came from; a flag is named as a field (errors.param), which
    # errors.in_words shows as its name and the command line as its flag
    sources: dict[str, str] = field(default_factory=dict)
    url_text: str | None = None  # the override as the user gave it (for messages)

    @property
    def url_source(self) -> str | None:
        """Where an explicit database URL came from (``--db-url`` or ``$DUPFINDER_DB_URL``);
        None when the URL is built from the config file or the built-in defaults."""
        if self.url_override is None:
            return None
        return self.sources.get("db_url", param("db_url"))

    @property
    def url_as_given(self) -> str | None:
        """The explicit database URL as the user typed it, password masked (None: no
        explicit URL)."""
        if self.url_override is None:
            return None
        return mask_url(self.url_text) if self.url_text else mask_url(self.url_override)

    @property
    def fallback_allowed(self) -> bool:
        """Whether an unreachable server may be replaced by the fallback SQLite file: only
        the configured default server (config file or built-in default) with
        ``fallback.enabled``. A database named explicitly (``--db-url``,
        ``$DUPFINDER_DB_URL``, ``Catalogue.open(url)``) is never swapped for another."""
        return self.url_override is None and bool(self.fallback["enabled"])

    @property
    def backend(self) -> str:
        """``postgresql`` or ``sqlite``: the backend asked for (before any fallback)."""
        if self.url_override is not None:
            return backend_of(self.url_override)
        return str(self.database["backend"])

    def url(self) -> URL:
        """The SQLAlchemy URL of the configured database."""
        if self.url_override is not None:
            return self.url_override
        db = self.database
        if db["backend"] == "sqlite":
            return sqlite_url(db["sqlite_path"])
        query = {"connect_timeout": str(db["connect_timeout"])}
        return URL.create(
            "postgresql+psycopg2",
            username=db["user"],
            password=db["password"],
            host=db["host"],
            port=db["port"],
            database=db["database"],
            query=query,
        )

    def fallback_url(self) -> URL:
        """The SQLite URL used when PostgreSQL cannot be reached."""
        return sqlite_url(self.fallback["sqlite_path"])

    def show(self) -> list[Setting]:
        """The settings for ``dupfinder config show``, each with its source; password
        masked. What is shown is what is in effect: when ``--db-url`` (or
        ``$DUPFINDER_DB_URL``) names the database, the ``database.*`` rows it decides show
        the URL's values and the rows it replaces (and the fallback) say they are not used."""
        rows: list[Setting] = []
        rows.append(Setting("config_file", str(self.config_file or "(none)"), "lookup"))
        override, via = self.url_override, self.url_source
        if override is not None:
            rows.append(Setting("db_url", str(self.url_as_given), str(via)))
        from_url = _url_values(override) if override is not None else {}
        for key in DATABASE_KEYS:
            source = self.sources[f"database.{key}"]
            if key in from_url:
                value, source = from_url[key], str(via)
            else:
                value = self.database[key]
                if override is not None and key in _URL_KEYS:
                    source = f"{source}; not used with {via}"
            if key == "password" and value:
                value = "***"
            rows.append(Setting(f"database.{key}", _fmt(value), source))
        for key in FALLBACK_KEYS:
            source = self.sources[f"fallback.{key}"]
            if override is not None:
                source = f"{source}; not used with {via} (no fallback)"
            elif self.backend == "sqlite":
                source = f"{source}; not used: the backend is sqlite"
            rows.append(Setting(f"fallback.{key}", _fmt(self.fallback[key]), source))
        rows.append(Setting("host_label", self.host_label, self.sources["host_label"]))
        rows.append(Setting("effective_url", mask_url(self.url()), "computed"))
        return rows


# the database.* keys a URL decides (all of them are replaced by a --db-url)
_URL_KEYS = ("backend", "host", "port", "user", "password", "database", "sqlite_path")


def _url_values(url: URL) -> dict[str, Any]:
    """The ``database.*`` values a URL sets (only those of its backend)."""
    if backend_of(url) == "sqlite":
        return {"backend": "sqlite", "sqlite_path": url.database}
    return {"backend": "postgresql", "host": url.host or "(local socket)",
            "port": url.port or 5432, "user": url.username, "password": url.password,
            "database": url.database}


def _fmt(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def find_config_file(explicit: str | None, cwd: Path | None = None) -> tuple[Path | None, str]:
    """Pick the config file by the lookup order; returns (path or None, how it was found)."""
    for given, how in ((explicit, param("config")),
                       (os.environ.get(ENV_CONFIG), f"${ENV_CONFIG}")):
        if given:
            path = Path(given).expanduser()
            if path.is_dir():
                raise ConfigError(
                    f"{how}: {for_message(given)} is a folder; give the config file itself"
                )
            if not path.is_file():
                raise ConfigError(f"{how}: no such file: {for_message(given)}")
            return path, how
    local = (cwd or Path.cwd()) / "config.json"
    if _is_file(local):
        return local, "./config.json"
    user = user_config_path()
    if _is_file(user):
        return user, "user config"
    return None, "defaults"


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a folder we may not look into counts as 'no file'."""
    try:
        return path.is_file()
    except PermissionError:
        return False


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and validate a config file; every problem names the file (and key or line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    if not text.strip():
        raise ConfigError(f"{path}: config file is empty (expected a JSON object)")
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(path, pairs))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:  # json recurses once per nesting level
        raise ConfigError(f"{path}: invalid JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a JSON object, not {_jtype(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key '{key}' (known: {', '.join(sorted(TOP_KEYS))})")
    _check_section(path, data, "database", DATABASE_KEYS)
    _check_section(path, data, "fallback", FALLBACK_KEYS)
    label = data.get("host_label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError(f"{path}: key 'host_label' must be a non-empty string or null")
    db = data.get("database", {})
    if "backend" in db and db["backend"] not in BACKENDS:
        raise ConfigError(
            f"{path}: key 'database.backend' must be one of {', '.join(BACKENDS)}, "
            f"not '{db['backend']}'"
        )
    for key in ("port", "pool_size", "max_overflow", "pool_timeout", "connect_timeout"):
        if key in db and (db[key] < 0 or (key == "port" and not 0 < db[key] < 65536)):
            raise ConfigError(f"{path}: key 'database.{key}' is out of range: {db[key]}")
    if db.get("pool_size") == 0:
        raise ConfigError(f"{path}: key 'database.pool_size' must be at least 1")
    return data


def _check_section(
    path: Path, data: dict[str, Any], name: str, spec: dict[str, tuple[tuple[type, ...], bool, Any]]
) -> None:
    if name not in data:
        return
    section = data[name]
    if not isinstance(section, dict):  # null included: the section would be silently empty
        raise ConfigError(f"{path}: key '{name}' must be an object, not {_jtype(section)}")
    for key, value in section.items():
        if key not in spec:
            raise ConfigError(
                f"{path}: unknown key '{name}.{key}' (known: {', '.join(spec)})"
            )
        types, nullable, _ = spec[key]
        if value is None and nullable:
            continue
        ok = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
        if not ok:
            want = " or ".join(_tname(t) for t in types) + (" or null" if nullable else "")
            raise ConfigError(
                f"{path}: key '{name}.{key}' must be {want}, not {_jtype(value)}"
            )


def _unique_keys(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a repeated key: json would silently keep the last one,
    so a setting the user believes is in force could be overridden further down the file."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ConfigError(f"{path}: duplicate key '{key}' in a JSON object")
        data[key] = value
    return data


def _tname(t: type) -> str:
    return {int: "an integer", str: "a string", bool: "true/false"}[t]


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {
        int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"
    }.get(type(value), type(value).__name__)


def _check_label(label: str, source: str) -> None:
    """A host label is stored as text and printed in messages: it must be printable
    UTF-8 (an undecodable byte or a control character in it is an error naming where it
    came from)."""
    import unicodedata

    from dupfinder.paths import display, is_utf8

    if not is_utf8(label) or len(label) > 255 or any(
            unicodedata.category(c) in ("Cc", "Cf") for c in label):
        raise ConfigError(f"{source}: the host label {display(label)} must be printable "
                          "UTF-8 text of at most 255 characters")


def load_settings(
    config_path: str | None = None,
    db_url: str | None = None,
    host_label: str | None = None,
    cwd: Path | None = None,
    lookup: bool = True,
) -> Settings:
    """Build the effective settings from defaults, the config file, env and options.

    With ``lookup`` false only what is passed counts: no ``$DUPFINDER_*`` variable, no
    ``./config.json`` or user config file (the library reads nothing it was not given).
    """
    if lookup or config_path:
        path, how = find_config_file(config_path, cwd)
    else:
        path, how = None, "defaults"
    data = read_config_file(path) if path else {}
    file_src = f"{path} ({how})" if path else "default"
    sources: dict[str, str] = {}

    def merged(section: str, spec: dict[str, tuple[tuple[type, ...], bool, Any]]) -> dict:
        values: dict[str, Any] = {}
        given = data.get(section) or {}
        for key, (_, _, default) in spec.items():
            if key in given:
                values[key] = given[key]
                sources[f"{section}.{key}"] = file_src
            else:
                values[key] = default()
                sources[f"{section}.{key}"] = "default"
        return values

    database = merged("database", DATABASE_KEYS)
    fallback = merged("fallback", FALLBACK_KEYS)
    register_secret(database["password"])

    if host_label:
        label, sources["host_label"] = host_label, param("host_label")
    elif lookup and os.environ.get(ENV_HOST_LABEL):
        label, sources["host_label"] = os.environ[ENV_HOST_LABEL], f"${ENV_HOST_LABEL}"
    elif data.get("host_label"):
        label, sources["host_label"] = data["host_label"], file_src
    else:
        label, sources["host_label"] = socket.gethostname(), "hostname"
    _check_label(label, sources["host_label"])

    override: URL | None = None
    url_text: str | None = None
    if db_url is not None:
        override, url_text = parse_db_url(db_url, param("db_url")), db_url
        sources["db_url"] = param("db_url")
    elif lookup and os.environ.get(ENV_DB_URL):
        url_text = os.environ[ENV_DB_URL]
        override = parse_db_url(url_text, f"${ENV_DB_URL}")
        sources["db_url"] = f"${ENV_DB_URL}"
    return Settings(
        database=database,
        fallback=fallback,
        host_label=label,
        config_file=path,
        url_override=override,
        sources=sources,
        url_text=url_text,
    )
