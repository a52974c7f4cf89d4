"""The scan, stage by stage: walk + sync -> prefix hashes -> full hashes -> summary.

Each stage has its own progress bar and timing. Everything a stage finishes is committed as
it goes (on SQLite within ``commit_interval``, a second by default), so an interrupted scan
(Ctrl-C, kill -9, a lost database) resumes by running the same command again: unchanged
files are not hashed twice.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from dupfinder.db import candidates, pending, scans
from dupfinder.db.engine import Database
from dupfinder.db.queries import Selection, group_totals
from dupfinder.errors import DatabaseError, UsageError, one_line
from dupfinder.paths import for_message, is_under
from dupfinder.processes import pid_alive
from dupfinder.scan.hashing import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PREFIX_SIZE,
    algorithm_tag,
)
from dupfinder.scan.sync import SyncCounts, sync
from dupfinder.scan.walk import WalkOptions, WalkProblems, normalize_roots, walk
from dupfinder.scan.workers import (
    MAX_PROCESSES,
    Hashers,
    HashSettings,
    TaskResult,
    make_tasks,
    process_limit,
)
from dupfinder.states import ScanStatus, Stage
from dupfinder.units import human_size

FULL_TASK_BYTES = 256 << 20


@dataclass
class ScanOptions:
    """How to scan (walk filters are in ``walk``)."""

    walk: WalkOptions = field(default_factory=WalkOptions)
    algorithm: str = DEFAULT_ALGORITHM
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 1000
    chunk_size: int = DEFAULT_CHUNK_SIZE
    prefix_size: int = DEFAULT_PREFIX_SIZE
    start_method: str | None = None
    progress: bool = True
    # SQLite: the longest a finished hash waits in memory before its commit (the most a
    # killed scan loses); PostgreSQL's workers commit each batch themselves
    commit_interval: float = 1.0


@dataclass
class ScanSummary:
    """What a scan found and did; also recorded in ``scan_metadata``."""

    scan_id: int
    roots: list[str]
    status: ScanStatus = ScanStatus.RUNNING
    sync: SyncCounts = field(default_factory=SyncCounts)
    files_hashed: int = 0
    bytes_hashed: int = 0
    changed_during_read: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    skipped_links: int = 0
    duplicate_groups: int = 0
    files_in_groups: int = 0
    wasted_bytes: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The counts as ``scan_metadata`` columns."""
        return {
            "files_seen": self.sync.seen, "files_new": self.sync.new,
            "files_changed": self.sync.changed, "files_unchanged": self.sync.unchanged,
            "files_removed": self.sync.removed, "files_hashed": self.files_hashed,
            "bytes_hashed": self.bytes_hashed, "errors": len(self.problems),
            "changed_during_read": self.changed_during_read,
            "duplicate_groups": self.duplicate_groups, "wasted_bytes": self.wasted_bytes,
            "files_in_groups": self.files_in_groups,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }


def resolve_roots(paths: list[str]) -> list[str]:
    """Absolute, de-duplicated roots; a path that does not exist is a usage error."""
    if not paths:
        raise UsageError("scan needs at least one PATH")
    for p in paths:
        try:
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode):
                os.scandir(p).close()  # a root we cannot list is an error, not a skip
            elif stat.S_ISREG(st.st_mode):
                os.close(os.open(p, os.O_RDONLY))
            else:
                raise UsageError(f"not a folder or regular file: {for_message(p)}")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if isinstance(exc, FileNotFoundError):
                reason = "broken symbolic link" if os.path.lexists(p) else \
                    "no such file or directory"
            raise UsageError(f"{reason.lower()}: {for_message(p)}") from exc
    return normalize_roots(paths)


MAX_BUFFER = 256 << 20


def check_options(options: ScanOptions) -> None:
    """Reject option values that cannot work, with one clear line.

    Chunk and prefix sizes are capped at 256 MiB: every worker allocates a buffer that large
    up front, so ``--chunk-size 100GiB`` would end in a MemoryError inside the workers, and
    reads beyond a few MiB are no faster anyway.
    """
    if options.algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown algorithm '{options.algorithm}' (choose from {', '.join(ALGORITHMS)})"
        )
    if options.processes < 1:
        raise UsageError(f"-p/--processes must be at least 1, not {options.processes}")
    limit = process_limit()
    if options.processes > limit:  # each worker holds a database connection of its own
        raise UsageError(f"-p/--processes must be at most {limit} (4 per CPU, at most "
                         f"{MAX_PROCESSES}), not {options.processes}")
    if not 0 <= options.commit_interval <= 3600:
        raise UsageError("--commit-interval must be between 0 and 3600 seconds, not "
                         f"{options.commit_interval:g}")
    if options.batch_size < 1:
        raise UsageError(f"-b/--batch-size must be at least 1, not {options.batch_size}")
    if options.chunk_size < 4096:
        raise UsageError("--chunk-size must be at least 4 KiB")
    for option, size in (("--chunk-size", options.chunk_size),
                         ("--prefix-size", options.prefix_size)):
        if size > MAX_BUFFER:
            raise UsageError(f"{option} {human_size(size)} is too large: at most 256 MiB "
                             "(each worker holds a buffer of that size)")
    w = options.walk
    if w.max_size is not None and w.max_size < w.min_size:
        raise UsageError("--max-size is smaller than --min-size")
    if w.max_depth is not None and w.max_depth < 1:
        raise UsageError("--max-depth must be at least 1")


