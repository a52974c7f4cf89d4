"""Writers for duplicate groups: text, fdupes, JSON and CSV. Each streams: it writes a group
as soon as it has it and keeps nothing else in memory.

Text shows a path as :func:`dupfinder.paths.display` does (a backslash doubled, undecodable
bytes and control and bidi characters escaped), so no name can pass for another or drive the
terminal. JSON and CSV are for programs and carry the exact name: the name itself when it is
valid UTF-8 (JSON and CSV quoting take care of newlines, tabs, quotes and commas), else no
name at all (JSON ``null``, an empty CSV field: nothing a script could open by mistake) and
its exact bytes in base64 (``path_b64``), with JSON's ``path_display`` for people. fdupes
prints the raw bytes, as fdupes does.
"""

from __future__ import annotations

import base64
import csv
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from dupfinder.db.queries import Group
from dupfinder.paths import display, is_utf8
from dupfinder.units import human_size

FORMATS = ("text", "fdupes", "json", "csv")
CSV_HEADER = ("group", "size", "hash", "algorithm", "host", "path", "mtime", "path_b64")


_SECONDS: dict[int, str] = {}


def iso_mtime(mtime_ns: int) -> str:
    """Modification time as ISO 8601 in UTC, to the microsecond (``datetime.isoformat``'s
    form; the second's text is made once per distinct second, files share them)."""
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    text = _SECONDS.get(seconds)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        text = _SECONDS[seconds] = datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S")
    micros = nanos // 1000
    return f"{text}.{micros:06d}+00:00" if micros else f"{text}+00:00"


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


def b64(path: str) -> str:
    """A path's exact bytes, in base64."""
    return base64.b64encode(os.fsencode(path)).decode("ascii")


def json_path(path: str) -> dict[str, str | None]:
    """A path for JSON: ``path`` is the exact name when it is valid UTF-8 (json.dumps
    escapes newlines, tabs, quotes and backslashes itself). A name that is not valid UTF-8
    has undecodable bytes, which no JSON string can carry (and a lone surrogate must never
    reach json.dumps): then ``path`` is ``null``, so that no script opens a wrong file with
    it, ``path_b64`` holds the exact bytes in base64 and ``path_display`` the
    :func:`~dupfinder.paths.display` form, for people."""
    if is_utf8(path):
        return {"path": path}
    return {"path": None, "path_b64": b64(path), "path_display": display(path)}


def json_text(value: str) -> str:
    """A string that is not a path (a host label) for JSON: as it is, or in display form
    should it hold a lone surrogate, which no JSON string can carry."""
    return value if is_utf8(value) else display(value)


def json_roots(roots: list[str]) -> dict[str, list[str | None]]:
    """The scan roots of a JSON document, as :func:`json_path` gives one path: ``roots``
    lists the exact names, ``null`` for one that is not valid UTF-8; then, and only then,
    ``roots_b64`` (each root's bytes in base64, ``null`` for a UTF-8 one) and
    ``roots_display`` (each root's display form) follow, in the same order."""
    doc: dict[str, list[str | None]] = {"roots": [r if is_utf8(r) else None for r in roots]}
    if not all(is_utf8(r) for r in roots):
        doc["roots_b64"] = [None if is_utf8(r) else b64(r) for r in roots]
        doc["roots_display"] = [display(r) for r in roots]
    return doc


def csv_path(path: str) -> tuple[str, str]:
    """A path for CSV as (path, path_b64): the exact name and nothing, or, for a name that
    is not valid UTF-8, nothing (no file has an empty name) and its bytes in base64."""
    return (path, "") if is_utf8(path) else ("", b64(path))


class CsvWriter:
    """csv.writer with ``\\n`` line ends that also quotes a row holding ``\\r``: before
    Python 3.13 the csv module quotes only the line terminator's characters, so a bare
    ``\\r`` in a name would break the row for every reader. Other rows are written as
    csv.writer writes them (quoted only where needed)."""

    def __init__(self, out: TextIO) -> None:
        self._minimal = csv.writer(out, lineterminator="\n")
        self._all = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: Sequence[object]) -> None:
        cr = any(isinstance(v, str) and "\r" in v for v in row)
        (self._all if cr else self._minimal).writerow(row)

    def writerows(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.writerow(row)


def json_file(path: str, host: str, mtime_ns: int) -> dict[str, str | None]:
    """One file of a JSON group."""
    return {**json_path(path), "host": json_text(host), "mtime": iso_mtime(mtime_ns)}


def write_json(groups: Iterable[Group], out: TextIO, meta: dict[str, object]) -> tuple[int, int]:
    """One JSON document: ``meta`` fields, then ``groups`` (size, hash, algorithm, wasted,
    files with path (exact; ``null`` with path_b64 and path_display for a name that is
    not valid UTF-8), host, mtime), written group by group. The ``roots`` meta field is
    written as :func:`json_roots` gives it."""
    out.write("{")
    for key, value in meta.items():
        # filesystem paths and labels too: a lone surrogate must never reach json.dumps
        if key == "roots" and isinstance(value, list):
            fields: dict[str, object] = dict(json_roots(value))
        elif isinstance(value, str):
            fields = {key: json_text(value)}
        else:
            fields = {key: value}
        for k, v in fields.items():
            out.write(f"{json.dumps(k)}: {json.dumps(v)}, ")
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
    """One row per file with its group number (header: group,size,hash,...,path_b64): the
    exact name in ``path``, or for a name that is not valid UTF-8 an empty ``path`` and its
    bytes in base64 in ``path_b64`` (see :func:`csv_path`)."""
    writer = CsvWriter(out)
    writer.writerow(CSV_HEADER)
    n = wasted = 0
    for g in groups:
        n += 1
        wasted += g.wasted
        writer.writerows(
            (g.number, g.size, g.hash, g.algorithm, f.host, path, iso_mtime(f.mtime_ns), raw)
            for f in g.files
            for path, raw in (csv_path(f.path),)
        )
    return n, wasted
