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

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from typing import Any, NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from dupfinder.db import pending
from dupfinder.db.candidates import Candidate
from dupfinder.db.engine import Database, worker_database
from dupfinder.errors import DatabaseError, DupfinderError, one_line, quiet_library_logs
from dupfinder.scan.hashing import FileChanged, Reader
from dupfinder.states import Stage


class Item(NamedTuple):
    """One inode to hash: the catalogue ids of its paths (hard links), one path to read,
    and the metadata the hash is valid for."""

    ids: tuple[int, ...]
    path: str
    size: int
    mtime_ns: int
    inode: int


MAX_PROCESSES = 64


def process_limit() -> int:
    """The most hashing processes a scan may use: 4 per CPU, at most 64. Hashing is bound
    by the disks well before that, and every worker holds its own database connection, so
    a larger pool only exhausts the server's connection slots."""
    return min(4 * (os.cpu_count() or 1), MAX_PROCESSES)


@dataclass
class Task:
    """A batch of files for one stage."""

    stage: Stage
    items: list[Item]


@dataclass
class TaskResult:
    """What a task did."""

    files: int = 0
    bytes_read: int = 0
    changed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    updates: list[pending.Result] | None = None  # results not written yet (SQLite)
    # the first catalogue id of each file read: in the prefix stage only files read in
    # part (the full stage may read them again), in the full stage every one, so that the
    # scan counts each file and its bytes once
    read: list[tuple[int, int]] = field(default_factory=list)  # (id, bytes read)


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
    rows: list[pending.Result] = []
    for item in task.items:
        try:
            if prefix:
                digest, full, nread = reader.prefix(item.path, item.size, item.mtime_ns)
                rows.extend(pending.Result(i, item.size, item.mtime_ns, item.inode, digest,
                                           full, tag) for i in item.ids)
                result.bytes_read += nread
                if full is None:
                    result.read.append((item.ids[0], nread))
            else:
                digest = reader.full(item.path, item.size, item.mtime_ns)
                rows.extend(pending.Result(i, item.size, item.mtime_ns, item.inode, None,
                                           digest, tag) for i in item.ids)
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

_PR_SET_PDEATHSIG = 1


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (Linux), or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent(scan_pid: int) -> None:
    """Make sure this worker dies when the scan's main process dies, even by kill -9
    (otherwise it would wait for tasks forever, holding the terminal's pipes).

    On Linux, PR_SET_PDEATHSIG makes the kernel kill us when our *direct* parent dies. With
    ``fork`` and ``spawn`` that parent is the scan process itself; with ``forkserver`` it is
    the fork server, which the scan started and which exits as soon as the scan dies (its
    end of the server's "alive" pipe closes), so the signal reaches us through it. The
    parent may die before prctl() takes effect; we then have been re-parented to a reaper,
    which is neither the scan nor a child of it, and we leave at once. Elsewhere a watchdog
    thread polls the parent instead."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
        if parent != scan_pid and _parent_of(parent) != scan_pid:
            os._exit(1)  # re-parented: neither the scan nor the fork server it started
        return
    threading.Thread(target=_watch_scan, args=(scan_pid, parent), daemon=True,
                     name="dupfinder-watchdog").start()


def _watch_scan(scan_pid: int, parent: int) -> None:
    """Exit as soon as our parent changes (it died: the scan, or the fork server that dies
    with the scan) or the scan's pid is gone: the fallback where prctl does not exist."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        try:
            os.kill(scan_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass
        time.sleep(0.5)


def _init_worker(settings: HashSettings, scan_pid: int) -> None:
    """Set up a worker. A failure here is kept and raised by the worker's first task rather
    than raised: an initializer that raises makes the executor log a traceback on the
    user's terminal and report only "a process terminated abruptly"."""
    global _worker, _init_failure
    _die_with_parent(scan_pid)
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


def make_tasks(rows: Iterable[Candidate], stage: Stage, max_files: int, max_bytes: int
               ) -> Iterator[Task]:
    """Fold candidates, ordered by device and inode, into tasks: hard links become one item
    (read once), tasks are cut by count and bytes."""
    items: list[Item] = []
    nbytes = 0
    first: Candidate | None = None
    ids: list[int] = []
    for row in rows:
        if first is not None and (first.device, first.inode) == (row.device, row.inode):
            ids.append(row.id)
            continue
        if first is not None:
            items.append(Item(tuple(ids), first.path, first.size, first.mtime_ns, first.inode))
            nbytes += first.size
            if len(items) >= max_files or nbytes >= max_bytes:
                yield Task(stage, items)
                items, nbytes = [], 0
        first, ids = row, [row.id]
    if first is not None:
        items.append(Item(tuple(ids), first.path, first.size, first.mtime_ns, first.inode))
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
        self.local: tuple[Database | None, Reader, str, int] | None = None

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

    def run(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Run tasks, yielding each result as it is done; at most two per worker in flight,
        so candidates stream from the database instead of being loaded all at once."""
        if self.processes == 1:
            if self.local is None:
                s = self.settings
                self.local = (self.db if s.workers_write else None,
                              Reader(s.algorithm, s.prefix_size, s.chunk_size), s.tag,
                              s.scan_id)
            db, reader, tag, scan_id = self.local
            for task in tasks:
                yield hash_task(db, reader, tag, task, scan_id)
            return
        pending: set[Future[TaskResult]] = set()
        limit = 2 * self.processes
        try:
            for task in tasks:
                pending.add(self._start_pool().submit(_run, task))
                if len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from _results(done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from _results(done)
        except (TaskFailed, BrokenProcessPool) as exc:
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


def _results(done: set[Future[TaskResult]]) -> list[TaskResult]:
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
