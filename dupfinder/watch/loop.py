"""``dupfinder watch``: the initial scan, then the catalogue kept current from inotify.

The watches go in before the initial scan, so that nothing changed while it runs is
missed (what it has seen already is looked at once more, which costs a stat). Then
changes wait in :class:`~dupfinder.watch.changes.Pending` until their writers are done and
are written in batches, each an ordinary scan of the changed paths
(:func:`~dupfinder.scan.pipeline.scan_scope`): the same filters, hard links, staged hashing
and locks as a scan, a scan record of its own, and a killed watch leaves what a killed
scan leaves. A rename moves the rows in one statement (:func:`~dupfinder.db.live.move_rows`)
when no path filter could select the new name differently from the old one; otherwise both
names are scanned. Nothing polls: with nothing pending the loop blocks in the kernel.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from dupfinder.db import live
from dupfinder.db.engine import Database
from dupfinder.db.locks import action_lock, action_lock_file, host_lock
from dupfinder.errors import SafetyError, UsageError
from dupfinder.paths import for_message, in_trash, is_under
from dupfinder.reporting import SILENT, Reporter
from dupfinder.scan.pipeline import Roots, ScanOptions, run_scan, scan_scope
from dupfinder.scan.scope import ScopeWalk, compact_scope, root_of
from dupfinder.scan.walk import WalkProblems
from dupfinder.watch.changes import Batch, Pending
from dupfinder.watch.events import Said, WatchEvent
from dupfinder.watch.inotify import Change, Kind, Watches, watch_limit
from dupfinder.watch.mounts import network_paths

IGNORE_FILES = frozenset({".gitignore", ".ignore", ".dupfinderignore"})
# a batch of at most this many files (and no folder) is hashed in the watch's own process:
# starting a pool costs more than it saves there
SMALL_BATCH = 1000
# a batch scans at most this many paths (folders stand for many files changed in them):
# every statement that names the paths stays small
SCOPE_MOST = 100
# a read of at least this many changes is a burst: gather the rest, every GATHER_STEP
# seconds for up to GATHER_SECONDS, before writing
BURST = 64
GATHER_STEP = 0.05
GATHER_SECONDS = 0.2
# how often a root that went away is looked for again
ROOT_CHECK_SECONDS = 5.0
# while a dedupe or undo run holds the host, look again this often
BUSY_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class WatchOptions:
    """How to watch: ``settle`` seconds of quiet before a file written without a close is
    read; ``rescan_every`` seconds between rescans of what cannot be watched."""

    settle: float = 1.0
    rescan_every: float = 600.0


class _Stop(Exception):  # noqa: N818 - not an error: Ctrl-C or SIGTERM while idle
    pass


class Watch:
    """One ``dupfinder watch``: :meth:`run` until Ctrl-C or SIGTERM."""

    def __init__(self, db: Database, roots: list[str], host: str, options: ScanOptions,
                 wopts: WatchOptions, tell: Callable[[WatchEvent], None],
                 reporter: Reporter = SILENT) -> None:
        for root in roots:
            if not os.path.isdir(root):
                raise UsageError(f"watch takes folders, not files: {for_message(root)}")
        self.db, self.roots, self.host, self.tell = db, roots, host, tell
        self.reporter = reporter
        self.options, self.wopts = options, wopts
        self.pending = Pending(wopts.settle)
        self.filters = ScopeWalk(roots, options.walk, WalkProblems())
        self.watches = Watches(roots, self._enters, options.walk.follow_links)
        self.devices = {root: os.stat(root).st_dev for root in roots}
        self.away: set[str] = set()  # roots and mounts gone: their rows stay as they are
        self.unwatched: set[str] = set()  # folders the watch limit left out
        self.network: list[str] = []
        # the catalogue's own files: writes to them are the watch's own
        own = db.own_files()
        self.skip = (own | {action_lock_file(db)}) if own else own
        self.stopping = self.idle = self.waiting = False
        self.next_rescan = self.next_root_check = float("inf")

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Watch, scan, then follow changes until Ctrl-C or SIGTERM (then return, after
        writing what is ready). Ctrl-C during the initial scan raises KeyboardInterrupt, as
        a scan's does."""
        try:
            self._start()
            with self._signals():
                while not self.stopping:
                    self._step()
                # what is ready (renames, deletions, closed files) is written; a file
                # still being written is left for the next scan
                self._write(self.pending.take(time.monotonic()))
        finally:
            self.watches.close()

    def _start(self) -> None:
        missed: list[str] = []
        for root in self.roots:
            missed += self.watches.add_tree(root)
        self._unwatched(missed)
        self.network = network_paths(self.roots)
        if self.network:
            self.tell(WatchEvent(Said.NETWORK, paths=list(self.network)))
        run_scan(self.db, Roots(tuple(self.roots)), self.host, self.options, self.reporter)
        if self.unwatched or self.network:
            self.next_rescan = time.monotonic() + self.wopts.rescan_every
        self.tell(WatchEvent(Said.WATCHING, count=len(self.watches.paths),
                             paths=list(self.roots)))

    def _step(self) -> None:
        now = time.monotonic()
        due = self.pending.next_due()
        wake = min(self.next_rescan, self.next_root_check, due if due is not None
                   else float("inf"))
        timeout = None if wake == float("inf") else max(0, int((wake - now) * 1000) + 1)
        self.idle = True
        try:
            changes = self.watches.read(timeout)
        except _Stop:
            return
        finally:
            self.idle = False
        changes += self._gather(len(changes))
        now = time.monotonic()
        for change in changes:
            self._note(change, now)
        if now >= self.next_root_check:
            self._look_for_roots(now)
        if now >= self.next_rescan:
            self._rescan_unwatched(now)
        batch = self.pending.take(now)
        if batch:
            self._write(batch)

    def _gather(self, came: int) -> list[Change]:
        """While changes pour in (a burst), more of them, for up to :data:`GATHER_SECONDS`:
        one batch of many costs less than many small ones, each rescanning the folder the
        burst is in. A trickle is written at once."""
        more: list[Change] = []
        end = time.monotonic() + GATHER_SECONDS
        while came >= BURST and time.monotonic() < end and not self.stopping:
            time.sleep(GATHER_STEP)
            got = self.watches.read(0)
            more += got
            came = len(got)
        return more

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM end the watch between batches: a batch being written is
        finished first."""
        def stop(_signum: int, _frame: Any) -> None:
            self.stopping = True
            if self.idle:
                raise _Stop

        try:
            before = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: the caller stops it some other way
            yield
            return
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)

    # ------------------------------------------------------------------ changes

    def _note(self, change: Change, now: float) -> None:
        kind, path = change.kind, change.path
        if kind is Kind.OVERFLOW:
            missed: list[str] = []
            for root in self.roots:
                if root not in self.away:
                    missed += self.watches.add_tree(root)
                    self.pending.now(root, now)
            self._unwatched(missed)
            self.tell(WatchEvent(Said.OVERFLOW, paths=[r for r in self.roots
                                                       if r not in self.away]))
        elif kind is Kind.UNWATCHED:
            self._unwatched(change.paths)
        elif kind is Kind.ROOT_GONE:
            self.away.add(path)
            self.next_root_check = min(self.next_root_check, now + ROOT_CHECK_SECONDS)
            self.tell(WatchEvent(Said.ROOT_GONE, path))
        elif kind is Kind.UNMOUNTED:
            self.away.add(path)
            self.next_root_check = min(self.next_root_check, now + ROOT_CHECK_SECONDS)
            self.tell(WatchEvent(Said.UNMOUNTED, path))
        elif path in self.skip:
            return  # the catalogue's own files
        elif kind is Kind.MOVED:
            self.pending.move(path, change.dest, change.folder)
        elif kind is Kind.TOUCHED:
            self.pending.quiet(path, now)
        else:
            self.pending.now(path, now)
            if (self.options.walk.ignore_files and kind is not Kind.ARRIVED
                    and os.path.basename(path) in IGNORE_FILES):
                # what the folder's ignore file selects changed: its whole folder
                self.pending.now(os.path.dirname(path), now)

    def _unwatched(self, folders: list[str]) -> None:
        if not folders:
            return
        self.unwatched.update(folders)
        self.next_rescan = min(self.next_rescan, time.monotonic() + self.wopts.rescan_every)
        self.tell(WatchEvent(Said.LIMIT, count=watch_limit() or 0, paths=sorted(folders)))

    def _rescan_unwatched(self, now: float) -> None:
        """Folders that cannot be watched are rescanned; watching them is tried again
        (the limit may have been raised)."""
        self.next_rescan = now + self.wopts.rescan_every
        again = sorted(self.unwatched)
        self.unwatched.clear()
        missed: list[str] = []
        for folder in again:
            missed += self.watches.add_tree(folder)
        self.unwatched.update(missed)
        for folder in again + self.network:
            self.pending.now(folder, now)
        self.tell(WatchEvent(Said.RESCAN, paths=again + self.network))

    def _look_for_roots(self, now: float) -> None:
        """A root (or mount) that went away and is there again is watched and rescanned:
        a root when it is a folder on its first device again, a mount when it is one."""
        self.next_root_check = now + ROOT_CHECK_SECONDS if self.away else float("inf")
        for path in sorted(self.away):
            try:
                st = os.stat(path)
            except OSError:
                continue
            back = (st.st_dev == self.devices[path] if path in self.devices
                    else os.path.ismount(path))
            if not back or not os.path.isdir(path):
                continue
            self.away.discard(path)
            self._unwatched(self.watches.add_tree(path))
            self.pending.now(path, now)
            self.tell(WatchEvent(Said.ROOT_BACK, path))
        if not self.away:
            self.next_root_check = float("inf")

    def _enters(self, folder: str) -> bool:
        """Whether a scan of the roots would enter ``folder`` (only those are watched)."""
        root = root_of(folder, self.roots)
        return root is not None and (folder == root
                                     or self.filters._folder(folder, root) is not None)

    # ------------------------------------------------------------------ writing

    def _write(self, batch: Batch) -> None:
        """Write a batch: renames, then a scan of the changed paths."""
        if not batch:
            return
        if not self._host_free():
            self._postpone(batch)
            return
        self.waiting = False
        self.filters.forget()
        scope = list(batch.paths)
        moved = 0
        for old, new, folder in batch.moves:
            if self._in_place(old, new):
                moved += self._move(old, new)
                if not folder:
                    scope.append(new)  # written to in the same breath, perhaps
            else:
                scope += [old, new]
        scope = compact_scope([p for p in scope if self._looked_at(p)], self.roots,
                              SCOPE_MOST)
        if not scope:
            if moved:
                self.tell(WatchEvent(Said.UPDATED, moved=moved))
            return
        try:
            self._scan(scope, moved, small=len(batch.paths) <= SMALL_BATCH
                       and not any(os.path.isdir(p) for p in scope))
        except SafetyError:  # a merge into this host runs: the renames are in, scan later
            self._postpone(Batch([], scope))

    def _scan(self, scope: list[str], moved: int, small: bool) -> None:
        with self.db.engine.connect() as conn:
            before = live.groups_under(conn, self.host, scope)
        options = replace(self.options, processes=1) if small else self.options
        summary = scan_scope(self.db, self.roots, scope, self.host, options)
        with self.db.engine.connect() as conn:
            written = live.copies_written(conn, self.host, scope, summary.scan_id)
            now = live.inodes_of(conn, set(before) | {c.content_id for c in written})
            fresh = [c for c in written if now.get(c.content_id, 0)
                     > (before[c.content_id].inodes if c.content_id in before else 1)]
            others = live.first_others(conn, fresh, self.host, summary.scan_id)
            for copy in fresh:
                if copy.path in others:
                    host, path = others[copy.path]
                    self.tell(WatchEvent(Said.NEW_COPY, copy.path, path, size=copy.size,
                                         other_host="" if host == self.host else host))
            for content_id, held in sorted(before.items()):
                if now.get(content_id, 0) < 2:  # each was a group before
                    self._tell_ended(conn, content_id, held.size)
        self.tell(WatchEvent(Said.UPDATED, count=len(scope), moved=moved))

    def _tell_ended(self, conn: Any, content_id: int, size: int) -> None:
        left = live.other_file(conn, content_id, self.host, None)
        if left is None:
            self.tell(WatchEvent(Said.GROUP_GONE, size=size))
        else:
            host, path = left
            self.tell(WatchEvent(Said.NOT_DUPLICATED, path,
                                 other_host="" if host == self.host else host, size=size))

    def _looked_at(self, path: str) -> bool:
        """Whether a changed path is the watch's to scan: under a root that is there, not
        under a mount that went away."""
        if root_of(path, self.roots) is None or path in self.skip:
            return False
        return not any(is_under(path, gone) for gone in self.away)

    def _in_place(self, old: str, new: str) -> bool:
        """Whether a rename may move its rows as they are: both names under the roots, and
        no filter that could select the new name differently (patterns, ignore files,
        hidden names, depth, trash, followed links)."""
        w = self.options.walk
        if w.include or w.exclude or w.ignore_files or not w.hidden or w.follow_links:
            return False
        if w.max_depth is not None or in_trash(new + "/x") or in_trash(old + "/x"):
            return False
        return self._looked_at(old) and self._looked_at(new)

    def _move(self, old: str, new: str) -> int:
        with host_lock(self.db, self.host, exclusive=False), self.db.engine.connect() as conn:
            return live.move_rows(conn, self.host, old, new, datetime.now(UTC))

    def _host_free(self) -> bool:
        """Whether no dedupe or undo run of this host is at work (its changes to files are
        its own, recorded by it: they are looked at once it ends)."""
        try:
            with action_lock(self.db, self.host):
                return True
        except SafetyError:
            return False

    def _postpone(self, batch: Batch) -> None:
        if not self.waiting:
            self.waiting = True
            self.tell(WatchEvent(Said.WAITING))
        self.pending.put_back(batch, time.monotonic() + BUSY_RETRY_SECONDS)
        if batch.moves:  # moves first, but not at once
            time.sleep(BUSY_RETRY_SECONDS)


def watch(db: Database, roots: Roots, host: str, options: ScanOptions,
          wopts: WatchOptions, tell: Callable[[WatchEvent], None],
          reporter: Reporter = SILENT) -> None:
    """Run ``dupfinder watch`` of ``roots`` (folders) until Ctrl-C or SIGTERM."""
    try:
        Watch(db, list(roots.paths), host, options, wopts, tell, reporter).run()
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise UsageError("no inotify instance left: fs.inotify.max_user_instances "
                             "is reached (sysctl -w fs.inotify.max_user_instances=N "
                             "raises it)") from exc
        raise
