"""How dupfinder opens a SQLite catalogue: the pragmas of a writing and of a reading
connection, and a read-only open of a file this user cannot write."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dupfinder.errors import DatabaseError

SQLITE_BUSY_TIMEOUT_MS = 60_000
# Checkpoint the WAL every 32 MiB instead of SQLite's 4 MiB. A checkpoint can only reset
# the WAL when no reader holds an older snapshot: the scan never keeps a read open across
# a stage (when it did, the WAL grew with the catalogue instead of staying bounded).
WAL_AUTOCHECKPOINT_PAGES = 8192


def writing_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cur.close()


def reading_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA query_only=ON")  # a write fails at once as "readonly database"
    cur.close()


def read_only_error(path: Path) -> Callable[[Any], None]:
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