@contextmanager
def _db_errors() -> Iterator[None]:
    """A database failure in the middle of a scan becomes one line; what was committed stays."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"database error during the scan (work committed so far is kept; run the same "
            f"command again to resume): {one_line(exc)}"
        ) from exc


class _Bars:
    """tqdm bars on stderr, silent when stderr is not a terminal or progress is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        try:
            self.sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
        except (OSError, ValueError):
            self.sized = False

    def bar(self, desc: str, total: int | None = None, unit: str = "files") -> tqdm:
        scale = unit == "B"
        # a terminal that reports no width (a bare pty) would get an empty bar: use 80
        return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024,
                    disable=not self.enabled, file=sys.stderr, leave=False,
                    dynamic_ncols=self.sized, ncols=None if self.sized else 80)


def run_scan(db: Database, paths: list[str], host: str, options: ScanOptions,
             log: Callable[[str], None] | None = None) -> ScanSummary:
    """Scan ``paths`` into the catalogue ``db`` as ``host``; returns the summary.

    Raises KeyboardInterrupt (after recording the scan as interrupted) on Ctrl-C.
    """
    check_options(options)
    roots = resolve_roots(paths)
    if db.backend == "sqlite" and db.url.database:
        # the catalogue itself, reached by the path given or through symbolic links
        bases = {os.path.abspath(db.url.database), os.path.realpath(db.url.database)}
        own = frozenset(base + suffix for base in bases
                        for suffix in ("", "-wal", "-shm", "-journal"))
        options = replace(options, walk=replace(options.walk, skip_paths=own))
    tag = algorithm_tag(options.algorithm, options.prefix_size)
    bars = _Bars(options.progress)
    with _db_errors(), db.session() as session:
        stale = [run.id for run in scans.running_scans(session, host)
                 if run.pid is None or not pid_alive(run.pid)]
        scans.mark_interrupted(session, stale)
        scan_id, started = scans.start_scan(session, host, roots, tag,
                                            _options_record(options), os.getpid())
        session.commit()
        orphaned = pending.orphans(session)
    with _db_errors():
        for earlier in orphaned:  # results a killed scan committed and never merged
            pending.merge(db, earlier)
    summary = ScanSummary(scan_id=scan_id, roots=roots)
    try:
        with _db_errors():
            _walk_and_sync(db, host, roots, options, summary, bars, started)
            settled = _settled(db, host, roots, tag, options, summary)
            if settled is None:
                settings = HashSettings(db.url_string(), scan_id, options.algorithm, tag,
                                        options.prefix_size, options.chunk_size,
                                        workers_write=db.backend != "sqlite")
                _HashStages(db, host, tag, options, summary, bars, settings).run()
            with db.session() as session:
                t = time.perf_counter()
                totals = None
                if settled is not None and not summary.sync.removed:
                    totals = scans.unchanged_totals(session, settled, roots, scan_id)
                if totals is None:
                    totals = group_totals(session,
                                          Selection(host, roots, options.walk.min_size))
                (summary.duplicate_groups, summary.files_in_groups,
                 summary.wasted_bytes) = totals
                summary.stage_seconds["groups"] = time.perf_counter() - t
                summary.status = ScanStatus.COMPLETE
                scans.finish_scan(session, scan_id, ScanStatus.COMPLETE, **summary.record())
                session.commit()
    except BaseException as exc:
        summary.status = (ScanStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt)
                          else ScanStatus.FAILED)
        _record_end(db, summary, str(exc) if summary.status == ScanStatus.FAILED else None)
        raise
    if log:
        for path, reason in summary.problems:
            log(f"{path}: {reason}")
    return summary


def _settled(db: Database, host: str, roots: list[str], tag: str, options: ScanOptions,
             summary: ScanSummary) -> scans.Settled | None:
    """The earlier scan that leaves a rescan nothing to hash, if there is one: the rescan
    found nothing new or changed, after a clean scan of the same roots with nothing
    written since. The candidate queries are then skipped."""
    if summary.sync.new or summary.sync.changed or summary.problems:
        return None
    with db.session() as session:
        settled = scans.settled_scan(session, host, roots, tag, options.walk.min_size)
    if settled is not None:
        summary.stage_seconds["prefix"] = summary.stage_seconds["full"] = 0.0
    return settled


