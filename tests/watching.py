"""A ``dupfinder watch`` in its own process, its JSON lines read back, and the check that
the catalogue has settled to what a fresh scan of the tree gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from tests.helpers import HOST, groups, scan

SETTLE = "0.3"


class Watcher:
    """``dupfinder watch ROOTS -f json -v`` against ``db_url``; stdout and stderr go to
    files in ``logs`` (a pipe left unread would stall it)."""

    def __init__(self, db_url: str, roots: Sequence[Path | str], logs: Path, *extra: str,
                 prefix: Sequence[str] = ()) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / "watch.out", logs / "watch.err"
        self.args = [*prefix, sys.executable, "-m", "dupfinder", "watch",
                     *[str(r) for r in roots], "--db-url", db_url, "--host-label", HOST,
                     "-f", "json", "-v", "--settle", SETTLE, "-p", "1", *extra]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err)

    def events(self) -> list[dict[str, Any]]:
        lines = self.out_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, event: str, where: Callable[[dict[str, Any]], bool] = lambda e: True,
                 timeout: float = 60.0, after: int = 0) -> dict[str, Any]:
        """The first ``event`` (from the ``after``-th on) that ``where`` accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events()[after:]:
                if e["event"] == event and where(e):
                    return e
            if self.proc.poll() is not None:
                raise AssertionError(f"watch ended ({self.proc.returncode}): {self.err()}")
            time.sleep(0.05)
        seen = self.events()
        raise AssertionError(f"no {event} event in {timeout}s ({len(seen)} events, the last "
                             f"{seen[-3:]}); stderr: {self.err()[-2000:]}")

    def ready(self) -> Watcher:
        self.wait_for("watching")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def truth(roots: Sequence[Path | str], scratch: Path, **walk: object
          ) -> tuple[dict[str, int], set[frozenset[str]]]:
    """What a fresh scan of ``roots`` into a new catalogue says: path -> size, and the
    duplicate groups."""
    scratch.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{scratch}/fresh-{time.monotonic_ns()}.db"
    db = open_database(load_settings(db_url=url), no_fallback=True)
    try:
        scan(db, *roots, **walk)
        return sizes(db), groups(db)
    finally:
        db.dispose()


def sizes(db: Any) -> dict[str, int]:
    from sqlalchemy import select

    from dupfinder.db.models import FileHash
    from dupfinder.db.stored_paths import from_db

    with db.session() as s:
        return {from_db(r.path): r.size
                for r in s.execute(select(FileHash.path, FileHash.size))}


def settles(db_url: str, roots: Sequence[Path | str], scratch: Path, timeout: float = 60.0,
            **walk: object) -> None:
    """Wait until the catalogue at ``db_url`` holds what a fresh scan of the tree (as it
    is now) holds: the same files with the same sizes, the same groups."""
    want = truth(roots, scratch, **walk)
    db = open_database(load_settings(db_url=db_url), no_fallback=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = sizes(db), groups(db)
            if got == want:
                return
            if time.monotonic() > deadline:
                missing = set(want[0]) - set(got[0])
                extra = set(got[0]) - set(want[0])
                raise AssertionError(f"not settled: {len(missing)} missing "
                                     f"{sorted(missing)[:5]}, {len(extra)} extra "
                                     f"{sorted(extra)[:5]}; groups equal: "
                                     f"{got[1] == want[1]}")
            time.sleep(0.1)
    finally:
        db.dispose()


def many(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[Path]:
    """``n`` small files in ``folder``, one in 20 a copy of another."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(n):
        p = folder / f"f{i:06d}"
        body = f"{seed}-{i % (n - n // 20) if n > 20 else i}-".encode()
        p.write_bytes(body + b"x" * max(0, size - len(body)))
        made.append(p)
    return made


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
