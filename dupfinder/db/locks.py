"""One action run (dedupe apply or undo) at a time per host and catalogue.

Two runs at once with different keepers deleted both copies of a file: each verified its
keeper before the other deleted it. The lock is held for a whole run and dies with the
process that holds it (kill -9 included), so it never needs cleaning up:
- PostgreSQL: a session-level advisory lock on a connection kept open for the run, keyed
  by the host label (hosts act on their own files only, so they need not wait for each
  other);
- SQLite: ``flock`` on a file beside the catalogue (one writer machine in practice).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dupfinder.db.engine import Database
from dupfinder.errors import SafetyError

_LOCK_SPACE = 0x64757067  # "dupg": action runs (the schema lock uses "dupf")


def _host_key(host: str) -> int:
    return int.from_bytes(hashlib.sha1(host.encode()).digest()[:4], "big", signed=True)


BUSY = ("another dedupe or undo is running on host {host} against this catalogue; "
        "wait for it to end (runs never overlap, so that no two can remove both copies)")


@contextmanager
def action_lock(db: Database, host: str) -> Iterator[None]:
    """Hold the host's action lock for the ``with`` block; :class:`SafetyError` at once
    if another run holds it."""
    if db.backend == "postgresql":
        with db.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                               {"a": _LOCK_SPACE, "b": _host_key(host)}).scalar()
            conn.commit()
            if not got:
                raise SafetyError(BUSY.format(host=host))
            try:
                yield
            finally:
                try:  # a lost connection has released the lock already
                    conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                                 {"a": _LOCK_SPACE, "b": _host_key(host)})
                    conn.commit()
                except SQLAlchemyError:
                    pass
        return
    # beside the catalogue file itself: a link to it must not get a lock of its own
    path = f"{os.path.realpath(db.url.database or '')}.actions-lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SafetyError(BUSY.format(host=host)) from exc
        yield
    finally:
        os.close(fd)
