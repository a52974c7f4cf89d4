"""Locks that keep "never the last copy" true whatever catalogues are in use.

The catalogue's own run lock (:func:`dupfinder.db.locks.action_lock`) keeps two runs of one
catalogue apart. Two catalogues acting on one tree at once (the PostgreSQL catalogue and a
SQLite fallback, or two ``--db-url`` files) deleted both copies of a file: each run verified
its keeper before the other deleted it. Two more locks close that gap, both ``flock``s that
die with the process holding them (kill -9 included):

- :func:`machine_lock`: one action run at a time for this user on this machine, a file in
  the user's runtime folder, whichever catalogue the run uses;
- :class:`FileLocks`: each action holds its duplicate exclusively and its keeper shared
  until the action is journaled, so a run of another user (another runtime folder) cannot
  delete the keeper while it is verified, probed and relied on, nor see the probe hard
  link this run makes as a sign of an overlay mount.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dupfinder.actions.fileops import Skip
from dupfinder.db.engine import Database
from dupfinder.db.locks import action_lock, runtime_dir
from dupfinder.errors import SafetyError
from dupfinder.scan.hashing import NotRegularFile, open_readonly

MACHINE_BUSY = ("another dedupe or undo is running on this machine; wait for it to end "
                "(runs never overlap, whichever catalogues they use, so that no two can "
                "remove both copies)")


@contextmanager
def machine_lock() -> Iterator[None]:
    """Hold this user's action lock on this machine; :class:`SafetyError` at once if another
    run holds it."""
    folder = os.path.join(runtime_dir(), "dupfinder")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(folder, "actions.lock"),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SafetyError(MACHINE_BUSY) from exc
        yield
    finally:
        os.close(fd)


@contextmanager
def run_lock(db: Database, host: str) -> Iterator[None]:
    """Everything one action run (apply or undo) holds: the machine's lock, then the
    catalogue's."""
    with machine_lock(), action_lock(db, host):
        yield


class FileLocks:
    """The duplicate locked exclusively and the keeper shared, for one action.

    A file held by another run is waited for up to ``wait`` seconds, then the action is a
    :class:`Skip`. Both locks are taken without blocking, so two runs that want each
    other's files never deadlock: one backs off and tries again.
    """

    def __init__(self, dup: str, kept: str, wait: float = 5.0) -> None:
        self.dup, self.kept, self.wait = dup, kept, wait
        self.fds: list[int] = []

    def __enter__(self) -> FileLocks:
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while True:
            try:
                self._take()
                return self
            except BlockingIOError:
                self._release()
                if time.monotonic() >= deadline:
                    raise Skip("another dupfinder run is acting on this file or on the copy "
                               "that stays") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except BaseException:
                self._release()
                raise

    def _take(self) -> None:
        for path, mode, which in ((self.dup, fcntl.LOCK_EX, "the file"),
                                  (self.kept, fcntl.LOCK_SH, "the copy that stays")):
            try:
                fd = open_readonly(path)
            except FileNotFoundError as exc:
                raise Skip(f"{which} is gone") from exc
            except NotRegularFile as exc:
                raise Skip("not a regular file any more") from exc
            self.fds.append(fd)
            fcntl.flock(fd, mode | fcntl.LOCK_NB)

    def _release(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        self._release()
