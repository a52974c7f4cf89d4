"""Which files a scan must read, decided as the walk goes.

Only a file whose size another inode shares can have a duplicate, and only files whose size
and prefix hash another inode shares need a full hash. The walk tells every size as it goes,
so this keeps a small state per size (and per (size, prefix) of files too large to be read
whole in the prefix stage), and a file becomes work the moment a second inode of its size
(or size and prefix) turns up: hashing runs while the walk still does, with no candidate
query over the catalogue. Memory follows the distinct sizes, not the files.

The catalogue's other rows count too (other hosts, this host's other folders): when there
are any, the sizes the walk brings are looked up in batches (:func:`dupfinder.db.rows.
rows_of_sizes`). This host's files found that way that now collide are hashed as well, so
``scan ~/Pictures`` then ``scan /backup`` finds the copies between them; another host's
unhashed file of a size makes ours get a full hash at once, as that host cannot read ours.
Hard links are one inode, read once: a file with several links waits until all of them are
seen, or the walk ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from dupfinder.db.rows import SizeRow
from dupfinder.paths import is_under

LOOKUP_SIZES = 500  # sizes per look-up


class Seen(NamedTuple):
    """A file of this host, with the hashes the catalogue has for it (none for a file the
    scan found new or changed)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int
    prefix: str | None = None
    full: str | None = None
    algo: str | None = None
    fresh: bool = True


class Want(NamedTuple):
    """One inode to read: the catalogue ids of its paths, one path, the metadata the hash
    will be valid for, and for the full stage the prefix hash it extends."""

    ids: tuple[int, ...]
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    prefix: str | None = None


class _Key:
    """The distinct inodes met so far: none, one, or "two or more"."""

    __slots__ = ("first", "collided", "waiting")

    def __init__(self) -> None:
        self.first: tuple[object, ...] | None = None
        self.collided = False
        self.waiting: list[Want] = []

    def meet(self, inode: tuple[object, ...]) -> bool:
        """Count an inode; True when this makes two."""
        if self.collided:
            return False
        if self.first is None:
            self.first = inode
            return False
        if inode == self.first:
            return False
        self.collided = True
        return True


class _Size(_Key):
    __slots__ = ("remote_pending", "looked", "prefixes")

    def __init__(self) -> None:
        super().__init__()
        self.remote_pending = False  # another host holds a file of it with no hash yet
        self.looked = False  # the catalogue's other rows of it are counted in
        self.prefixes: set[str] | None = None  # of its files too large to read whole


