"""Discovery: an ``os.scandir`` walk, in the catalogue's own path order, with filters.

The walk yields paths in the order the catalogue's (host, path) index holds them (each
folder's entries sorted by :func:`dupfinder.db.stored_paths.order_key`, a folder's name compared as
name + "/"), so a rescan compares it with the catalogue by a merge join, reading both once,
in step (:mod:`dupfinder.scan.sync`), and new rows are written in key order.

Symlinks are skipped unless ``follow_links``; then every real folder is entered once, which
also makes link loops harmless. Trash folders are not entered unless ``include_trash``: what
they hold was thrown away, and a copy there must never count as the one to keep. Problems
(unreadable folders, vanished files, broken links) are collected in :class:`WalkProblems`
and never stop the walk; what could not be looked at is yielded as :class:`Skipped`, so its
catalogue rows stay. Filters are :mod:`dupfinder.scan.filters`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from pathspec import GitIgnoreSpec

from dupfinder.db.stored_paths import order_key
from dupfinder.errors import param
from dupfinder.paths import absolute, is_under, trash_folder
from dupfinder.scan.filters import (
    IGNORE_FILES,
    Layers,
    Patterns,
    check_patterns,
    compile_patterns,
    excluded,
    read_patterns,
    root_patterns,
)


class Skipped(NamedTuple):
    """A path the walk saw but did not select (a filter, a link not followed, a folder not
    entered) or could not look at. Its catalogue rows, and with ``folder`` every row below
    it, are kept: what was not examined is not known to be gone (a narrower rescan must not
    forget what a wider scan found)."""

    path: str
    folder: bool


class Entry(NamedTuple):
    """A regular file the walk found, with the metadata the catalogue keeps."""

    path: str
    name: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int


@dataclass
class WalkOptions:
    """What to look at. ``max_depth`` 1 means only the files directly in a root."""

    follow_links: bool = False
    one_file_system: bool = False
    max_depth: int | None = None
    min_size: int = 1
    max_size: int | None = None
    include: tuple[str, ...] = ()  # gitignore patterns: keep only the files they match
    exclude: tuple[str, ...] = ()  # gitignore patterns: skip what they match
    hidden: bool = True
    ignore_files: bool = False  # honour .gitignore, .ignore and .dupfinderignore files
    include_trash: bool = False  # enter trash folders (a copy there is never the one kept)
    skip_paths: frozenset[str] = frozenset()  # e.g. the SQLite catalogue and its -wal file

    def __post_init__(self) -> None:
        # bad patterns fail when the options are made, before anything is opened
        check_patterns(self.include, param("include"))
        check_patterns(self.exclude, param("exclude"))


@dataclass
class WalkProblems:
    """What the walk could not look at, with the reason, for the summary and ``-v``."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    # folders that could not be listed and entries that could not be looked at: their
    # catalogue rows are kept, since what could not be seen was not seen to be gone
    unreadable: list[str] = field(default_factory=list)
    skipped_links: int = 0

    def add(self, path: str, exc: OSError | str) -> None:
        """Record one problem."""
        reason = exc if isinstance(exc, str) else (exc.strerror or type(exc).__name__)
        self.errors.append((path, reason))


def normalize_roots(paths: list[str]) -> list[str]:
    """Absolute, normalised roots with duplicates and roots nested in others removed, in the
    catalogue's path order."""
    kept: list[str] = []
    for path in sorted({absolute(p) for p in paths}, key=order_key):
        if not any(is_under(path, k) for k in kept):
            kept.append(path)
    return sorted(kept, key=lambda r: order_key(r.rstrip("/") + "/"))


def _size_ok(size: int, opts: WalkOptions) -> bool:
    return size >= opts.min_size and (opts.max_size is None or size <= opts.max_size)


def walk(roots: list[str], opts: WalkOptions, problems: WalkProblems
         ) -> Iterator[Entry | Skipped]:
    """Yield every regular file under ``roots`` that passes the filters (a root that is a
    file is taken as named: the filters are for what a walk finds), and a :class:`Skipped`
    for what the filters or the walk's rules left out, all in the catalogue's path order
    (``roots`` as :func:`normalize_roots` gives them)."""
    visited: set[tuple[int, int]] = set()
    for root in roots:
        try:
            st = os.stat(root)  # a root given as a symlink is followed, like find -H
        except OSError as exc:
            problems.add(root, exc)
            problems.unreadable.append(root)
            yield Skipped(root, True)  # not looked at: its rows stay
            continue
        if stat.S_ISREG(st.st_mode):
            if _size_ok(st.st_size, opts):
                yield Entry(root, os.path.basename(root), st.st_size, st.st_mtime_ns,
                            st.st_dev, st.st_ino, st.st_nlink)
            else:
                yield Skipped(root, False)
            continue
        if stat.S_ISDIR(st.st_mode):
            visitor = root_visitor(root, st, roots, opts, problems, visited)
            if visitor is not None:
                yield from visitor.run()


