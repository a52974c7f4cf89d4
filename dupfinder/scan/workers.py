"""Hashing tasks and the process pool that runs them.

On PostgreSQL each worker process opens its own engine and session from the database URL
(never one inherited through fork), hashes a task's files and appends the results to the
pending table (:mod:`dupfinder.db.pending`) in one COPY before taking the next task, so the
workers write in parallel and whatever finished is committed if the scan dies. SQLite admits
one writer at a time: there the workers only hash and send their results back, and the
scan's own process appends them, at least once a second
(:class:`dupfinder.db.pending.PendingWriter`). Works with the
``fork``, ``spawn`` and ``forkserver`` start methods.

Any worker failure (its set-up, a task, the process itself) ends the scan with one error
line: the remaining workers are killed at once, never waited for, so a scan cannot hang on
a pool that lost a worker or on workers stuck on a database that refuses them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import process as _futures_process
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dupfinder.db import pending
from dupfinder.db.engine import Database, worker_database
from dupfinder.errors import DatabaseError, DupfinderError, one_line, quiet_library_logs
from dupfinder.scan.collisions import Want
from dupfinder.scan.hashing import FileChanged, Reader
from dupfinder.scan.orphans import die_with_parent
from dupfinder.states import Stage

MAX_PROCESSES = 64


def process_limit() -> int:
    """The most hashing processes a scan may use: 4 per CPU, at most 64. Hashing is bound
    by the disks well before that, and every worker holds its own database connection, so
    a larger pool only exhausts the server's connection slots."""
    return min(4 * (os.cpu_count() or 1), MAX_PROCESSES)


@dataclass
class Task:
    """A batch of files for one stage (each item one inode: :class:`Want`)."""

    stage: Stage
    items: list[Want]


@dataclass
class TaskResult:
    """What a task did."""

    files: int = 0
    bytes_read: int = 0
    changed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] | None = None  # pending.Result rows not written (SQLite)
    # the first catalogue id of each file read: in the prefix stage only files read in
    # part (the full stage may read them again), in the full stage every one, so that the
    # scan counts each file and its bytes once
    read: list[tuple[int, int]] = field(default_factory=list)  # (id, bytes read)
    # prefix stage: (index in the task, prefix hash) of each file read in part, which the
    # scan may now send to the full stage
    partial: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class HashSettings:
    """Everything a worker needs to hash; picklable for ``spawn``."""

    url: str
    scan_id: int
    algorithm: str
    tag: str
    prefix_size: int
    chunk_size: int
    workers_write: bool = True  # False: results go back to the scan's one writer


def hash_task(db: Database | None, reader: Reader, tag: str, task: Task,
              scan_id: int = 0) -> TaskResult:
    """Hash a task's files; returns the counts. With a database the results are appended to
    the pending table in one statement and committed; without (SQLite's workers) they are
    returned in ``updates`` for the scan's one writer."""
    result = TaskResult()
    prefix = task.stage == Stage.PREFIX
    # pending.Result's fields, as plain tuples: they cross to the scan's process by the
    # hundred thousand, and a named tuple pickles as its class and its arguments
    rows: list[tuple[Any, ...]] = []
    for n, item in enumerate(task.items):
        try:
            if prefix:
                digest, full, nread = reader.prefix(item.path, item.size, item.mtime_ns)
                rows.extend((i, item.size, item.mtime_ns, item.inode, digest, full, tag)
                            for i in item.ids)
                result.bytes_read += nread
                if full is None:
                    result.read.append((item.ids[0], nread))
                    result.partial.append((n, digest))
            else:
                digest = reader.full(item.path, item.size, item.mtime_ns)
                rows.extend((i, item.size, item.mtime_ns, item.inode, item.prefix, digest, tag)
                            for i in item.ids)
                result.bytes_read += item.size
                result.read.append((item.ids[0], item.size))
            result.files += 1
        except FileChanged:
            result.changed += 1
        except OSError as exc:
            result.errors.append((item.path, exc.strerror or type(exc).__name__))
    if db is None:
        result.updates = rows
    elif rows:
        with db.session() as session:
            pending.append(session, scan_id, rows)
            session.commit()
    return result


