"""Hashing tasks and the process pool that runs them.

Each worker process opens its own engine and session from the database URL (never one
inherited through fork), hashes a task's files and writes the results in one batched
statement before taking the next task, so whatever finished is committed if the scan dies.
Works with both the ``fork`` and ``spawn`` start methods.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from typing import Any

from dupfinder.db import catalogue
from dupfinder.db.engine import Database, worker_database
from dupfinder.errors import quiet_library_logs
from dupfinder.paths import from_db
from dupfinder.scan.hashing import FileChanged, Reader

# (catalogue ids sharing one inode, catalogue path, size, mtime_ns)
Item = tuple[tuple[int, ...], str, int, int]


@dataclass
class Task:
    """A batch of files for one stage (``prefix`` or ``full``)."""

    stage: str
    items: list[Item]


@dataclass
class TaskResult:
    """What a task did."""

    files: int = 0
    bytes_read: int = 0
    changed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class HashSettings:
    """Everything a worker needs to hash; picklable for ``spawn``."""

    url: str
    algorithm: str
    tag: str
    prefix_size: int
    chunk_size: int


def hash_task(db: Database, reader: Reader, tag: str, task: Task,
              write_lock: Any = None) -> TaskResult:
    """Hash a task's files and save the results in one statement; returns the counts.

    ``write_lock`` (SQLite only) serialises the workers' writes: SQLite takes one writer
    at a time, and a writer that finds the database busy sleeps in steps of up to 100 ms,
    while a waiter on this lock wakes the moment it is free."""
    result = TaskResult()
    updates: list[dict[str, Any]] = []
    for ids, db_path, size, mtime_ns in task.items:
        path = from_db(db_path)
        try:
            if task.stage == "prefix":
                digest, full, nread = reader.prefix(path, size, mtime_ns)
                updates.extend(
                    {"id": i, "prefix_hash": digest, "full_hash": full, "hash_algo": tag}
                    for i in ids
                )
                result.bytes_read += nread
            else:
                digest = reader.full(path, size, mtime_ns)
                updates.extend({"id": i, "full_hash": digest} for i in ids)
                result.bytes_read += size
            result.files += 1
        except FileChanged:
            result.changed += 1
        except OSError as exc:
            result.errors.append((path, exc.strerror or type(exc).__name__))
    if updates:
        with write_lock or nullcontext(), db.session() as session:
            catalogue.save_hashes(session, updates)
            session.commit()
    return result


_worker: tuple[Database, Reader, str, Any] | None = None


def _die_with_parent(parent: int) -> None:
    """Make the kernel kill this worker when the scan's main process dies, even by kill -9
    (otherwise the worker would wait for tasks forever, holding the terminal's pipes)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _init_worker(settings: HashSettings, write_lock: Any, parent: int) -> None:
    global _worker
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pool.terminate() ends us at once
    quiet_library_logs()  # a spawned worker did not run the CLI's set-up
    db = worker_database(settings.url)
    Finalize(db, db.dispose, exitpriority=10)
    _worker = (db, Reader(settings.algorithm, settings.prefix_size, settings.chunk_size),
               settings.tag, write_lock)


def _run(task: Task) -> TaskResult:
    assert _worker is not None, "worker not initialised"
    db, reader, tag, write_lock = _worker
    return hash_task(db, reader, tag, task, write_lock)


def make_tasks(rows: Iterable[tuple[int, str, int, int, int, int]], stage: str,
               max_files: int, max_bytes: int) -> Iterator[Task]:
    """Fold rows (id, path, size, mtime_ns, device, inode), ordered by device and inode,
    into tasks: hard links become one item (read once), tasks are cut by count and bytes."""
    items: list[Item] = []
    nbytes = 0
    current: list[Any] | None = None
    for fid, path, size, mtime_ns, device, inode in rows:
        if current is not None and current[4] == (device, inode):
            current[0].append(fid)
            continue
        if current is not None:
            items.append((tuple(current[0]), current[1], current[2], current[3]))
            nbytes += current[2]
            if len(items) >= max_files or nbytes >= max_bytes:
                yield Task(stage, items)
                items, nbytes = [], 0
        current = [[fid], path, size, mtime_ns, (device, inode)]
    if current is not None:
        items.append((tuple(current[0]), current[1], current[2], current[3]))
    if items:
        yield Task(stage, items)


class Hashers:
    """Runs tasks in a pool of ``processes`` workers, or in this process when it is 1."""

    def __init__(self, db: Database, settings: HashSettings, processes: int,
                 start_method: str | None = None) -> None:
        self.db, self.settings = db, settings
        self.processes = processes
        self.start_method = start_method
        self.pool: ProcessPoolExecutor | None = None
        self.local: tuple[Database, Reader, str] | None = None

    def _start_pool(self) -> ProcessPoolExecutor:
        """Start the workers when the first task arrives (a rescan with nothing to hash
        starts none)."""
        if self.pool is None:
            self.db.engine.dispose()  # no idle pooled connection is inherited by a child
            ctx = multiprocessing.get_context(self.start_method)
            lock = ctx.Lock() if self.db.backend == "sqlite" else None
            self.pool = ProcessPoolExecutor(self.processes, mp_context=ctx,
                                            initializer=_init_worker,
                                            initargs=(self.settings, lock, os.getpid()))
        return self.pool

    def run(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Run tasks, yielding each result as it is done; at most two per worker in flight,
        so candidates stream from the database instead of being loaded all at once."""
        if self.processes == 1:
            if self.local is None:
                s = self.settings
                self.local = (self.db, Reader(s.algorithm, s.prefix_size, s.chunk_size), s.tag)
            db, reader, tag = self.local
            for task in tasks:
                yield hash_task(db, reader, tag, task)
            return
        pending: set[Future[TaskResult]] = set()
        limit = 2 * self.processes
        for task in tasks:
            pending.add(self._start_pool().submit(_run, task))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: let them finish and exit, or kill them at once."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if not terminate:
            pool.shutdown(wait=True)
            return
        # killed workers are noticed by the executor, which then fails what was pending;
        # nothing here waits on a worker that may be stuck on a lost database
        processes = list((pool._processes or {}).values())
        for proc in processes:
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.join(timeout=5)
