"""Config files: found by the lookup order, read, and checked against the schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dupfinder.config.schema import (
    BACKENDS,
    DATABASE_KEYS,
    ENV_CONFIG,
    FALLBACK_KEYS,
    TOP_KEYS,
    user_config_path,
)
from dupfinder.errors import ConfigError, param
from dupfinder.paths import for_message


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
