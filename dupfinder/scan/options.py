"""How to scan: the options, checked once with one clear line each, and the roots.

Chunk and prefix sizes are capped at 256 MiB: every worker allocates a buffer that large up
front, so ``--chunk-size 100GiB`` would end in a MemoryError inside the workers, and reads
beyond a few MiB are no faster anyway.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, fields
from typing import Any

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


@dataclass
class ScanOptions:
    """How to scan (walk filters are in ``walk``)."""

    walk: WalkOptions = field(default_factory=WalkOptions)
    algorithm: str = DEFAULT_ALGORITHM
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 1000
    chunk_size: int = DEFAULT_CHUNK_SIZE
    prefix_size: int = DEFAULT_PREFIX_SIZE
    start_method: str | None = None
    progress: bool = True
    # SQLite: the longest a finished hash waits in memory before its commit (the most a
    # killed scan loses); PostgreSQL's workers commit each batch themselves
    commit_interval: float = 1.0


def resolve_roots(paths: list[str]) -> list[str]:
    """Absolute, de-duplicated roots; a path that does not exist is a usage error."""
    if not paths:
        raise UsageError("scan needs at least one PATH")
    for p in paths:
        try:
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode):
                os.scandir(p).close()  # a root we cannot list is an error, not a skip
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
    return normalize_roots(paths)


MAX_BUFFER = 256 << 20


def check_options(options: ScanOptions) -> None:
    """Reject option values that cannot work, with one clear line.

    Chunk and prefix sizes are capped at 256 MiB: every worker allocates a buffer that large
    up front, so ``--chunk-size 100GiB`` would end in a MemoryError inside the workers, and
    reads beyond a few MiB are no faster anyway.
    """
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




def make_options(**options: Any) -> ScanOptions:
    """Checked scan options from keyword fields: walk filters (``min_size``, ``max_size``,
    ``include``, ``exclude``, ``hidden``, ``follow_links``, ``one_file_system``,
    ``max_depth``, ``ignore_files``, ``include_trash``) and hashing options (``algorithm``,
    ``processes``, ``batch_size``, ``chunk_size``, ``prefix_size``, ``commit_interval``,
    ``start_method``, ``progress``); sizes may be ``"10k"`` forms."""
    walk_keys = {f.name for f in fields(WalkOptions)} - {"skip_paths"}
    scan_keys = {f.name for f in fields(ScanOptions)} - {"walk"}
    unknown = set(options) - walk_keys - scan_keys
    if unknown:
        raise UsageError(f"unknown scan option(s): {', '.join(sorted(unknown))}")
    walk = {k: v for k, v in options.items() if k in walk_keys and v is not None}
    for key in ("min_size", "max_size"):
        if key in walk:
            walk[key] = parse_size(walk[key], param(key))
    for key in ("include", "exclude"):
        if key in walk:
            walk[key] = tuple(walk[key])
    scan = {k: v for k, v in options.items() if k in scan_keys and v is not None}
    for key in ("chunk_size", "prefix_size"):
        if key in scan:
            scan[key] = parse_size(scan[key], param(key))
    opts = ScanOptions(walk=WalkOptions(**walk), **scan)
    check_options(opts)
    return opts
