"""The walk of parts of the roots: what a walk of the roots would yield at and below some
paths, and nothing else.

``dupfinder watch`` learns that a few paths changed and brings only those up to date. The
filters must say what they would say in a walk of the whole root: patterns are relative to
the root, ignore files apply from every folder above, a trash folder or an excluded folder
above a path hides it, and depth counts from the root. So each path's folder is reached
from its root, one name at a time, by the walk's own rules (:class:`Visitor`), and each
folder's context is kept for the next path in it: 10,000 files created in one folder cost
one climb, not 10,000. A path that no longer exists yields nothing, so the sync removes its
rows; a path the walk would not select yields a :class:`Skipped`, as the walk would.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from dupfinder.db.stored_paths import order_key
from dupfinder.paths import is_under
from dupfinder.scan.filters import WalkOptions
from dupfinder.scan.found import Entry, Skipped, WalkProblems
from dupfinder.scan.visitor import Folder, Visitor, root_visitor
from dupfinder.scan.walk import normalize_roots, walk


class _PathEntry:
    """A path as :class:`os.DirEntry` shows it, for a file reached without listing its
    folder (the visitor's rules take either)."""

    def __init__(self, path: str) -> None:
        self.path, self.name = path, os.path.basename(path)
        self._lstat: os.stat_result | None = None

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if follow_symlinks:
            return os.stat(self.path)
        if self._lstat is None:
            self._lstat = os.lstat(self.path)
        return self._lstat

    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.stat(follow_symlinks=False).st_mode)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return stat.S_ISDIR(self.stat(follow_symlinks=follow_symlinks).st_mode)


def root_of(path: str, roots: Iterable[str]) -> str | None:
    """The root ``path`` lies at or under, if any."""
    return next((r for r in roots if is_under(path, r)), None)


def compact_scope(paths: Iterable[str], roots: list[str], most: int) -> list[str]:
    """The paths (under ``roots``) as at most ``most`` paths, or as few as the roots allow:
    the deepest are replaced by their folders until few enough are left. Rescanning a
    folder costs a listing and a stat per entry (unchanged files are not read), and
    keeps each statement that names the paths small: 10,000 files created in one folder
    are one path, the folder."""
    kept = normalize_roots(list(paths))
    while len(kept) > most:
        liftable = [p for p in kept if p not in roots]
        if not liftable:
            break
        depth = max(p.count("/") for p in liftable)
        kept = normalize_roots([os.path.dirname(p) if p not in roots and p.count("/") == depth
                                else p for p in kept])
    return kept


class ScopeWalk:
    """Walks parts of ``roots`` (each as :func:`~dupfinder.scan.walk.normalize_roots` gives
    them) with the filters of a walk of the whole roots."""

    def __init__(self, roots: list[str], opts: WalkOptions, problems: WalkProblems) -> None:
        self.roots, self.opts, self.problems = roots, opts, problems
        self.visited: set[tuple[int, int]] = set()
        self._visitors: dict[str, Visitor | None] = {}
        self._folders: dict[str, Folder | None] = {}

    def walk(self, scope: Iterable[str]) -> Iterator[Entry | Skipped]:
        """What a walk of the roots yields at and below each path of ``scope`` (paths under
        a root, none under another), in the catalogue's order."""
        items: list[tuple[str, str, os.stat_result | None]] = []
        for path in scope:
            try:
                st: os.stat_result | None = os.lstat(path)
            except FileNotFoundError:
                continue  # gone: the sync removes its rows
            except OSError as exc:
                self.problems.add(path, exc)
                self.problems.unreadable.append(path)
                st = None
            folder = st is not None and stat.S_ISDIR(st.st_mode)
            items.append((order_key(path + "/" if folder else path), path, st))
        items.sort(key=lambda item: item[0])
        for _, path, st in items:
            if st is None:
                yield Skipped(path, True)  # not looked at: its rows stay
            else:
                yield from self._one(path)

    def _one(self, path: str) -> Iterator[Entry | Skipped]:
        root = root_of(path, self.roots)
        assert root is not None, f"{path} is under no root"
        if path == root:
            yield from self._root(root)
            return
        visitor = self._visitor(root)
        parent = self._folder(os.path.dirname(path), root)
        if visitor is None or parent is None:
            yield Skipped(path, True)  # below what the walk does not enter
            return
        item = visitor.listed(_PathEntry(path))  # type: ignore[arg-type]
        if item.is_dir:
            sub = visitor.enter(parent, item)
            if isinstance(sub, Skipped):
                yield sub
            else:
                yield from visitor.run(sub)
            return
        found = visitor.take(parent, item)
        if found is not None:
            yield found

    def _root(self, root: str) -> Iterator[Entry | Skipped]:
        """A whole root, its patterns made for it among all the roots."""
        try:
            st = os.stat(root)
        except OSError as exc:
            self.problems.add(root, exc)
            self.problems.unreadable.append(root)
            yield Skipped(root, True)
            return
        if not stat.S_ISDIR(st.st_mode):
            yield from walk([root], self.opts, self.problems)
            return
        visitor = root_visitor(root, st, self.roots, self.opts, self.problems, set())
        if visitor is not None:
            yield from visitor.run()

    def _visitor(self, root: str) -> Visitor | None:
        if root not in self._visitors:
            try:
                st = os.stat(root)
            except OSError:
                return None
            self._visitors[root] = (root_visitor(root, st, self.roots, self.opts,
                                                 self.problems, self.visited)
                                    if stat.S_ISDIR(st.st_mode) else None)
        return self._visitors[root]

    def _folder(self, path: str, root: str) -> Folder | None:
        """The walk's context of folder ``path`` (with its own ignore files), or None if
        the walk would not enter it."""
        if path in self._folders:
            return self._folders[path]
        visitor = self._visitor(root)
        folder: Folder | None
        if visitor is None:
            folder = None
        elif path == root:
            folder = visitor.with_ignores(Folder(root, 1, "", ()))
        else:
            parent = self._folder(os.path.dirname(path), root)
            folder = None
            if parent is not None:
                try:
                    item = visitor.listed(_PathEntry(path))  # type: ignore[arg-type]
                except OSError:
                    item = None
                if item is not None and item.is_dir:
                    sub = visitor.enter(parent, item)
                    if not isinstance(sub, Skipped):
                        folder = visitor.with_ignores(sub)
        self._folders[path] = folder
        return folder

    def forget(self) -> None:
        """Drop the folders' contexts (the tree changed: a folder may be another now)."""
        self._folders.clear()
        self._visitors.clear()
        self.visited.clear()
