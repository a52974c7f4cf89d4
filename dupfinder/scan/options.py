"""How to scan: the options, checked once when they are made, and the roots, resolved once.

A :class:`ScanOptions` value is checked in its constructor, so every one that exists is
valid and nothing downstream checks it again; it is frozen, so a scan that needs other
values (the watch's small batches, the catalogue's own files skipped) makes a copy and the
caller's stay as they were. :func:`resolve_roots` gives :class:`Roots`, which a scan takes
as they are: the command line resolves them before it opens the catalogue (a typo is an
error before any connection), and the scan does not resolve them a second time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from dupfinder.errors import UsageError, param
from dupfinder.paths import for_message
from dupfinder.scan.hashing import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PREFIX_SIZE,
)
from dupfinder.scan.walk import WalkOptions, normalize_roots
from dupfinder.scan.workers import MAX_PROCESSES, process_limit
from dupfinder.units import human_size, parse_size

# every worker allocates a read buffer this large up front: ``chunk_size="100GiB"`` would
# end in a MemoryError inside the workers, and reads beyond a few MiB are no faster
MAX_BUFFER = 256 << 20


@dataclass(frozen=True)
class ScanOptions:
    """How to scan (walk filters are in ``walk``); checked when made: a value that cannot
    work is a :class:`UsageError` naming the field."""

    walk: WalkOptions = field(default_factory=WalkOptions)
    algorithm: str = DEFAULT_ALGORITHM
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 1000
    chunk_size: int = DEFAULT_CHUNK_SIZE
    prefix_size: int = DEFAULT_PREFIX_SIZE
    start_method: str | None = None
    # SQLite: the longest a finished hash waits in memory before its commit (the most a
    # killed scan loses); PostgreSQL's workers commit each batch themselves
    commit_interval: float = 1.0

    def __post_init__(self) -> None:
        _check(self)


def _check(options: ScanOptions) -> None:
    if options.algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown algorithm '{options.algorithm}' (choose from {', '.join(ALGORITHMS)})"
        )
    if options.processes < 1:
        raise UsageError(f"{param('processes')} must be at least 1, not {options.processes}")
    limit = process_limit()
    if options.processes > limit:  # each worker holds a database connection of its own
        raise UsageError(f"{param('processes')} must be at most {limit} (4 per CPU, at most "
                         f"{MAX_PROCESSES}), not {options.processes}")
    if not 0 <= options.commit_interval <= 3600:
        raise UsageError(f"{param('commit_interval')} must be between 0 and 3600 seconds, not "
                         f"{options.commit_interval:g}")
    if options.batch_size < 1:
        raise UsageError(f"{param('batch_size')} must be at least 1, not {options.batch_size}")
    if options.chunk_size < 4096:
        raise UsageError(f"{param('chunk_size')} must be at least 4 KiB")
    for option, size in ((param("chunk_size"), options.chunk_size),
                         (param("prefix_size"), options.prefix_size)):
        if size > MAX_BUFFER:
            raise UsageError(f"{option} {human_size(size)} is too large: at most 256 MiB "
                             "(each worker holds a buffer of that size)")
    w = options.walk
    if w.max_size is not None and w.max_size < w.min_size:
        raise UsageError(f"{param('max_size')} is smaller than {param('min_size')}")
    if w.max_depth is not None and w.max_depth < 1:
        raise UsageError(f"{param('max_depth')} must be at least 1")


def make_options(*, min_size: int | str = 1, max_size: int | str | None = None,
                 include: Iterable[str] = (), exclude: Iterable[str] = (),
                 hidden: bool = True, follow_links: bool = False,
                 one_file_system: bool = False, max_depth: int | None = None,
                 ignore_files: bool = False, include_trash: bool = False,
                 algorithm: str = DEFAULT_ALGORITHM, processes: int | None = None,
                 batch_size: int = 1000, chunk_size: int | str = DEFAULT_CHUNK_SIZE,
                 prefix_size: int | str = DEFAULT_PREFIX_SIZE,
                 commit_interval: float = 1.0, start_method: str | None = None
                 ) -> ScanOptions:
    """Checked scan options from fields. Walk filters: ``min_size``, ``max_size``,
    ``include`` and ``exclude`` (gitignore patterns relative to each root), ``hidden``,
    ``follow_links``, ``one_file_system``, ``max_depth``, ``ignore_files``,
    ``include_trash``; hashing: ``algorithm``, ``processes`` (None: one per CPU),
    ``batch_size``, ``chunk_size``, ``prefix_size``, ``commit_interval``, ``start_method``.
    Sizes may be ``"10k"`` forms."""
    walk = WalkOptions(
        follow_links=follow_links, one_file_system=one_file_system, max_depth=max_depth,
        min_size=parse_size(min_size, param("min_size")),
        max_size=None if max_size is None else parse_size(max_size, param("max_size")),
        include=tuple(include), exclude=tuple(exclude), hidden=hidden,
        ignore_files=ignore_files, include_trash=include_trash)
    return ScanOptions(
        walk=walk, algorithm=algorithm, processes=processes or os.cpu_count() or 1,
        batch_size=batch_size, chunk_size=parse_size(chunk_size, param("chunk_size")),
        prefix_size=parse_size(prefix_size, param("prefix_size")),
        start_method=start_method, commit_interval=commit_interval)


@dataclass(frozen=True)
class Roots:
    """What a scan takes, as :func:`resolve_roots` checked it: absolute paths that exist
    and can be read, none under another, in the catalogue's path order."""

    paths: tuple[str, ...]


def resolve_roots(paths: Iterable[str | os.PathLike[str] | bytes]) -> Roots:
    """The roots of ``paths``; a path that does not exist or cannot be read is a usage
    error (a root we cannot list is an error, not a skip)."""
    names = [os.fsdecode(os.fspath(p)) for p in paths]
    if not names:
        raise UsageError("scan needs at least one PATH")
    for p in names:
        try:
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode):
                os.scandir(p).close()
            elif stat.S_ISREG(st.st_mode):
                os.close(os.open(p, os.O_RDONLY))
            else:
                raise UsageError(f"not a folder or regular file: {for_message(p)}")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if isinstance(exc, FileNotFoundError):
                reason = "broken symbolic link" if os.path.lexists(p) else \
                    "no such file or directory"
            raise UsageError(f"{reason.lower()}: {for_message(p)}") from exc
    return Roots(tuple(normalize_roots(names)))
