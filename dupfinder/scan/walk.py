"""Discovery: an ``os.scandir`` walk with an explicit stack (no recursion limit) and filters.

Symlinks are skipped unless ``follow_links``; then every real folder is entered once, which
also makes link loops harmless. Problems (unreadable folders, vanished files, broken links)
are collected in :class:`WalkProblems` and never stop the walk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import NamedTuple

from dupfinder.paths import absolute, is_under


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
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = True
    skip_paths: frozenset[str] = frozenset()  # e.g. the SQLite catalogue and its -wal file


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


def _matches(patterns: tuple[str, ...], path: str, name: str) -> bool:
    # a pattern with a slash matches the whole path, otherwise the name
    return any(fnmatchcase(path if "/" in p else name, p) for p in patterns)


def normalize_roots(paths: list[str]) -> list[str]:
    """Absolute, normalised roots with duplicates and roots nested in others removed."""
    kept: list[str] = []
    for path in sorted({absolute(p) for p in paths}):
        if not any(is_under(path, k) for k in kept):
            kept.append(path)
    return kept


def walk(roots: list[str], opts: WalkOptions, problems: WalkProblems) -> Iterator[Entry]:
    """Yield every regular file under ``roots`` that passes the filters."""
    visited: set[tuple[int, int]] = set()
    for root in roots:
        try:
            st = os.stat(root)  # a root given as a symlink is followed, like find -H
        except OSError as exc:
            problems.add(root, exc)
            continue
        if stat.S_ISREG(st.st_mode):
            name = os.path.basename(root)
            if _size_ok(st.st_size, opts):
                yield Entry(root, name, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino,
                            st.st_nlink)
            continue
        if stat.S_ISDIR(st.st_mode):
            visited.add((st.st_dev, st.st_ino))
            yield from _walk_dir(root, st.st_dev, opts, problems, visited)


def _size_ok(size: int, opts: WalkOptions) -> bool:
    return size >= opts.min_size and (opts.max_size is None or size <= opts.max_size)


def _walk_dir(root: str, root_dev: int, opts: WalkOptions, problems: WalkProblems,
              visited: set[tuple[int, int]]) -> Iterator[Entry]:
    stack: list[tuple[str, int]] = [(root, 1)]
    follow = opts.follow_links
    check_names = bool(opts.include or opts.exclude) or not opts.hidden
    while stack:
        folder, depth = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            problems.add(folder, exc)
            problems.unreadable.append(folder)
            continue
        subdirs: list[str] = []
        with it:
            while True:
                try:
                    entry = next(it)
                except StopIteration:
                    break
                except OSError as exc:  # folder vanished or became unreadable mid-listing
                    problems.add(folder, exc)
                    problems.unreadable.append(folder)
                    break
                name = entry.name
                path = entry.path
                if check_names:
                    if not opts.hidden and name.startswith("."):
                        continue
                    if opts.exclude and _matches(opts.exclude, path, name):
                        continue
                try:
                    if entry.is_symlink():
                        if not follow:
                            problems.skipped_links += 1
                            continue
                        try:
                            st = os.stat(path)
                        except OSError as exc:
                            problems.add(path, f"broken symlink ({exc.strerror})")
                            continue
                        mode = st.st_mode
                    elif entry.is_dir(follow_symlinks=False):
                        st = None
                        mode = stat.S_IFDIR
                    else:
                        st = entry.stat(follow_symlinks=False)
                        mode = st.st_mode
                except OSError as exc:  # vanished between listing and stat, or hidden
                    problems.add(path, exc)
                    if not isinstance(exc, FileNotFoundError):
                        # e.g. a folder that can be listed but not entered (mode 644):
                        # its files are there, only their metadata cannot be read
                        problems.unreadable.append(path)
                    continue
                if stat.S_ISDIR(mode):
                    if opts.max_depth is not None and depth >= opts.max_depth:
                        continue
                    if st is None:
                        if not (opts.one_file_system or follow):
                            subdirs.append(path)
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError as exc:
                            problems.add(path, exc)
                            continue
                    if opts.one_file_system and st.st_dev != root_dev:
                        continue
                    if follow:
                        key = (st.st_dev, st.st_ino)
                        if key in visited:
                            continue  # a loop, or a folder already reached another way
                        visited.add(key)
                    subdirs.append(path)
                elif stat.S_ISREG(mode) and st is not None:
                    if path in opts.skip_paths:
                        continue
                    size = st.st_size
                    if size < opts.min_size or (opts.max_size is not None and size > opts.max_size):
                        continue
                    if opts.include and not _matches(opts.include, path, name):
                        continue
                    yield Entry(path, name, size, st.st_mtime_ns, st.st_dev, st.st_ino,
                                st.st_nlink)
        # reversed so that folders are visited in listing order
        stack.extend((d, depth + 1) for d in reversed(subdirs))