class TaskFailed(Exception):
    """A worker's failure, sent back to the scan as plain strings: ``kind`` is
    ``"database"`` or ``"error"``, ``message`` one line. The original exception is not sent,
    as a driver's exception may not survive pickling and its traceback must not reach the
    user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    @classmethod
    def of(cls, exc: BaseException) -> TaskFailed:
        """The failure describing ``exc``."""
        if isinstance(exc, SQLAlchemyError):
            return cls("database", one_line(exc))
        if isinstance(exc, DupfinderError):
            return cls("database" if isinstance(exc, DatabaseError) else "error", str(exc))
        return cls("error", f"{type(exc).__name__}: {one_line(exc)}")


_worker: tuple[Database | None, Reader, str, int] | None = None
_init_failure: TaskFailed | None = None

def _init_worker(settings: HashSettings, scan_pid: int) -> None:
    """Set up a worker. A failure here is kept and raised by the worker's first task rather
    than raised: an initializer that raises makes the executor log a traceback on the
    user's terminal and report only "a process terminated abruptly"."""
    global _worker, _init_failure
    die_with_parent(scan_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # pool.terminate() ends us at once
    try:
        quiet_library_logs()  # a spawned worker did not run the CLI's set-up
        db = worker_database(settings.url) if settings.workers_write else None
        if db is not None:
            Finalize(db, db.dispose, exitpriority=10)
        _worker = (db, Reader(settings.algorithm, settings.prefix_size, settings.chunk_size),
                   settings.tag, settings.scan_id)
    except Exception as exc:  # noqa: BLE001 - reported by the first task, as one line
        _init_failure = TaskFailed.of(exc)


def _run(task: Task) -> TaskResult:
    """Run one task in a worker; any failure goes back as a :class:`TaskFailed`."""
    if _init_failure is not None:
        raise _init_failure
    assert _worker is not None, "worker not initialised"
    db, reader, tag, scan_id = _worker
    try:
        return hash_task(db, reader, tag, task, scan_id)
    except Exception as exc:  # noqa: BLE001 - reported to the scan as one line
        raise TaskFailed.of(exc) from None


class Hashers:
    """Runs tasks in a pool of ``processes`` workers, or in this process when it is 1.

    Work is pushed as it is found (:meth:`submit`) and results are taken as they are done
    (:meth:`done`, without waiting; :meth:`wait`, for at least one): the scan walks while
    the workers hash. At most two tasks per worker are in flight; a submit beyond that
    waits for one to finish, so work never piles up in memory."""

    def __init__(self, db: Database, settings: HashSettings, processes: int,
                 start_method: str | None = None) -> None:
        self.db, self.settings = db, settings
        self.processes = processes
        self.start_method = start_method
        self.pool: ProcessPoolExecutor | None = None
        self.local: tuple[Database | None, Reader, str, int] | None = None
        self.running: dict[Future[TaskResult], Task] = {}
        self.finished: list[tuple[Task, TaskResult]] = []

    def _start_pool(self) -> ProcessPoolExecutor:
        """Start the workers when the first task arrives (a rescan with nothing to hash
        starts none)."""
        if self.pool is None:
            self.db.engine.dispose()  # no idle pooled connection is inherited by a child
            ctx = multiprocessing.get_context(self.start_method)
            self.pool = ProcessPoolExecutor(self.processes, mp_context=ctx,
                                            initializer=_init_worker,
                                            initargs=(self.settings, os.getpid()))
        return self.pool

    @property
    def busy(self) -> bool:
        """Whether tasks are still in flight."""
        return bool(self.running)

    def submit(self, task: Task) -> None:
        """Start a task (at once in this process when the pool has one worker)."""
        if self.processes == 1:
            if self.local is None:
                s = self.settings
                self.local = (self.db if s.workers_write else None,
                              Reader(s.algorithm, s.prefix_size, s.chunk_size), s.tag,
                              s.scan_id)
            db, reader, tag, scan_id = self.local
            self.finished.append((task, hash_task(db, reader, tag, task, scan_id)))
            return
        while len(self.running) >= 2 * self.processes:
            self._collect(wait_for_one=True)
        try:
            self.running[self._start_pool().submit(_run, task)] = task
        except BrokenProcessPool as exc:
            self._fail(exc)

    def done(self) -> list[tuple[Task, TaskResult]]:
        """The tasks finished since the last call, without waiting."""
        if self.running:
            self._collect(wait_for_one=False)
        out, self.finished = self.finished, []
        return out

    def wait(self) -> list[tuple[Task, TaskResult]]:
        """At least one finished task (if any is in flight)."""
        if self.running and not self.finished:
            self._collect(wait_for_one=True)
        return self.done()

    def _collect(self, wait_for_one: bool) -> None:
        done, _ = wait(list(self.running), timeout=None if wait_for_one else 0,
                       return_when=FIRST_COMPLETED)
        try:
            results = _results(done)
        except (TaskFailed, BrokenProcessPool) as exc:
            self._fail(exc)
        for future, result in zip(done, results, strict=True):
            self.finished.append((self.running.pop(future), result))

    def _fail(self, exc: BaseException) -> None:
        processes = list((self.pool and self.pool._processes or {}).values())
        self.close(terminate=True)
        raise _scan_error(exc, processes) from None

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: let them finish and exit, or kill them at once."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if not terminate:
            pool.shutdown(wait=True)
            return
        # killed workers are noticed by the executor, which then fails what was pending;
        # nothing here waits long on a worker that may be stuck on a lost database
        processes = list((pool._processes or {}).values())
        for proc in processes:
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 5
        for proc in processes:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        # the executor's thread is joined, without a timeout, when the interpreter exits:
        # let it finish now that its workers are gone, so the exit cannot hang on it
        manager = getattr(pool, "_executor_manager_thread", None)
        if isinstance(manager, threading.Thread) and manager.is_alive():
            manager.join(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(manager, threading.Thread) and manager.is_alive():
            # still closing its pipes: the interpreter's exit hook would write to one it
            # is closing (EBADF, a traceback after our one-line error); it needs no wakeup
            _futures_process._threads_wakeups.pop(manager, None)


def _results(done: set[Future[TaskResult]] | list[Future[TaskResult]]) -> list[TaskResult]:
    """The results of finished tasks; a task's own failure is raised in preference to the
    "pool broken" error that the other tasks then get."""
    failures = [exc for f in done if (exc := f.exception()) is not None]
    failures.sort(key=lambda exc: not isinstance(exc, TaskFailed))
    if failures:
        raise failures[0]
    return [f.result() for f in done]


_RESUME = "work committed so far is kept; run the same command again to resume"


def _scan_error(exc: BaseException, processes: list[Any]) -> DupfinderError:
    """One line for the user about a failed worker."""
    if isinstance(exc, TaskFailed):
        if exc.kind == "database":
            return DatabaseError(f"database error in a hashing process ({_RESUME}): "
                                 f"{exc.message}")
        return DupfinderError(f"a hashing process failed ({_RESUME}): {exc.message}")
    how = ""
    for proc in processes:  # the first worker that ended on its own says how
        code = proc.exitcode
        if code is None or code == -signal.SIGTERM:  # alive, or ended by the executor
            continue
        if code < 0:
            try:
                how = f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                how = f" (killed by signal {-code})"
        else:
            how = f" (exit status {code})"
        break
    return DupfinderError(f"a hashing process ended unexpectedly{how}; {_RESUME}")
