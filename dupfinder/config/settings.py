"""The settings in effect, and the precedence that makes them: the command line over the
environment over the config file over the defaults."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.engine import URL

from dupfinder.config.files import find_config_file, read_config_file
from dupfinder.config.schema import DATABASE_KEYS, ENV_DB_URL, ENV_HOST_LABEL, FALLBACK_KEYS
from dupfinder.config.urls import backend_of, mask_url, parse_db_url, sqlite_url
from dupfinder.errors import ConfigError, param, register_secret


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
