"""Writers for duplicate groups: text, fdupes, JSON and CSV. Each streams: it writes a group
as soon as it has it and keeps nothing else in memory."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from dupfinder.db.queries import Group
from dupfinder.paths import display
from dupfinder.units import human_size

FORMATS = ("text", "fdupes", "json", "csv")
CSV_HEADER = ("group", "size", "hash", "algorithm", "host", "path", "mtime")


def iso_mtime(mtime_ns: int) -> str:
    """Modification time as ISO 8601 in UTC, to the microsecond."""
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()


def write_text(groups: Iterable[Group], out: TextIO) -> tuple[int, int]:
    """A header per group (count, size, hash), then one ``host: path`` per line.

    Returns (groups, wasted bytes) written."""
    n = wasted = 0
    for g in groups:
        n += 1
        wasted += g.wasted
        out.write(f"group {g.number}: {len(g.files)} files, {human_size(g.size)} each "
                  f"({g.size} bytes), {g.algorithm} {g.hash}, "
                  f"{human_size(g.wasted)} wasted\n")
        for f in g.files:
            out.write(f"  {f.host}: {display(f.path)}\n")
        out.write("\n")
    return n, wasted


def write_fdupes(groups: Iterable[Group], out: BinaryIO) -> tuple[int, int]:
    """Exactly as fdupes prints: each group's paths (raw bytes), then an empty line."""
    n = wasted = 0
    for g in groups:
        n += 1
        wasted += g.wasted
        out.write(b"".join(os.fsencode(f.path) + b"\n" for f in g.files) + b"\n")
    return n, wasted


def write_json(groups: Iterable[Group], out: TextIO, meta: dict[str, object]) -> tuple[int, int]:
    """One JSON document: ``meta`` fields, then ``groups`` (size, hash, algorithm, wasted,
    files with path, host, mtime), written group by group."""
    out.write("{")
    for key, value in meta.items():
        out.write(f"{json.dumps(key)}: {json.dumps(value)}, ")
    out.write('"groups": [')
    n = wasted = 0
    for g in groups:
        doc = {
            "id": g.number, "size": g.size, "hash": g.hash, "algorithm": g.algorithm,
            "wasted": g.wasted,
            "files": [{"path": display(f.path), "host": f.host, "mtime": iso_mtime(f.mtime_ns)}
                      for f in g.files],
        }
        out.write(("," if n else "") + "\n  " + json.dumps(doc))
        n += 1
        wasted += g.wasted
    out.write(f'\n], "group_count": {n}, "wasted_bytes": {wasted}}}\n')
    return n, wasted


def write_csv(groups: Iterable[Group], out: TextIO) -> tuple[int, int]:
    """One row per file with its group number (header: group,size,hash,...)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    n = wasted = 0
    for g in groups:
        n += 1
        wasted += g.wasted
        writer.writerows(
            (g.number, g.size, g.hash, g.algorithm, f.host, display(f.path),
             iso_mtime(f.mtime_ns))
            for f in g.files
        )
    return n, wasted