class Collisions:
    """The scan's hashing decisions. Feed it every walked file (:meth:`see`), the prefix
    stage's results (:meth:`prefix_done`) and the end of the walk (:meth:`end_walk`); take
    the work from :attr:`prefix_work` and :attr:`full_work` as it appears."""

    def __init__(self, host: str, tag: str, whole: int, roots: Sequence[str],
                 lookup: Callable[[list[int]], list[SizeRow]] | None,
                 defer: bool = False) -> None:
        self.host, self.tag, self.whole, self.roots = host, tag, whole, list(roots)
        self.lookup, self.defer = lookup, defer
        self.sizes: dict[int, _Size] = {}
        self.prefixes: dict[tuple[int, str], _Key] = {}
        self.links: dict[tuple[int, int], list[Seen]] = {}
        self.to_look: set[int] = set()
        self.deferred: set[int] = set()
        self.prefix_work: list[Want] = []
        self.full_work: list[Want] = []
        self.fresh = False  # the walk found a new or changed file

    # ------------------------------------------------------------------ the walk

    def see(self, f: Seen) -> None:
        """A walked file of this host, with its catalogue id."""
        if f.nlink == 1 and not f.fresh and f.full is not None and f.algo == self.tag \
                and f.size <= self.whole:
            # the common case of a rescan: hashed, and read whole, so only an inode of
            # its size to count in (no work, no look-up)
            state = self.sizes.get(f.size)
            if state is None:
                state = self.sizes[f.size] = _Size()
            if state.meet((self.host, f.device, f.inode)):
                self._release(state)
            return
        if f.nlink == 1 and f.fresh and f.prefix is None:
            # the common case of a first scan: a new file, its size's state alone decides
            self.fresh = True
            state = self.sizes.get(f.size)
            if state is None:
                state = self.sizes[f.size] = _Size()
            want = Want((f.id,), f.path, f.size, f.mtime_ns, f.device, f.inode)
            if state.collided:
                self.prefix_work.append(want)
            else:
                state.waiting.append(want)
                if state.meet((self.host, f.device, f.inode)):
                    self._release(state)
            if self.lookup is not None and not state.looked:
                self.to_look.add(f.size)
                if len(self.to_look) >= LOOKUP_SIZES:
                    self._look(self.to_look)
            return
        if f.nlink > 1:
            key = (f.device, f.inode)
            links = self.links.setdefault(key, [])
            links.append(f)
            if len(links) < f.nlink:
                return  # the other links may still come
            del self.links[key]
            self._file(links)
        else:
            self._file([f])

    def _file(self, links: list[Seen]) -> None:
        f = links[0]
        if len(links) == 1:
            fresh = f.fresh
            ok_prefix = f.prefix is not None and f.algo == self.tag
            ok_full = ok_prefix and f.full is not None
        else:
            fresh = any(x.fresh for x in links)
            ok_prefix = all(x.prefix is not None and x.algo == self.tag for x in links)
            ok_full = ok_prefix and all(x.full is not None for x in links)
        self.fresh = self.fresh or fresh
        state = self._size(f.size)
        ids = tuple(x.id for x in links)
        self._count(state, self.host, Want(ids, f.path, f.size, f.mtime_ns, f.device, f.inode),
                    f.prefix if ok_prefix else None, mine=True, ok_full=ok_full)
        if self.lookup is not None and not state.looked and (fresh or not ok_full):
            (self.to_look if fresh or not self.defer else self.deferred).add(f.size)
            if len(self.to_look) >= LOOKUP_SIZES:
                self._look(self.to_look)

    def _size(self, size: int) -> _Size:
        state = self.sizes.get(size)
        if state is None:
            state = self.sizes[size] = _Size()
        return state

    def _prefix_key(self, size: int, prefix: str) -> _Key:
        key = (size, prefix)
        state = self.prefixes.get(key)
        if state is None:
            state = self.prefixes[key] = _Key()
        return state

    def _count(self, state: _Size, host: str, want: Want, prefix: str | None, mine: bool,
               ok_full: bool) -> None:
        """Count one inode of the size in (and, for a file too large to read whole, of its
        size and prefix); a file of this host is work once its size (or size and prefix)
        is another inode's too. ``prefix`` is its prefix hash by this scan's algorithm."""
        inode = (host, want.device, want.inode)
        large = want.size > self.whole
        if mine and prefix is None:
            self._need_prefix(state, want)
        elif mine and large and not ok_full and prefix is not None:
            self._need_full(state, want._replace(prefix=prefix))
        if state.meet(inode):
            self._release(state)
        if large and prefix is not None:
            if state.prefixes is None:
                state.prefixes = set()
            state.prefixes.add(prefix)
            if self._prefix_key(want.size, prefix).meet(inode):
                self._release_prefix(want.size, prefix)

    def _need_prefix(self, state: _Size, want: Want) -> None:
        if state.collided:
            self.prefix_work.append(want)
        else:
            state.waiting.append(want)

    def _need_full(self, state: _Size, want: Want) -> None:
        assert want.prefix is not None
        key = self._prefix_key(want.size, want.prefix)
        if key.collided or state.remote_pending:
            self.full_work.append(want)
        else:
            key.waiting.append(want)

    def _release(self, state: _Size) -> None:
        self.prefix_work.extend(state.waiting)
        state.waiting = []

    def _release_prefix(self, size: int, prefix: str) -> None:
        key = self.prefixes[(size, prefix)]
        self.full_work.extend(key.waiting)
        key.waiting = []

    # ------------------------------------------------------------------ the catalogue

    def _look(self, sizes: set[int]) -> None:
        """Count the catalogue's other rows of these sizes in."""
        assert self.lookup is not None
        todo = sorted(s for s in sizes if not self.sizes[s].looked)
        sizes.clear()
        for size in todo:
            self.sizes[size].looked = True
        for r in self.lookup(todo) if todo else ():
            if r.host == self.host and any(is_under(r.path, root) for root in self.roots):
                continue  # the walk's own: seen (or to be seen) as it goes
            state = self.sizes[r.size]
            mine = r.host == self.host
            ok_prefix = r.prefix is not None and r.algo == self.tag
            if not mine and r.prefix is None and not state.remote_pending:
                state.remote_pending = True  # that host cannot read ours: hash ours whole
                for prefix in state.prefixes or ():
                    self._release_prefix(r.size, prefix)
            self._count(state, r.host, Want((r.id,), r.path, r.size, r.mtime_ns, r.device,
                                            r.inode), r.prefix if ok_prefix else None,
                        mine=mine, ok_full=r.full is not None)

    def end_walk(self) -> None:
        """The walk is over: the last look-ups (the deferred ones only if the walk found
        something new), and the files whose links were not all seen."""
        for links in self.links.values():
            self._file(links)
        self.links.clear()
        if self.lookup is not None:
            if self.fresh:
                self.to_look |= self.deferred
            self.deferred.clear()
            if self.to_look:
                self._look(self.to_look)

    # ------------------------------------------------------------------ results

    def prefix_done(self, want: Want, prefix: str, full: str | None) -> None:
        """The prefix stage read ``want``: a file read whole is done, a longer one may now
        need its full hash."""
        if full is not None or want.size <= self.whole:
            return
        self._count(self.sizes[want.size], self.host, want, prefix, mine=True, ok_full=False)

    def take_prefix_work(self) -> list[Want]:
        work, self.prefix_work = self.prefix_work, []
        return work

    def take_full_work(self) -> list[Want]:
        work, self.full_work = self.full_work, []
        return work
