"""Configuration: where settings come from, validation, database URL building, masking.

Lookup order for the file: ``--config PATH``, ``$DUPFINDER_CONFIG``, ``./config.json``, the
user's config folder (platformdirs), built-in defaults. ``--db-url`` and ``$DUPFINDER_DB_URL``
override the file's database section.
"""

from dupfinder.config.schema import (
    APP_NAME,
    BACKENDS,
    DATABASE_KEYS,
    ENV_CONFIG,
    ENV_DB_URL,
    ENV_HOST_LABEL,
    FALLBACK_KEYS,
    default_sqlite_path,
    user_config_path,
)
from dupfinder.config.settings import Setting, Settings, load_settings
from dupfinder.config.urls import backend_of, mask_url, parse_db_url, sqlite_url

__all__ = ["APP_NAME", "BACKENDS", "DATABASE_KEYS", "ENV_CONFIG", "ENV_DB_URL", "ENV_HOST_LABEL",
           "FALLBACK_KEYS", "Setting", "Settings", "backend_of", "default_sqlite_path",
           "load_settings", "mask_url", "parse_db_url", "sqlite_url", "user_config_path"]
