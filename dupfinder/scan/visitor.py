"""The walk below one root folder, by the walk's rules: which entries are taken, which
folders entered, and in what order.

A folder is listed whole, sorted by the catalogue's path order, and taken in order; a stack
of listings stands for the folders entered. :meth:`Visitor.enter` and :meth:`Visitor.take`
are the rules for one subfolder and one file, so :mod:`dupfinder.scan.scope` can apply them
to a path reached without listing its parents.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import NamedTuple

from dupfinder.db.stored_paths import order_key
from dupfinder.paths import trash_folder
from dupfinder.scan.filters import (
    IGNORE_FILES,
    Layers,
    Patterns,
    WalkOptions,
    compile_patterns,
    excluded,
    folder_ignores,
    root_patterns,
)
from dupfinder.scan.found import Entry, Skipped, WalkProblems


def root_visitor(root: str, st: os.stat_result, roots: list[str], opts: WalkOptions,
                 problems: WalkProblems, visited: set[tuple[int, int]]) -> Visitor | None:
    """The visitor of a root folder (``st`` its stat), or None when nothing under it can be
    selected (every ``include`` pattern belongs to another root)."""
    visited.add((st.st_dev, st.st_ino))
    exclude = compile_patterns(root_patterns(tuple(opts.exclude), root, roots))
    include = compile_patterns(root_patterns(tuple(opts.include), root, roots))
    if opts.include and include is None:
        return None
    return Visitor(root, st.st_dev, opts, problems, visited, exclude, include)


class Listed(NamedTuple):
    """One entry of a folder, ready to be taken in order."""

    key: str
    entry: os.DirEntry[str]
    is_dir: bool
    st: os.stat_result | None  # the target's stat when a followed link was resolved
    problem: str | None = None  # why a followed link could not be resolved


class Folder(NamedTuple):
    """A folder the walk entered, with what the rules need to know of the way there."""

    path: str
    depth: int
    rel: str  # relative to the root: "" or "a/b/"
    layers: Layers  # the ignore files that apply here: (offset in rel, patterns)


class Visitor:
    """The walk below one root folder (see the module's docstring)."""

    def __init__(self, root: str, root_dev: int, opts: WalkOptions, problems: WalkProblems,
                 visited: set[tuple[int, int]], exclude: Patterns | None,
                 include: Patterns | None) -> None:
        self.root, self.root_dev, self.opts, self.problems = root, root_dev, opts, problems
        self.visited, self.exclude, self.include = visited, exclude, include
        # no filter but the sizes applies to a file (ignore files may add some per folder)
        self._plain = exclude is None and include is None and opts.hidden
        self._min, self._max = opts.min_size, opts.max_size

    def run(self, start: Folder | None = None) -> Iterator[Entry | Skipped]:
        """The walk below the root, or below ``start``, a folder under it that
        :meth:`enter` gave (:mod:`dupfinder.scan.scope` walks parts of a root)."""
        stack: list[tuple[Folder, Iterator[Listed]]] = []
        yield from self._open(start or Folder(self.root, 1, "", ()), stack)
        while stack:
            folder, entries = stack[-1]
            item = next(entries, None)
            if item is None:
                stack.pop()
            elif item.is_dir:
                sub = self.enter(folder, item)
                if isinstance(sub, Skipped):
                    yield sub
                else:
                    yield from self._open(sub, stack)
            else:
                found = self.take(folder, item)
                if found is not None:
                    yield found

    def _open(self, folder: Folder, stack: list[tuple[Folder, Iterator[Listed]]]
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
            own = folder_ignores(folder.path, names, self.problems) if names else None
            if own is not None:
                folder = folder._replace(layers=(*folder.layers, (len(folder.rel), own)))
        stack.append((folder, iter(self._sorted(entries))))

    def with_ignores(self, folder: Folder) -> Folder:
        """``folder`` with its own ignore files as a layer, as :meth:`_open` adds them (for
        a folder reached without listing its parent)."""
        if not self.opts.ignore_files:
            return folder
        names = {n for n in IGNORE_FILES if os.path.lexists(os.path.join(folder.path, n))}
        own = folder_ignores(folder.path, names, self.problems) if names else None
        if own is None:
            return folder
        return folder._replace(layers=(*folder.layers, (len(folder.rel), own)))

    def _sorted(self, entries: list[os.DirEntry[str]]) -> list[Listed]:
        """Entries with what ordering them needs: a folder (or, when links are followed, a
        link to one) sorts as its name + "/"."""
        out = [self.listed(e) for e in entries]
        out.sort(key=lambda item: item.key)
        return out

    def listed(self, e: os.DirEntry[str]) -> Listed:
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
        return Listed(order_key(e.name + "/" if is_dir else e.name), e, is_dir, st, problem)

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

    def _excluded(self, folder: Folder, rel: str) -> bool:
        if self.exclude is None and not folder.layers:
            return False
        return excluded(rel, self.exclude, folder.layers)

    def enter(self, folder: Folder, item: Listed) -> Folder | Skipped:
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
        return Folder(path, folder.depth + 1, rel, folder.layers)

    def take(self, folder: Folder, item: Listed) -> Entry | Skipped | None:
        """The file ``item`` of ``folder`` as the walk yields it: an Entry, the Skipped
        that keeps its rows, or None for what is not a regular file or is gone."""
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
