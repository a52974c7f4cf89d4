"""The hashing pool: every start method works, and any worker failure ends the scan with one
error line within seconds, leaving no worker behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from dupfinder.scan import workers
from dupfinder.scan.workers import process_limit
from tests.helpers import blob, groups, write

METHODS = ["fork", "spawn", "forkserver"]


def make_pairs(root: Path, n: int = 12, size: int = 40_000) -> set[frozenset[str]]:
    """``n`` duplicate pairs plus unique files of the same sizes; returns the pairs."""
    expected = set()
    for i in range(n):
        data = blob(i, size + i)
        expected.add(frozenset({str(write(root / f"a/{i}", data)),
                                str(write(root / f"b/{i}", data))}))
        write(root / f"u/{i}", blob(1000 + i, size + i))
    return expected


def start(*args: str) -> subprocess.Popen[str]:
    """``python -m dupfinder ARGS`` in its own process."""
    return subprocess.Popen([sys.executable, "-m", "dupfinder", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def descendants(pid: int) -> set[int]:
    """Every live (not zombie) process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] != b"Z"


@pytest.mark.parametrize("method", METHODS)
def test_every_start_method_finds_the_same_groups(db_url: str, tmp_path: Path, cli,
                                                  method: str) -> None:
    expected = make_pairs(tmp_path / "tree")
    r = cli("scan", tmp_path / "tree", "--db-url", db_url, "--no-fallback", "-q",
            "-p", "2", "-b", "3", "--start-method", method, "--host-label", "h")
    assert r.code == 0, r.err
    assert r.err == ""
    db = open_database(load_settings(db_url=db_url), no_fallback=True)
    try:
        assert groups(db) == expected
    finally:
        db.dispose()


@pytest.mark.parametrize("method", METHODS)
def test_workers_die_with_a_scan_killed_by_sigkill(tmp_path: Path, method: str) -> None:
    """The kernel (or the fork server's exit) ends the workers: none waits for tasks."""
    # enough to hash that the scan outlives the polling below on a loaded machine (60 files
    # of 2 MB once finished before both workers were seen)
    for i in range(120):
        write(tmp_path / f"tree/{i}", blob(i, 3_000_000))
    proc = start("scan", str(tmp_path / "tree"), "--db-url", f"sqlite:///{tmp_path}/c.db",
                 "-q", "-p", "2", "-b", "1", "-a", "sha256", "--start-method", method)
    deadline = time.monotonic() + 60
    workers_seen: set[int] = set()
    while len(workers_seen) < 2:  # both workers (and the fork server, if any) are up
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no workers started"
        workers_seen = {p for p in descendants(proc.pid)
                        if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()}
        workers_seen = workers_seen if len(workers_seen) >= (3 if method == "forkserver"
                                                             else 2) else set()
        time.sleep(0.01)
    proc.kill()
    proc.communicate(timeout=30)  # a worker left behind would hold the pipes open
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers_seen):
        assert time.monotonic() < deadline, "a worker outlived the scan"
        time.sleep(0.05)


def test_processes_are_capped(cli, tmp_path: Path) -> None:
    too_many = process_limit() + 1
    r = cli("scan", tmp_path, "--db-url", f"sqlite:///{tmp_path}/c.db", "-p", str(too_many))
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dupfinder: error: "), r.err
    assert f"not {too_many}" in lines[0] and f"at most {process_limit()}" in lines[0]
    assert not (tmp_path / "c.db").exists()


@pytest.fixture
def limited_url(pg_server: URL, pg_url: str) -> Iterator[str]:
    """A URL of a fresh database through a role that may hold one connection at a time."""
    role = f"lim_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    name = make_url(pg_url).database
    admin = create_engine(pg_server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1"))
            conn.execute(text(f'CREATE DATABASE "{name}" OWNER {role}'))
        yield pg_server.set(username=role, password="pw", database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.mark.parametrize("method", METHODS)
def test_workers_refused_by_the_database_end_the_scan(tmp_path: Path, limited_url: str,
                                                      method: str) -> None:
    """The scan holds the role's only connection: every worker's connection is refused."""
    make_pairs(tmp_path / "tree", n=40, size=5000)
    t0 = time.monotonic()
    proc = start("scan", str(tmp_path / "tree"), "--db-url", limited_url, "--no-fallback",
                 "-q", "-p", "2", "-b", "2", "--start-method", method)
    try:
        out, err = proc.communicate(timeout=30)  # returns once no worker holds the pipes
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("dupfinder: error: database error in a hashing process")
    assert "too many connections" in lines[0]
    assert "pw" not in lines[0].replace("pwd", "")


def test_a_task_that_raises_ends_the_scan(db_url: str, tmp_path: Path, cli,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    make_pairs(tmp_path / "tree", n=20, size=5000)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(workers, "hash_task", broken)  # inherited by fork
    before = descendants(os.getpid())
    t0 = time.monotonic()
    r = cli("scan", tmp_path / "tree", "--db-url", db_url, "--no-fallback", "-q",
            "-p", "2", "-b", "2", "--start-method", "fork")
    assert time.monotonic() - t0 < 30
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert lines == ["dupfinder: error: a hashing process failed (work committed so far is "
                     "kept; run the same command again to resume): RuntimeError: disk on "
                     "fire; second line"], r.err
    assert not left_behind(before)


def test_a_worker_that_dies_ends_the_scan(tmp_path: Path, cli,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    make_pairs(tmp_path / "tree", n=20, size=5000)

    def die(*_args: object, **_kwargs: object) -> None:
        os._exit(7)

    monkeypatch.setattr(workers, "hash_task", die)
    before = descendants(os.getpid())
    r = cli("scan", tmp_path / "tree", "--db-url", f"sqlite:///{tmp_path}/c.db", "-q",
            "-p", "2", "-b", "2", "--start-method", "fork")
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert lines[0].startswith("dupfinder: error: a hashing process ended unexpectedly")
    assert "exit status 7" in lines[0]
    assert not left_behind(before)


def test_a_worker_whose_setup_fails_ends_the_scan(db_url: str, tmp_path: Path, cli,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_pairs(tmp_path / "tree", n=20, size=5000)

    def refuse(*_args: object) -> None:
        raise ConnectionError("no route to catalogue")

    # PostgreSQL's workers open their own database first; SQLite's only make a reader
    monkeypatch.setattr(workers, "worker_database", refuse)
    monkeypatch.setattr(workers, "Reader", refuse)
    before = descendants(os.getpid())
    r = cli("scan", tmp_path / "tree", "--db-url", db_url, "--no-fallback", "-q",
            "-p", "2", "-b", "2", "--start-method", "fork")
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "dupfinder: error: a hashing process failed (work committed so far is kept; run the "
        "same command again to resume): ConnectionError: no route to catalogue"], r.err
    assert not left_behind(before)


def left_behind(before: set[int]) -> set[int]:
    """Processes below this one that a scan started and that are still alive (the
    multiprocessing helpers started once per process do not count)."""
    def helper(pid: int) -> bool:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return True
        return "resource_tracker" in cmd or "forkserver" in cmd

    return {p for p in descendants(os.getpid()) - before if not helper(p)}
