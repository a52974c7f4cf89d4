"""Discovery: an ``os.scandir`` walk with an explicit stack (no recursion limit) and filters.

Symlinks are skipped unless ``follow_links``; then every real folder is entered once, which
also makes link loops harmless. Trash folders are not entered unless ``include_trash``: what
they hold was thrown away, and a copy there must never count as the one to keep. Problems
(unreadable folders, vanished files, broken links) are collected in :class:`WalkProblems`
and never stop the walk.

``include`` and ``exclude`` are gitignore patterns (``pathspec``), matched against the path
relative to each scan root: ``**``, ``!negation`` (the last matching pattern decides), a
trailing ``/`` for folders only, a leading ``/`` (or a slash in the middle) anchoring at the
root, a pattern without a slash matching at any depth. An excluded folder is never entered.
With ``ignore_files`` the ``.gitignore``, ``.ignore`` and ``.dupfinderignore`` files in the
tree apply to their own folder and below; precedence, highest first: ``exclude``, then the
deepest ignore file that has a matching pattern (in one folder ``.dupfinderignore`` beats
``.ignore`` beats ``.gitignore``). Each pattern list is compiled once (per root, per folder
with ignore files), with one combined regex that rejects the paths no pattern touches.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from pathspec import GitIgnoreSpec

from dupfinder.errors import UsageError
from dupfinder.paths import absolute, for_message, is_under, trash_folder

# read in this order in each folder: later files (and later lines) win
IGNORE_FILES = (".gitignore", ".ignore", ".dupfinderignore")


class Skipped(NamedTuple):
    """A path the walk saw but did not select (a filter, a link not followed, a folder not
    entered). Its catalogue rows, and with ``folder`` every row below it, are kept: what
    the filters did not select was not examined, so it is not known to be gone (a narrower
    rescan must not forget what a wider scan found)."""

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
        check_patterns(self.include, "--include")
        check_patterns(self.exclude, "--exclude")


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


class Patterns:
    """One compiled list of gitignore patterns."""

    __slots__ = ("_spec", "_quick", "active")

    def __init__(self, lines: Iterable[str]) -> None:
        self._spec = GitIgnoreSpec.from_lines(lines)  # ValueError on a bad pattern
        live = [p for p in self._spec.patterns if p.include is not None]
        self.active = bool(live)  # not only comments and no-op lines
        regexes = [p.regex.pattern for p in live if getattr(p, "regex", None) is not None]
        if len(regexes) < len(live):
            regexes = []  # a pattern without a regex: no quick rejection
        self._quick: re.Pattern[str] | None = None
        if regexes:
            # one alternation (named groups dropped) turns away what nothing matches
            with suppress(re.error):
                self._quick = re.compile(
                    "|".join(f"(?:{re.sub(r'[(][?]P<[^>]*>', '(?:', r)})" for r in regexes))

    def check(self, path: str) -> bool | None:
        """True: matched (last match not negated); False: negated; None: no pattern matched.
        ``path`` is relative, with ``/`` after a folder's name."""
        quick = self._quick
        if quick is not None and quick.search(path) is None:
            return None
        return self._spec.check_file(path).include


@lru_cache(maxsize=1024)
def compile_patterns(lines: tuple[str, ...]) -> Patterns | None:
    """Compiled patterns (None when there are none); raises ValueError on a bad one."""
    pats = Patterns(lines)
    return pats if pats.active else None


def check_patterns(patterns: Iterable[str], what: str) -> None:
    """A :class:`UsageError` naming the first pattern that is not valid gitignore syntax."""
    lines = tuple(patterns)
    try:
        compile_patterns(lines)
    except ValueError:
        for line in lines:
            try:
                GitIgnoreSpec.from_lines([line])
            except ValueError:
                raise UsageError(f"bad {what} pattern: {line!r}") from None
        raise


def read_patterns(path: str) -> list[str]:
    """The patterns of one gitignore-style file: blank lines and ``#`` comments dropped.
    Raises OSError."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [line for line in (raw.rstrip("\r\n") for raw in f)
                if line.strip() and not line.startswith("#")]


def load_exclude_from(files: Iterable[str]) -> tuple[str, ...]:
    """The patterns of every ``--exclude-from`` file, in order; a missing or unreadable file
    is a :class:`UsageError` naming it."""
    patterns: list[str] = []
    for name in files:
        try:
            patterns.extend(read_patterns(os.path.expanduser(name)))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"--exclude-from {for_message(name)}: {reason}") from None
    return tuple(patterns)


def _root_prefix(root: str) -> str:
    return root if root.endswith("/") else root + "/"


def root_patterns(patterns: tuple[str, ...], root: str, roots: list[str]) -> tuple[str, ...]:
    """``patterns`` for one root. An absolute pattern that starts with a scan root's path
    (``/home/me/photos/cache`` when scanning ``/home/me/photos``) is made relative to that
    root and anchored there (``/cache``); it is dropped for the other roots."""
    out: list[str] = []
    prefixes = [_root_prefix(r) for r in roots]
    mine = _root_prefix(root)
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if body.startswith("/") and mine != "/":
            owner = next((p for p in prefixes if body.startswith(p) and p != "/"), None)
            if owner is not None:
                if owner != mine:
                    continue
                body = body[len(mine) - 1:]
        out.append("!" + body if negated else body)
    return tuple(out)


def _excluded(path: str, exclude: Patterns | None,
              layers: tuple[tuple[int, Patterns], ...]) -> bool:
    # the command line first, then the ignore files from the deepest up
    if exclude is not None:
        verdict = exclude.check(path)
        if verdict is not None:
            return verdict
    for offset, spec in reversed(layers):
        verdict = spec.check(path[offset:])
        if verdict is not None:
            return verdict
    return False


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


def normalize_roots(paths: list[str]) -> list[str]:
    """Absolute, normalised roots with duplicates and roots nested in others removed."""
    kept: list[str] = []
    for path in sorted({absolute(p) for p in paths}):
        if not any(is_under(path, k) for k in kept):
            kept.append(path)
    return kept


def walk(roots: list[str], opts: WalkOptions, problems: WalkProblems
         ) -> Iterator[Entry | Skipped]:
    """Yield every regular file under ``roots`` that passes the filters (a root that is a
    file is taken as named: the filters are for what a walk finds), and a :class:`Skipped`
    for what the filters or the walk's rules left out."""
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
            else:
                yield Skipped(root, False)
            continue
        if stat.S_ISDIR(st.st_mode):
            visited.add((st.st_dev, st.st_ino))
            exclude = compile_patterns(root_patterns(tuple(opts.exclude), root, roots))
            include = compile_patterns(root_patterns(tuple(opts.include), root, roots))
            if opts.include and include is None:
                continue  # every --include pattern belongs to another root: nothing here
            yield from _walk_dir(root, st.st_dev, opts, problems, visited, exclude, include)


