"""Writers for duplicate groups: text, fdupes, JSON and CSV. Each streams: it writes a group
as soon as it has it and keeps nothing else in memory.

Text, JSON and CSV show a path as :func:`dupfinder.paths.display` does (a backslash doubled,
undecodable bytes and control and bidi characters escaped), so no name can pass for another
or drive the terminal; fdupes prints the raw bytes, as fdupes does.
"""

from __future__ import annotations

import base64
import csv
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from dupfinder.db.queries import Group
from dupfinder.paths import display, is_utf8
from dupfinder.units import human_size

FORMATS = ("text", "fdupes", "json", "csv")
CSV_HEADER = ("group", "size", "hash", "algorithm", "host", "path", "mtime")


def iso_mtime(mtime_ns: int) -> str:
    """Modification time as ISO 8601 in UTC, to the microsecond."""
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """``singular`` for 1, else ``plural`` (default: ``singular`` + "s")."""
    return singular if n == 1 else (plural or f"{singular}s")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and its noun: "1 group", "2 groups", "0 files"."""
    return f"{n} {noun(n, singular, plural)}"


def write_text(groups: Iterable[Group], out: TextIO, show_host: bool = True
               ) -> tuple[int, int]:
    """A header per group (count, size, hash), then one path per line, as ``host: path``
    with ``show_host`` (for a catalogue of several hosts).

    Returns (groups, wasted bytes) written."""
    n = wasted = 0
    for g in groups:
        n += 1
        wasted += g.wasted
        out.write(f"group {g.number}: {count(len(g.files), 'file')}, {human_size(g.size)} "
                  f"each ({count(g.size, 'byte')}), {g.algorithm} {g.hash}, "
                  f"{human_size(g.wasted)} wasted\n")
        for f in g.files:
            out.write(f"  {f.host}: {display(f.path)}\n" if show_host
                      else f"  {display(f.path)}\n")
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


def json_path(path: str) -> dict[str, str]:
    """A path for JSON: ``path`` in display form, and for a name that is not valid UTF-8
    also ``path_b64``, its exact bytes in base64, because no JSON string can carry those
    bytes (and ``path`` alone reads like a name holding ``\\xNN``)."""
    doc = {"path": display(path)}
    if not is_utf8(path):
        doc["path_b64"] = base64.b64encode(os.fsencode(path)).decode("ascii")
    return doc


def json_file(path: str, host: str, mtime_ns: int) -> dict[str, str]:
    """One file of a JSON group."""
    return {**json_path(path), "host": host, "mtime": iso_mtime(mtime_ns)}


def write_json(groups: Iterable[Group], out: TextIO, meta: dict[str, object]) -> tuple[int, int]:
    """One JSON document: ``meta`` fields, then ``groups`` (size, hash, algorithm, wasted,
    files with path, [path_b64,] host, mtime), written group by group."""
    out.write("{")
    for key, value in meta.items():
        if key == "roots" and isinstance(value, list):
            # filesystem paths too: a lone surrogate would be an invalid JSON string
            value = [display(r) if isinstance(r, str) else r for r in value]
        out.write(f"{json.dumps(key)}: {json.dumps(value)}, ")
    out.write('"groups": [')
    n = wasted = 0
    for g in groups:
        doc = {
            "id": g.number, "size": g.size, "hash": g.hash, "algorithm": g.algorithm,
            "wasted": g.wasted,
            "files": [json_file(f.path, f.host, f.mtime_ns) for f in g.files],
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
