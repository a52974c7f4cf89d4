"""The scan, stage by stage: walk + sync (hashing alongside) -> the last hashes -> merge ->
groups.

    walk (catalogue order) ──> sync against the rows under the roots ──> rows written
              │                                   │ every walked file, with its id
              └────────── collisions (sizes, prefixes) ──> prefix / full work ──> workers
                                                               results ──> pending table
    merge (pending -> rows, contents) ──> group totals ──> scan record

The walk and the hashing overlap: a file is sent to the workers the moment another inode
shares its size. The first scan into an empty catalogue is a cold load: the rows' secondary
indexes are dropped for it and built once at the end, sorted, with the contents' counts
taken in one pass (a killed load gets them back from the next command that opens the
catalogue). Everything a stage finishes is committed as it goes (on SQLite within
``commit_interval``, a second by default), so an interrupted scan (Ctrl-C, kill -9, a lost
database) resumes by running the same command again: rows written stay, pending results are
merged first, and nothing committed is hashed twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dupfinder.db import pending, rows, scans, schema
from dupfinder.db.engine import Database
from dupfinder.db.groups import group_totals
from dupfinder.db.locks import host_lock
from dupfinder.db.selection import Selection
from dupfinder.errors import DatabaseError, one_line
from dupfinder.paths import is_under
from dupfinder.processes import pid_alive
from dupfinder.reporting import SILENT, Reporter
from dupfinder.scan.collisions import Collisions, Want
from dupfinder.scan.hashing import algorithm_tag, whole_limit
from dupfinder.scan.options import Roots, ScanOptions, resolve_roots
from dupfinder.scan.scope import ScopeWalk
from dupfinder.scan.sync import Sync, SyncCounts, seen_of
from dupfinder.scan.walk import WalkProblems, walk
from dupfinder.scan.workers import Hashers, HashSettings, Task, TaskResult
from dupfinder.states import ScanStatus, Stage

FULL_TASK_BYTES = 256 << 20

__all__ = ["Roots", "ScanOptions", "ScanSummary", "resolve_roots", "run_scan", "scan_scope"]


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


def run_scan(db: Database, roots: Roots, host: str, options: ScanOptions,
             reporter: Reporter = SILENT) -> ScanSummary:
    """Scan ``roots`` into the catalogue ``db`` as ``host``; returns the summary (the files
    that could not be read in its ``problems``); ``reporter`` gets a bar per stage.

    Raises KeyboardInterrupt (after recording the scan as interrupted) on Ctrl-C. Holds the
    host's lock shared for the whole scan, so that no merge into the host runs meanwhile.
    """
    with _db_errors(), host_lock(db, host, exclusive=False):
        return _locked_scan(db, list(roots.paths), host, options, reporter=reporter)


def scan_scope(db: Database, roots: list[str], scope: list[str], host: str,
               options: ScanOptions) -> ScanSummary:
    """Bring the catalogue up to date at and below the paths ``scope`` (under ``roots``,
    as :func:`resolve_roots` gave them), with the filters of a scan of ``roots``: the
    scan of what ``dupfinder watch`` saw change. Its record names ``scope`` as its roots
    (what it looked at); paths that are gone lose their rows. It shows no bars: a batch
    is over in a moment."""
    with _db_errors(), host_lock(db, host, exclusive=False):
        return _locked_scan(db, roots, host, options, scope=scope)


def _locked_scan(db: Database, roots: list[str], host: str, options: ScanOptions,
                 scope: list[str] | None = None, reporter: Reporter = SILENT) -> ScanSummary:
    own = db.own_files()
    if own:
        options = replace(options, walk=replace(options.walk, skip_paths=own))
    tag = algorithm_tag(options.algorithm, options.prefix_size)
    with _db_errors(), db.session() as session:
        stale = [run.id for run in scans.running_scans(session, host)
                 if run.pid is None or not pid_alive(run.pid)]
        scans.mark_interrupted(session, stale)
        looked = scope if scope is not None else roots
        scan_id, started = scans.start_scan(session, host, looked, tag,
                                            _options_record(options), os.getpid())
        session.commit()
        orphaned = pending.orphans(session)
        settled = bulk = None
        if scope is None:
            settled = scans.settled_scan(session, host, roots, tag, options.walk.min_size)
            # the first scan into an empty catalogue, with no other scan at work: a cold
            # load
            bulk = not orphaned and scans.catalogue_empty(session) and scans.alone(
                session, scan_id)
    summary = ScanSummary(scan_id=scan_id, roots=looked)
    try:
        with _db_errors():
            for earlier in orphaned:  # results a killed scan committed and never merged
                pending.merge(db, earlier)
            _Scan(db, host, roots, tag, options, summary, started, settled, bool(bulk),
                  scope, reporter).run()
            t = time.perf_counter()
            with db.session() as session:
                totals = None
                c = summary.sync
                if settled is not None and not (c.new or c.changed or c.removed
                                                or summary.problems):
                    totals = scans.unchanged_totals(session, settled, roots, scan_id)
                if totals is None:
                    sel = Selection(host, looked, options.walk.min_size)
                    if not rows.outside_exists(session.connection(), host, looked):
                        # every row is this host's under these roots: the kept counts of
                        # the whole catalogue are the answer (a seek, not a recount)
                        sel = Selection(None, None, options.walk.min_size)
                    totals = group_totals(session, sel)
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
    return summary


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


class _Scan:
    """One scan's walk, sync and hashing, which overlap, then the merge."""

    def __init__(self, db: Database, host: str, roots: list[str], tag: str,
                 options: ScanOptions, summary: ScanSummary, started: Any,
                 settled: scans.Settled | None, bulk: bool = False,
                 scope: list[str] | None = None, bars: Reporter = SILENT) -> None:
        self.db, self.host, self.roots, self.tag = db, host, roots, tag
        self.scope = scope  # only these paths (under the roots) are walked
        self.options, self.summary, self.started = options, summary, started
        self.settled, self.bulk = settled, bulk
        self.bars = bars
        self.settings = HashSettings(db.url_string(), summary.scan_id, options.algorithm, tag,
                                     options.prefix_size, options.chunk_size,
                                     workers_write=db.backend != "sqlite")
        # files the prefix stage read in part: id -> bytes read (the full stage reads them
        # again, and each file is counted once)
        self.partly_read: dict[int, int] = {}
        self.prefix_queue: list[Want] = []
        self.full_queue: list[Want] = []
        self.full_bytes = 0

    def run(self) -> None:
        opts, s = self.options, self.summary
        hashers = Hashers(self.db, self.settings, opts.processes, opts.start_method)
        self.writer: pending.PendingWriter | None = None
        if self.bulk:  # rows and hashes first, their secondary indexes after (see schema)
            with self.db.engine.begin() as conn:
                schema.suspend_indexes(conn)
        writing = (nullcontext(None) if self.settings.workers_write
                   else pending.PendingWriter(self.db, s.scan_id, opts.commit_interval))
        try:
            with writing as writer, self.db.engine.connect() as conn, \
                    self.bars.bar("walk") as self.walked, \
                    self.bars.bar("prefix hash", position=1) as self.prefix_bar, \
                    self.bars.bar("full hash", unit="B", position=2) as self.full_bar:
                self.writer, self.hashers = writer, hashers
                self._walk_and_sync(conn)
                t = time.perf_counter()
                self._hash_the_rest()
                s.stage_seconds["hash"] = time.perf_counter() - t
                if writer is not None:
                    writer.flush()
        except KeyboardInterrupt:
            if self.writer is not None:  # keep what finished before Ctrl-C
                self.writer.flush()
            hashers.close(terminate=True)
            raise
        except BaseException:
            hashers.close(terminate=True)
            raise
        hashers.close()
        t = time.perf_counter()
        pending.merge(self.db, s.scan_id, recount=not self.bulk)
        if self.bulk:  # the indexes, then the contents' counts, each built in one pass
            with self.db.engine.connect() as conn:
                schema.finish_cold_load(conn, stepwise=True)
                conn.commit()
        s.stage_seconds["merge"] = time.perf_counter() - t

    # ------------------------------------------------------------------ walk + sync

    def _walk_and_sync(self, conn: Any) -> None:
        t = time.perf_counter()
        s, opts = self.summary, self.options
        lookup = None
        looked = self.scope if self.scope is not None else self.roots
        if rows.outside_exists(conn, self.host, looked):
            def lookup(sizes: list[int]) -> list[rows.SizeRow]:
                return rows.rows_of_sizes(conn, sizes)
        self.collisions = Collisions(self.host, self.tag,
                                     whole_limit(opts.prefix_size, opts.chunk_size),
                                     looked, lookup, defer=self.settled is not None)
        conn.commit()
        problems = WalkProblems()

        def written(pairs: list[tuple[int, rows.NewRow]]) -> None:
            for seen in seen_of(pairs):
                self.collisions.see(seen)

        writer = rows.RowWriter(conn, self.host, s.scan_id, self.started, written,
                                interval=opts.commit_interval or 1.0)
        sync = Sync(rows.rows_under(conn, self.host, looked, s.scan_id,
                                    in_key_order=self.scope is not None), writer,
                    self.collisions.see)
        found = (walk(self.roots, opts.walk, problems) if self.scope is None
                 else ScopeWalk(self.roots, opts.walk, problems).walk(self.scope))
        for n, entry in enumerate(found, 1):
            sync.feed(entry)
            if n % 256 == 0:
                self.walked.update(256)
                self._dispatch(final=False)
                self._take(self.hashers.done())
        s.sync = sync.finish()
        conn.commit()
        s.problems.extend(problems.errors)
        s.skipped_links = problems.skipped_links
        self.collisions.end_walk()
        s.stage_seconds["walk+sync"] = time.perf_counter() - t

    # ------------------------------------------------------------------ hashing

    def _dispatch(self, final: bool) -> None:
        """Send the work found so far to the workers, in tasks of ``batch_size`` files (full
        tasks also cut at ``FULL_TASK_BYTES``); ``final`` sends the last short ones too."""
        batch = self.options.batch_size
        self.prefix_queue.extend(self.collisions.take_prefix_work())
        while len(self.prefix_queue) >= batch or (final and self.prefix_queue):
            chunk, self.prefix_queue = self.prefix_queue[:batch], self.prefix_queue[batch:]
            self.hashers.submit(Task(Stage.PREFIX, chunk))
        for want in self.collisions.take_full_work():
            self.full_queue.append(want)
            self.full_bytes += want.size
            if len(self.full_queue) >= batch or self.full_bytes >= FULL_TASK_BYTES:
                self._submit_full()
        if final and self.full_queue:
            self._submit_full()

    def _submit_full(self) -> None:
        chunk, self.full_queue, self.full_bytes = self.full_queue, [], 0
        self.hashers.submit(Task(Stage.FULL, chunk))

    def _hash_the_rest(self) -> None:
        """After the walk: hash what is left, including the full work that the last prefix
        results find, until nothing is queued, in flight or unread."""
        while True:
            self._dispatch(final=True)
            finished = self.hashers.done()
            if not finished and self.hashers.busy:
                finished = self.hashers.wait()
            if not finished:
                return
            self._take(finished)

    def _take(self, finished: list[tuple[Task, TaskResult]]) -> None:
        for task, result in finished:
            if self.writer is not None and result.updates is not None:
                self.writer.add(result.updates)
            self._count(task, result)
            if task.stage == Stage.PREFIX:
                for index, prefix in result.partial:
                    self.collisions.prefix_done(task.items[index], prefix, None)
            if task.stage == Stage.PREFIX:
                self.prefix_bar.update(result.files + result.changed + len(result.errors))
            else:
                self.full_bar.update(result.bytes_read)

    def _count(self, task: Task, result: TaskResult) -> None:
        s = self.summary
        s.files_hashed += result.files
        s.bytes_hashed += result.bytes_read
        s.changed_during_read += result.changed
        if task.stage == Stage.PREFIX:
            self.partly_read.update(result.read)
        else:
            for fid, _ in result.read:
                earlier = self.partly_read.pop(fid, None)
                if earlier is not None:  # read in the prefix stage too: count it once
                    s.files_hashed -= 1
                    s.bytes_hashed -= earlier
        # a file outside this scan's roots (catalogued by another scan, read to complete a
        # group) is that scan's business: its problems are not this scan's errors
        s.problems.extend(e for e in result.errors if any(is_under(e[0], r) for r in s.roots))
