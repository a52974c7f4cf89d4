"""Writers for the other questions' answers: unique files and duplicate folders, as text,
JSON or CSV (paths in :func:`dupfinder.paths.display` form; JSON adds ``path_b64`` for a
name that is not valid UTF-8, as the duplicate-group writers do)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from dupfinder.db.folders import FolderGroup
from dupfinder.db.unique import UniqueFile
from dupfinder.output.formats import json_path
from dupfinder.paths import display
from dupfinder.units import human_size


def write_unique(files: Iterable[UniqueFile], out: TextIO, fmt: str) -> tuple[int, int]:
    """Stream unique files; returns (files, bytes) written."""
    n = nbytes = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(("path", "host", "size", "copies", "undecided"))
    elif fmt == "json":
        out.write('{"files": [')
    for f in files:
        if fmt == "text":
            note = " (not hashed yet: may have a copy)" if f.undecided else ""
            out.write(f"{human_size(f.size):>10}  {f.copies} "
                      f"{'copy' if f.copies == 1 else 'copies'}  "
                      f"{display(f.path)}{note}\n")
        elif writer:
            writer.writerow((display(f.path), f.host, f.size, f.copies,
                             int(f.undecided)))
        else:
            doc: dict[str, Any] = {**json_path(f.path), "host": f.host, "size": f.size,
                                   "copies": f.copies}
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
            "groups": [{"folders": [{**json_path(f.path), "host": f.host} for f in g.folders],
                        "files": g.files, "size": g.size, "wasted": g.wasted}
                       for g in groups],
            "wasted_bytes": wasted}) + "\n")
        return wasted
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("group", "host", "path", "files", "size", "wasted"))
        for i, g in enumerate(groups, 1):
            writer.writerows((i, f.host, display(f.path), g.files, g.size, g.wasted)
                             for f in g.folders)
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