def root_visitor(root: str, st: os.stat_result, roots: list[str], opts: WalkOptions,
                 problems: WalkProblems, visited: set[tuple[int, int]]) -> _Visitor | None:
    """The visitor of a root folder (``st`` its stat), or None when nothing under it can be
    selected (every ``--include`` pattern belongs to another root)."""
    visited.add((st.st_dev, st.st_ino))
    exclude = compile_patterns(root_patterns(tuple(opts.exclude), root, roots))
    include = compile_patterns(root_patterns(tuple(opts.include), root, roots))
    if opts.include and include is None:
        return None
    return _Visitor(root, st.st_dev, opts, problems, visited, exclude, include)


class _Listed(NamedTuple):
    """One entry of a folder, ready to be taken in order."""

    key: str
    entry: os.DirEntry[str]
    is_dir: bool
    st: os.stat_result | None  # the target's stat when a followed link was resolved
    problem: str | None = None  # why a followed link could not be resolved


class _Folder(NamedTuple):
    path: str
    depth: int
    rel: str  # relative to the root: "" or "a/b/"
    layers: Layers  # the ignore files that apply here: (offset in rel, patterns)


class _Visitor:
    """The walk below one root folder: folders are listed whole, sorted, and taken in
    order, a stack of listings standing for the folders entered."""

    def __init__(self, root: str, root_dev: int, opts: WalkOptions, problems: WalkProblems,
                 visited: set[tuple[int, int]], exclude: Patterns | None,
                 include: Patterns | None) -> None:
        self.root, self.root_dev, self.opts, self.problems = root, root_dev, opts, problems
        self.visited, self.exclude, self.include = visited, exclude, include
        # no filter but the sizes applies to a file (ignore files may add some per folder)
        self._plain = exclude is None and include is None and opts.hidden
        self._min, self._max = opts.min_size, opts.max_size

    def run(self, start: _Folder | None = None) -> Iterator[Entry | Skipped]:
        """The walk below the root, or below ``start``, a folder under it that
        :meth:`_enter` gave (:mod:`dupfinder.scan.scope` walks parts of a root)."""
        stack: list[tuple[_Folder, Iterator[_Listed]]] = []
        yield from self._open(start or _Folder(self.root, 1, "", ()), stack)
        while stack:
            folder, entries = stack[-1]
            item = next(entries, None)
            if item is None:
                stack.pop()
            elif item.is_dir:
                sub = self._enter(folder, item)
                if isinstance(sub, Skipped):
                    yield sub
                else:
                    yield from self._open(sub, stack)
            else:
                found = self._file(folder, item)
                if found is not None:
                    yield found

    def _open(self, folder: _Folder, stack: list[tuple[_Folder, Iterator[_Listed]]]
              ) -> Iterator[Skipped]:
        """List ``folder`` and push its listing; a folder that cannot be listed, or only in
        part, yields a Skipped first: what the listing did not reach keeps its rows."""
        try:
            it = os.scandir(folder.path)
        except OSError as exc:
            self.problems.add(folder.path, exc)
            self.problems.unreadable.append(folder.path)
            yield Skipped(folder.path, True)
            return
        entries: list[os.DirEntry[str]] = []
        with it:
            try:
                entries.extend(it)
            except OSError as exc:  # vanished or became unreadable mid-listing
                self.problems.add(folder.path, exc)
                self.problems.unreadable.append(folder.path)
                yield Skipped(folder.path, True)
        if self.opts.ignore_files:
            names = {e.name for e in entries if e.name in IGNORE_FILES}
            own = _folder_ignores(folder.path, names, self.problems) if names else None
            if own is not None:
                folder = folder._replace(layers=(*folder.layers, (len(folder.rel), own)))
        stack.append((folder, iter(self._sorted(entries))))

    def with_ignores(self, folder: _Folder) -> _Folder:
        """``folder`` with its own ignore files as a layer, as :meth:`_open` adds them (for
        a folder reached without listing its parent)."""
        if not self.opts.ignore_files:
            return folder
        names = {n for n in IGNORE_FILES if os.path.lexists(os.path.join(folder.path, n))}
        own = _folder_ignores(folder.path, names, self.problems) if names else None
        if own is None:
            return folder
        return folder._replace(layers=(*folder.layers, (len(folder.rel), own)))

    def _sorted(self, entries: list[os.DirEntry[str]]) -> list[_Listed]:
        """Entries with what ordering them needs: a folder (or, when links are followed, a
        link to one) sorts as its name + "/"."""
        out = [self.listed(e) for e in entries]
        out.sort(key=lambda item: item.key)
        return out

    def listed(self, e: os.DirEntry[str]) -> _Listed:
        """One entry with what ordering and taking it needs."""
        st = problem = None
        try:
            if e.is_symlink():
                is_dir = False
                if self.opts.follow_links and (self.opts.hidden or not e.name.startswith(".")):
                    try:
                        st = os.stat(e.path)
                        is_dir = stat.S_ISDIR(st.st_mode)
                    except OSError as exc:
                        problem = f"broken symlink ({exc.strerror})"
            else:
                is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        return _Listed(order_key(e.name + "/" if is_dir else e.name), e, is_dir, st, problem)

    def _plain_file(self, e: os.DirEntry[str]) -> Entry | Skipped | None:
        """A file where no pattern, dot rule or link applies: the common case, in short."""
        path = e.path
        try:
            st = e.stat(follow_symlinks=False)
        except OSError as exc:
            self.problems.add(path, exc)
            if isinstance(exc, FileNotFoundError):
                return None
            self.problems.unreadable.append(path)
            return Skipped(path, True)
        if not stat.S_ISREG(st.st_mode) or path in self.opts.skip_paths:
            return None
        size = st.st_size
        if size < self._min or (self._max is not None and size > self._max):
            return Skipped(path, False)
        return Entry(path, e.name, size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink)

    def _excluded(self, folder: _Folder, rel: str) -> bool:
        if self.exclude is None and not folder.layers:
            return False
        return excluded(rel, self.exclude, folder.layers)

    def _enter(self, folder: _Folder, item: _Listed) -> _Folder | Skipped:
        """The subfolder to walk into, or the Skipped that keeps its rows."""
        e, opts = item.entry, self.opts
        path = e.path
        rel = folder.rel + e.name + "/"
        if not opts.hidden and e.name.startswith("."):
            return Skipped(path, True)
        if self._excluded(folder, rel) or (not opts.include_trash and trash_folder(path)):
            return Skipped(path, True)  # pruned: never entered
        if opts.max_depth is not None and folder.depth >= opts.max_depth:
            return Skipped(path, True)
        st = item.st
        if st is None and (opts.one_file_system or opts.follow_links):
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                self.problems.add(path, exc)
                return Skipped(path, True)
        if st is not None:
            if opts.one_file_system and st.st_dev != self.root_dev:
                return Skipped(path, True)
            if opts.follow_links:
                key = (st.st_dev, st.st_ino)
                if key in self.visited:
                    return Skipped(path, True)  # a loop, or reached another way already
                self.visited.add(key)
        return _Folder(path, folder.depth + 1, rel, folder.layers)

    def _file(self, folder: _Folder, item: _Listed) -> Entry | Skipped | None:
        e, opts = item.entry, self.opts
        if self._plain and not folder.layers and item.st is None and not e.is_symlink():
            return self._plain_file(e)
        name, path = e.name, e.path
        if not opts.hidden and name.startswith("."):
            return Skipped(path, True)  # a file or a folder: keep what is below
        try:
            link = e.is_symlink()
        except OSError:
            link = False
        if link and item.st is None:  # not followed, or broken
            if not self._excluded(folder, folder.rel + name):
                if opts.follow_links:
                    self.problems.add(path, item.problem or "broken symlink")
                else:
                    self.problems.skipped_links += 1
            return Skipped(path, True)
        if self._excluded(folder, folder.rel + name):
            return Skipped(path, False)
        if path in opts.skip_paths:
            return None
        st = item.st
        if st is None:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                self.problems.add(path, exc)
                if isinstance(exc, FileNotFoundError):
                    return None  # vanished between listing and stat: gone
                # e.g. a folder that can be listed but not entered (mode 644): its files
                # are there, only their metadata cannot be read
                self.problems.unreadable.append(path)
                return Skipped(path, True)
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        if size < opts.min_size or (opts.max_size is not None and size > opts.max_size):
            return Skipped(path, False)
        if self.include is not None and self.include.check(folder.rel + name) is not True:
            return Skipped(path, False)
        return Entry(path, name, size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink)


def _folder_ignores(folder: str, names: set[str], problems: WalkProblems) -> Patterns | None:
    """The ignore files of one folder, compiled together (None if there are none)."""
    lines: list[str] = []
    for name in IGNORE_FILES:
        if name in names:
            path = os.path.join(folder, name)
            try:
                lines.extend(read_patterns(path))
            except OSError as exc:
                problems.add(path, f"ignore file not read ({exc.strerror})")
    try:
        return compile_patterns(tuple(lines))
    except ValueError:
        good = []
        for line in lines:
            try:
                GitIgnoreSpec.from_lines([line])
                good.append(line)
            except ValueError:
                problems.add(folder, f"bad pattern in an ignore file: {line!r}")
        return compile_patterns(tuple(good))
