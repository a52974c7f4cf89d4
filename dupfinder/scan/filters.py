"""Which paths a walk selects (:class:`WalkOptions`): sizes, and gitignore patterns (``include``,
``exclude``, the exclude files, ignore files in the tree), compiled once per root or folder.

Patterns are matched against the path relative to each scan root: ``**``, ``!negation`` (the
last matching pattern decides), a trailing ``/`` for folders only, a leading ``/`` (or a
slash in the middle) anchoring at the root, a pattern without a slash matching at any depth.
Precedence, highest first: ``exclude``, then the deepest ignore file that has a matching
pattern (in one folder ``.dupfinderignore`` beats ``.ignore`` beats ``.gitignore``). Each
pattern list is compiled once, with one combined regex that rejects the paths no pattern
touches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache

from pathspec import GitIgnoreSpec

from dupfinder.errors import UsageError, param
from dupfinder.paths import for_message
from dupfinder.scan.found import WalkProblems

# read in this order in each folder: later files (and later lines) win
IGNORE_FILES = (".gitignore", ".ignore", ".dupfinderignore")
Layers = tuple[tuple[int, "Patterns"], ...]


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
            raise UsageError(f"{param('exclude_from')} {for_message(name)}: {reason}") from None
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


def excluded(path: str, exclude: Patterns | None, layers: Layers) -> bool:
    """Whether ``path`` (relative, ``/`` after a folder) is excluded."""
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


@dataclass(frozen=True)
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


def size_ok(size: int, opts: WalkOptions) -> bool:
    """Whether a file of ``size`` bytes is within the size filters."""
    return size >= opts.min_size and (opts.max_size is None or size <= opts.max_size)


def folder_ignores(folder: str, names: set[str], problems: WalkProblems) -> Patterns | None:
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