def _options_record(options: ScanOptions) -> dict[str, Any]:
    w = options.walk
    return {
        "algorithm": options.algorithm, "processes": options.processes,
        "batch_size": options.batch_size, "chunk_size": options.chunk_size,
        "commit_interval": options.commit_interval,
        "prefix_size": options.prefix_size, "follow_links": w.follow_links,
        "one_file_system": w.one_file_system, "max_depth": w.max_depth,
        "min_size": w.min_size, "max_size": w.max_size, "include": list(w.include),
        "exclude": list(w.exclude), "hidden": w.hidden, "ignore_files": w.ignore_files,
        "include_trash": w.include_trash,
    }


def _record_end(db: Database, summary: ScanSummary, message: str | None) -> None:
    """Best effort: mark the scan record interrupted or failed (the database may be gone)."""
    try:
        with db.session() as session:
            scans.finish_scan(session, summary.scan_id, summary.status,
                              message=message, **summary.record())
            session.commit()
    except (SQLAlchemyError, OSError):
        pass


def _walk_and_sync(db: Database, host: str, roots: list[str], options: ScanOptions,
                   summary: ScanSummary, bars: _Bars, now: datetime) -> None:
    t = time.perf_counter()
    problems = WalkProblems()
    with bars.bar("walk") as walked, bars.bar("sync", unit="rows") as written:
        def entries() -> Iterator[Any]:
            for entry in walk(roots, options.walk, problems):
                walked.update()
                yield entry

        summary.sync = sync(db, host, roots, entries(), summary.scan_id, now,
                            options.batch_size, lambda: problems.unreadable,
                            progress=written.update)
    summary.problems.extend(problems.errors)
    summary.skipped_links = problems.skipped_links
    summary.stage_seconds["walk+sync"] = time.perf_counter() - t


class _HashStages:
    """The prefix stage then the full stage, sharing one pool."""

    def __init__(self, db: Database, host: str, tag: str, options: ScanOptions,
                 summary: ScanSummary, bars: _Bars, settings: HashSettings) -> None:
        self.db, self.host, self.tag, self.options = db, host, tag, options
        self.summary, self.bars, self.settings = summary, bars, settings
        # files the prefix stage read in part: id -> bytes read (the full stage reads them
        # again, and each file is counted once)
        self.partly_read: dict[int, int] = {}

    def run(self) -> None:
        opts = self.options
        hashers = Hashers(self.db, self.settings, opts.processes, opts.start_method)
        try:
            self._stage(hashers, Stage.PREFIX, candidates.prefix_candidates(
                self.host, self.tag, opts.walk.min_size))
            self._stage(hashers, Stage.FULL, candidates.full_candidates(self.host, self.tag))
        except BaseException:
            hashers.close(terminate=True)
            raise
        hashers.close()

    def _stage(self, hashers: Hashers, stage: Stage, stmt: Any) -> None:
        t = time.perf_counter()
        opts = self.options
        by_bytes = stage == Stage.FULL
        writing = (nullcontext(None) if self.settings.workers_write
                   else pending.PendingWriter(self.db, self.summary.scan_id,
                                              opts.commit_interval))
        with writing as writer, candidates.StagedCandidates(self.db, stmt) as staged:
            if staged.files:
                total = staged.bytes if by_bytes else staged.files
                max_bytes = FULL_TASK_BYTES if by_bytes else 1 << 62
                with self.bars.bar(f"{stage} hash", total, "B" if by_bytes else "files") as bar:
                    tasks = make_tasks(staged, stage, opts.batch_size, max_bytes)
                    try:
                        for result in hashers.run(tasks):
                            if writer is not None and result.updates is not None:
                                writer.add(result.updates)
                            self._add(result, stage)
                            bar.update(result.bytes_read if by_bytes else result.files
                                       + result.changed + len(result.errors))
                    except KeyboardInterrupt:
                        if writer is not None:  # keep what finished before Ctrl-C
                            writer.flush()
                        raise
            if writer is not None:
                writer.flush()
        pending.merge(self.db, self.summary.scan_id)
        self.summary.stage_seconds[stage] = time.perf_counter() - t

    def _add(self, result: TaskResult, stage: Stage) -> None:
        s = self.summary
        s.files_hashed += result.files
        s.bytes_hashed += result.bytes_read
        if stage == Stage.PREFIX:
            self.partly_read.update(result.read)
        else:
            for fid, _ in result.read:
                earlier = self.partly_read.pop(fid, None)
                if earlier is not None:  # read in the prefix stage too: count it once
                    s.files_hashed -= 1
                    s.bytes_hashed -= earlier
        s.changed_during_read += result.changed
        # a file outside this scan's roots (catalogued by another scan, read to complete a
        # group) is that scan's business: its problems are not this scan's errors
        s.problems.extend(e for e in result.errors if any(is_under(e[0], r) for r in s.roots))
