"""Locks of one catalogue: one action run (dedupe apply or undo) at a time per host, and a
merge into a host never beside a scan of it.

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
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dupfinder.db.engine import Database
from dupfinder.errors import SafetyError

_LOCK_SPACE = 0x64757067  # "dupg": action runs (the schema lock uses "dupf")


def _host_key(host: str) -> int:
    return int.from_bytes(hashlib.sha1(host.encode()).digest()[:4], "big", signed=True)


BUSY = ("another dedupe or undo is running on host {host} against this catalogue; "
        "wait for it to end (runs never overlap, so that no two can remove both copies)")


def action_lock_file(db: Database) -> str:
    """The file a SQLite catalogue's action lock is taken on."""
    return f"{os.path.realpath(db.url.database or '')}.actions-lock"


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
    path = action_lock_file(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SafetyError(BUSY.format(host=host)) from exc
        yield
    finally:
        os.close(fd)


def runtime_dir() -> str:
    """This user's folder for locks: ``$XDG_RUNTIME_DIR``, else ``/run/user/UID``, else a
    private folder in the temporary folder (made 0700, refused unless it is ours)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), f"/run/user/{os.getuid()}"):
        if candidate and os.path.isdir(candidate):
            return os.path.realpath(candidate)
    base = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"dupfinder-{os.getuid()}")
    with suppress(FileExistsError):
        os.mkdir(base, 0o700)
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SafetyError(f"{base} is not a private folder of this user; remove it or set "
                          "XDG_RUNTIME_DIR")
    return base


_HOST_SPACE = 0x6475706D  # "dupm": scans (shared) against a merge (exclusive) of a host

SCAN_BUSY = ("a merge into host {host} is running against this catalogue; wait for it to "
             "end, then scan again")
MERGE_BUSY = ("a scan of host {host} is running against this catalogue; wait for it to end, "
              "then merge again")


@contextmanager
def host_lock(db: Database, host: str, *, exclusive: bool) -> Iterator[None]:
    """A merge into ``host`` holds this exclusively for its whole run; a scan of ``host``
    takes it shared: a scan is refused at once (:class:`SafetyError`) while a merge runs,
    and on SQLite a merge is refused while a scan holds it. Dies with its process, like
    :func:`action_lock`. On PostgreSQL a scan only checks it at its start (holding it
    would cost the scan a connection of its own for its whole run, which a role limited
    to a few connections cannot spare); a merge there refuses a host with a running scan
    by the scan records instead (:func:`dupfinder.db.merge.live_scans`)."""
    message = (MERGE_BUSY if exclusive else SCAN_BUSY).format(host=host)
    if db.backend == "postgresql":
        fn = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
        unlock = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
        params = {"a": _HOST_SPACE, "b": _host_key(host)}
        with db.engine.connect() as conn:
            got = conn.execute(text(f"SELECT {fn}(:a, :b)"), params).scalar()
            conn.commit()
            if not got:
                raise SafetyError(message)
            try:
                if not exclusive:  # the check only: the scan goes on without it
                    conn.execute(text(f"SELECT {unlock}(:a, :b)"), params)
                    conn.commit()
                    got = False
                    conn.close()
                yield
            finally:
                if got:
                    try:
                        conn.execute(text(f"SELECT {unlock}(:a, :b)"), params)
                        conn.commit()
                    except SQLAlchemyError:
                        pass
        return
    # one lock for every host of a SQLite catalogue, in this user's runtime folder, named
    # by the catalogue file's identity (so a link to it shares it, and no file is left
    # beside the catalogue); SQLite catalogues are written from one machine
    st = os.stat(db.url.database or "")
    folder = os.path.join(runtime_dir(), "dupfinder")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"hosts-{st.st_dev}-{st.st_ino}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SafetyError(message) from exc
        yield
    finally:
        os.close(fd)
