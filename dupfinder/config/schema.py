"""The settings a config file may hold, their types and defaults, and where the files are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs

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
