"""Linux's inotify, through ``inotify_simple``, as the changes the watch cares about.

``inotify_simple`` is a thin wrapper of the three system calls that hands over the raw
events: the watch needs exactly what the kernel says (which folder a watch descriptor
stands for, the cookie that pairs the two halves of a rename, the queue overflow, the
watch limit as ENOSPC), and libraries that build a tree of their own over it (watchdog)
hide or re-order those. One watch per folder; a watch follows its folder through renames,
so a moved folder's descriptors are re-pointed here, by prefix, and never re-added.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum

from inotify_simple import INotify, parse_events
from inotify_simple import flags as F

from dupfinder.paths import is_under

MASK = (F.CREATE | F.DELETE | F.MODIFY | F.CLOSE_WRITE | F.MOVED_FROM | F.MOVED_TO
        | F.ATTRIB | F.DELETE_SELF | F.MOVE_SELF | F.DONT_FOLLOW | F.ONLYDIR | F.EXCL_UNLINK)
# the second half of a rename comes right after the first; wait this long for it when a
# read ends between them
PAIR_WAIT_MS = 20
# events held for the loop at most (about 100 bytes each); beyond, they are dropped and
# taken for an overflow, as the kernel does with its own queue
MOST_HELD = 1_000_000


def watch_limit() -> int | None:
    """The inotify watch limit that applies here: this user namespace's
    (``/proc/sys/user/max_inotify_watches``), which is ``fs.inotify.max_user_watches`` in
    the first namespace."""
    for name in ("/proc/sys/user/max_inotify_watches", "/proc/sys/fs/inotify/max_user_watches"):
        try:
            with open(name, encoding="ascii") as f:
                return int(f.read())
        except (OSError, ValueError):
            continue
    return None


class _Overflowed:
    """The event that stands for events dropped (see :data:`MOST_HELD`)."""

    wd, mask, cookie, name = -1, F.Q_OVERFLOW, 0, ""


_OVERFLOWED = _Overflowed()


class Kind(StrEnum):
    """What a change says."""

    WRITTEN = "written"  # closed after writing: ready now
    TOUCHED = "touched"  # created, written to, metadata changed: ready once quiet
    GONE = "gone"  # deleted, or moved out of the watched folders
    ARRIVED = "arrived"  # a folder created or moved in: everything below it is new
    MOVED = "moved"  # renamed within the watched folders: ``path`` -> ``dest``
    OVERFLOW = "overflow"  # the kernel's queue overflowed: events were lost
    ROOT_GONE = "root gone"  # a root deleted, moved away or unmounted
    UNMOUNTED = "unmounted"  # a file system below a root unmounted
    UNWATCHED = "unwatched"  # folders the watch limit left unwatched (``paths``)


@dataclass
class Change:
    """One change under the roots."""

    kind: Kind
    path: str = ""
    dest: str = ""
    folder: bool = False
    paths: list[str] = field(default_factory=list)


class Watches:
    """The inotify instance, one watch per watched folder, and the events as
    :class:`Change`\\ s. ``enter(path)`` tells which folders are watched (those the walk
    would enter).

    A thread of its own empties the kernel's queue as events come (it only reads and
    parses; what they mean is worked out in the caller's thread, by :meth:`read`): the
    kernel keeps ``fs.inotify.max_queued_events`` (16,384) at most, which a burst of a few
    thousand new files fills while a batch is being written."""

    def __init__(self, roots: list[str], enter: Callable[[str], bool],
                 follow_links: bool = False) -> None:
        self.roots, self.enter, self.follow_links = roots, enter, follow_links
        self.inotify = INotify()
        self.paths: dict[int, str] = {}  # watch descriptor -> folder
        self._held: list = []  # type: ignore[type-arg]  # events read, not yet taken
        self._came = threading.Condition()
        self._wake_r, self._wake_w = os.pipe()
        self._reader = threading.Thread(target=self._drain, name="inotify", daemon=True)
        self._reader.start()

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._reader.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self.inotify.close()

    def _drain(self) -> None:
        """The reader thread: blocks in poll (no timeout: an idle watch costs nothing)
        until events come or :meth:`close` writes to the wake-up pipe."""
        poller = select.poll()
        poller.register(self.inotify.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                return
            try:
                data = os.read(self.inotify.fileno(), 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                return
            events = parse_events(data)
            with self._came:
                if len(self._held) < MOST_HELD:
                    self._held.extend(events)
                else:  # as the kernel does: what does not fit is lost, and said so
                    self._held.append(_OVERFLOWED)
                self._came.notify()

    def add_tree(self, top: str) -> list[str]:
        """Watch ``top`` and every folder below it that ``enter`` allows; returns the
        folders the watch limit left unwatched (with everything below each)."""
        unwatched: list[str] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                # a folder reached through a link (--follow-links) is watched under the
                # link's name, as the walk names what is in it
                wd = self.inotify.add_watch(folder, MASK & ~F.DONT_FOLLOW
                                            if self.follow_links else MASK)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    unwatched.append(folder)
                # gone, not a folder any more, unreadable: nothing to watch there
                continue
            self.paths[wd] = folder
            try:
                with os.scandir(folder) as it:
                    for e in it:
                        try:
                            real_dir = e.is_dir(follow_symlinks=self.follow_links)
                        except OSError:
                            continue
                        if real_dir and self.enter(e.path):
                            stack.append(e.path)
            except OSError:
                continue  # vanished or unreadable: its parent's events tell
        return unwatched

    def forget(self, folder: str) -> None:
        """Stop watching ``folder`` and everything below it."""
        for wd, path in list(self.paths.items()):
            if is_under(path, folder):
                del self.paths[wd]
                with suppress(OSError):  # the kernel may have dropped it already
                    self.inotify.rm_watch(wd)

    def _moved(self, old: str, new: str) -> None:
        """Re-point the watches of a folder renamed from ``old`` to ``new``."""
        cut = len(old)
        for wd, path in self.paths.items():
            if is_under(path, old):
                self.paths[wd] = new + path[cut:]

    def read(self, timeout_ms: int | None) -> list[Change]:
        """The changes the kernel has reported, waiting up to ``timeout_ms`` (None:
        forever) for the first."""
        events = self._take(timeout_ms)
        if not events:
            return []
        if events[-1].mask & F.MOVED_FROM:  # its second half may be on its way
            events.extend(self._take(PAIR_WAIT_MS))
        return list(self._changes(events))

    def _take(self, timeout_ms: int | None) -> list:  # type: ignore[type-arg]
        with self._came:
            if not self._held:
                self._came.wait(None if timeout_ms is None else timeout_ms / 1000)
            events, self._held = self._held, []
        return events

    def _changes(self, events: list) -> Iterator[Change]:  # type: ignore[type-arg]
        moved_from: dict[int, tuple[str, bool]] = {}
        for ev in events:
            mask = ev.mask
            if mask & F.Q_OVERFLOW:
                yield Change(Kind.OVERFLOW)
                continue
            base = self.paths.get(ev.wd)
            if base is None:
                continue  # a watch dropped already
            folder = bool(mask & F.ISDIR)
            path = os.path.join(base, ev.name) if ev.name else base
            if mask & F.MOVED_TO and ev.cookie in moved_from:
                old, was_folder = moved_from.pop(ev.cookie)
                if was_folder:
                    self._moved(old, path)
                yield Change(Kind.MOVED, old, path, was_folder)
                continue
            yield from self._flush_moves(moved_from, keep=ev.cookie if mask & F.MOVED_FROM
                                         else None)
            if mask & F.MOVED_FROM:
                moved_from[ev.cookie] = (path, folder)
            else:
                yield from self._one(ev.wd, base, path, mask, folder)
        yield from self._flush_moves(moved_from, keep=None)

    def _one(self, wd: int, base: str, path: str, mask: int, folder: bool
             ) -> Iterator[Change]:
        """An event that is not half of a rename."""
        if mask & (F.UNMOUNT | F.DELETE_SELF | F.MOVE_SELF):
            yield from self._self_event(wd, base, mask)
        elif mask & F.IGNORED:
            self.paths.pop(wd, None)
        elif folder and mask & (F.CREATE | F.MOVED_TO):
            yield Change(Kind.ARRIVED, path, folder=True)
            if self.enter(path):
                missed = self.add_tree(path)
                if missed:
                    yield Change(Kind.UNWATCHED, paths=missed)
        elif mask & F.DELETE:
            yield Change(Kind.GONE, path, folder=folder)
        elif folder:
            return  # a folder's own metadata: nothing of the catalogue's
        elif mask & (F.CLOSE_WRITE | F.MOVED_TO):
            yield Change(Kind.WRITTEN, path)  # closed after writing, or moved in from outside
        else:
            yield Change(Kind.TOUCHED, path)

    def _flush_moves(self, moved_from: dict[int, tuple[str, bool]], keep: int | None
                     ) -> Iterator[Change]:
        """Renames whose second half did not come next: moved out of the watched
        folders, so gone."""
        for cookie in [c for c in moved_from if c != keep]:
            path, folder = moved_from.pop(cookie)
            if folder:
                self.forget(path)
            yield Change(Kind.GONE, path, folder=folder)

    def _self_event(self, wd: int, path: str, mask: int) -> Iterator[Change]:
        if path in self.roots:
            self.forget(path)
            yield Change(Kind.ROOT_GONE, path, folder=True)
        elif mask & F.UNMOUNT:
            self.forget(path)
            yield Change(Kind.UNMOUNTED, path, folder=True)
        # a folder below a root deleted or moved: its parent's event says so