def _size_ok(size: int, opts: WalkOptions) -> bool:
    return size >= opts.min_size and (opts.max_size is None or size <= opts.max_size)


def _listing(folder: str, it: Iterator[os.DirEntry[str]],
             problems: WalkProblems) -> Iterator[os.DirEntry[str]]:
    while True:
        try:
            entry = next(it)
        except StopIteration:
            return
        except OSError as exc:  # folder vanished or became unreadable mid-listing
            problems.add(folder, exc)
            problems.unreadable.append(folder)
            return
        yield entry


def _entry_error(problems: WalkProblems, path: str, exc: OSError) -> None:
    # vanished between listing and stat, or hidden
    problems.add(path, exc)
    if not isinstance(exc, FileNotFoundError):
        # e.g. a folder that can be listed but not entered (mode 644):
        # its files are there, only their metadata cannot be read
        problems.unreadable.append(path)


def _walk_dir(root: str, root_dev: int, opts: WalkOptions, problems: WalkProblems,
              visited: set[tuple[int, int]], exclude: Patterns | None,
              include: Patterns | None) -> Iterator[Entry | Skipped]:
    # each folder with its path relative to the root ("" or "a/b/") and the ignore files
    # that apply there: (length of the relative path of their folder, patterns)
    Layers = tuple[tuple[int, Patterns], ...]
    stack: list[tuple[str, int, str, Layers]] = [(root, 1, "", ())]
    follow = opts.follow_links
    hidden = opts.hidden
    read_ignores = opts.ignore_files
    while stack:
        folder, depth, rel, layers = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            problems.add(folder, exc)
            problems.unreadable.append(folder)
            continue
        subdirs: list[tuple[str, str]] = []
        with it:
            entries: Iterable[os.DirEntry[str]] = _listing(folder, it, problems)
            if read_ignores:
                entries = list(entries)
                names = {e.name for e in entries if e.name in IGNORE_FILES}
                if names:
                    own = _folder_ignores(folder, names, problems)
                    if own is not None:
                        layers = (*layers, (len(rel), own))
            filtering = exclude is not None or bool(layers)
            for entry in entries:
                name = entry.name
                path = entry.path
                if not hidden and name.startswith("."):
                    yield Skipped(path, True)  # a file or a folder: keep what is below
                    continue
                try:
                    if entry.is_symlink():
                        if not follow:
                            if not (filtering and _excluded(rel + name, exclude, layers)):
                                problems.skipped_links += 1
                            yield Skipped(path, True)
                            continue
                        try:
                            st = os.stat(path)
                        except OSError as exc:
                            if not (filtering and _excluded(rel + name, exclude, layers)):
                                problems.add(path, f"broken symlink ({exc.strerror})")
                            yield Skipped(path, True)
                            continue
                        is_dir = stat.S_ISDIR(st.st_mode)
                    else:
                        st = None
                        is_dir = entry.is_dir(follow_symlinks=False)
                except OSError as exc:
                    _entry_error(problems, path, exc)
                    continue
                if is_dir:
                    if (filtering and _excluded(rel + name + "/", exclude, layers)) or (
                            not opts.include_trash and trash_folder(path)):
                        yield Skipped(path, True)
                        continue  # pruned: never entered
                    if opts.max_depth is not None and depth >= opts.max_depth:
                        yield Skipped(path, True)
                        continue
                    if st is None:
                        if not (opts.one_file_system or follow):
                            subdirs.append((path, rel + name + "/"))
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError as exc:
                            problems.add(path, exc)
                            continue
                    if opts.one_file_system and st.st_dev != root_dev:
                        yield Skipped(path, True)
                        continue
                    if follow:
                        key = (st.st_dev, st.st_ino)
                        if key in visited:
                            yield Skipped(path, True)
                            continue  # a loop, or a folder already reached another way
                        visited.add(key)
                    subdirs.append((path, rel + name + "/"))
                    continue
                if filtering and _excluded(rel + name, exclude, layers):
                    yield Skipped(path, False)
                    continue
                if path in opts.skip_paths:
                    continue
                if st is None:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        _entry_error(problems, path, exc)
                        continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                size = st.st_size
                if size < opts.min_size or (opts.max_size is not None and size > opts.max_size):
                    yield Skipped(path, False)
                    continue
                if include is not None and include.check(rel + name) is not True:
                    yield Skipped(path, False)
                    continue
                yield Entry(path, name, size, st.st_mtime_ns, st.st_dev, st.st_ino,
                            st.st_nlink)
        # reversed so that folders are visited in listing order
        stack.extend((d, depth + 1, drel, layers) for d, drel in reversed(subdirs))
