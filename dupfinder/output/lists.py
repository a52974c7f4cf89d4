"""Writers for the other questions' answers: unique files and duplicate folders, as text,
JSON or CSV. Text shows paths in :func:`dupfinder.paths.display` form; JSON and CSV carry
the exact names as the duplicate-group writers do (:mod:`dupfinder.output.formats`): the
name itself when it is valid UTF-8, else JSON ``null`` with ``path_b64`` and
``path_display``, or an empty CSV ``path`` with the bytes in the last column,
``path_b64``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from dupfinder.db.folders import FolderGroup
from dupfinder.db.unique import UniqueFile
from dupfinder.output.formats import CsvWriter, csv_path, json_path, json_text
from dupfinder.paths import display
from dupfinder.units import human_size


def write_unique(files: Iterable[UniqueFile], out: TextIO, fmt: str) -> tuple[int, int]:
    """Stream unique files; returns (files, bytes) written."""
    n = nbytes = 0
    writer = CsvWriter(out) if fmt == "csv" else None
    if writer:
        writer.writerow(("path", "host", "size", "copies", "undecided", "path_b64"))
    elif fmt == "json":
        out.write('{"files": [')
    for f in files:
        if fmt == "text":
            note = " (not hashed yet: may have a copy)" if f.undecided else ""
            out.write(f"{human_size(f.size):>10}  {f.copies} "
                      f"{'copy' if f.copies == 1 else 'copies'}  "
                      f"{display(f.path)}{note}\n")
        elif writer:
            path, raw = csv_path(f.path)
            writer.writerow((path, f.host, f.size, f.copies, int(f.undecided), raw))
        else:
            doc: dict[str, Any] = {**json_path(f.path), "host": json_text(f.host),
                                   "size": f.size, "copies": f.copies}
            if f.undecided:
                doc["undecided"] = True
            out.write(("," if n else "") + "\n  " + json.dumps(doc))
        n += 1
        nbytes += f.size
    if fmt == "json":
        out.write(f'\n], "total_files": {n}, "total_bytes": {nbytes}}}\n')
    return n, nbytes


def write_folders(groups: list[FolderGroup], out: TextIO, fmt: str) -> int:
    """Write groups of duplicate folders; returns the reclaimable bytes."""
    wasted = sum(g.wasted for g in groups)
    if fmt == "json":
        out.write(json.dumps({
            "groups": [{"folders": [{**json_path(f.path), "host": json_text(f.host)}
                                    for f in g.folders],
                        "files": g.files, "size": g.size, "wasted": g.wasted}
                       for g in groups],
            "wasted_bytes": wasted}) + "\n")
        return wasted
    if fmt == "csv":
        writer = CsvWriter(out)
        writer.writerow(("group", "host", "path", "files", "size", "wasted", "path_b64"))
        for i, g in enumerate(groups, 1):
            writer.writerows((i, f.host, path, g.files, g.size, g.wasted, raw)
                             for f in g.folders for path, raw in (csv_path(f.path),))
        return wasted
    hosts = {f.host for g in groups for f in g.folders}
    for i, g in enumerate(groups, 1):
        out.write(f"group {i}: {len(g.folders)} folders of {g.files} "
                  f"{'file' if g.files == 1 else 'files'}, {human_size(g.size)} each, "
                  f"{human_size(g.wasted)} reclaimable\n")
        for f in g.folders:
            prefix = f"{f.host}: " if len(hosts) > 1 else ""
            out.write(f"  {prefix}{display(f.path)}\n")
        out.write("\n")
    return wasted
