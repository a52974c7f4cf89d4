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
catalogue rows stay. Filters are :mod:`dupfinder.scan.filters`, the rules of the walk below a
root folder :mod:`dupfinder.scan.visitor`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from dupfinder.db.stored_paths import order_key
from dupfinder.paths import absolute, outermost
from dupfinder.scan.filters import WalkOptions, size_ok
from dupfinder.scan.found import Entry, Skipped, WalkProblems
from dupfinder.scan.visitor import root_visitor

__all__ = ["Entry", "Skipped", "WalkOptions", "WalkProblems", "normalize_roots", "walk"]


def normalize_roots(paths: list[str]) -> list[str]:
    """Absolute, normalised roots with duplicates and roots nested in others removed, in the
    catalogue's path order."""
    kept = outermost(absolute(p) for p in paths)
    return sorted(kept, key=lambda r: order_key(r.rstrip("/") + "/"))


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
            if size_ok(st.st_size, opts):
                yield Entry(root, os.path.basename(root), st.st_size, st.st_mtime_ns,
                            st.st_dev, st.st_ino, st.st_nlink)
            else:
                yield Skipped(root, False)
            continue
        if stat.S_ISDIR(st.st_mode):
            visitor = root_visitor(root, st, roots, opts, problems, visited)
            if visitor is not None:
                yield from visitor.run()
