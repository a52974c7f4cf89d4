"""The self-contained HTML report: one file, works offline, data embedded as inert JSON.

File names are data, never markup: Jinja2 autoescapes the page, the JSON is escaped so that
``</script>`` or ``<!--`` in a name cannot end its script element, the page script only ever
puts names into the DOM as text, and a Content-Security-Policy with a per-report nonce
stops any script but the report's own. Every name and root is in the display form of
:func:`dupfinder.paths.display`: undecodable bytes, controls and bidi controls show as visible
escapes (a right-to-left override cannot reorder a name), and nothing holds a lone surrogate,
which UTF-8 cannot encode.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from dupfinder import __version__
from dupfinder.actions.plan import keeper
from dupfinder.config import mask_url
from dupfinder.db.engine import Database
from dupfinder.db.queries import (
    EVERYTHING,
    Group,
    Selection,
    iter_files,
    iter_groups,
    scan_overview,
    stats,
)
from dupfinder.errors import UsageError
from dupfinder.paths import display, for_message
from dupfinder.states import KeepPolicy

# The "all files" view embeds at most this many non-duplicate files (the page must stay
# quick to open); duplicates are always complete.
ALL_FILES_CAP = 200_000
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass
class ReportInfo:
    """What a written report holds."""

    path: str
    groups: int
    files: int
    bytes: int


def script_safe_json(data: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survive."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


class ReportFile(NamedTuple):
    """One file of a group as the page reads it (serialised as a compact JSON array: a
    report of 1M files is ~50 MB, and field names would add a third)."""

    path: str
    host: str
    mtime: int  # seconds


class ReportGroup(NamedTuple):
    """One duplicate group as the page reads it (a JSON array, like :class:`ReportFile`).

    ``keep`` is the index in ``files`` of the copy a dedupe with the report's keep policy
    would keep. ``links`` is ``None`` when every file is its own inode (the usual case);
    otherwise it gives each file the number of its inode within the group, so hard links
    (one file already, nothing wasted) can be told from copies."""

    size: int
    hash: str
    algorithm: str
    wasted: int
    files: list[ReportFile]
    keep: int
    links: list[int] | None


def _group(g: Group, keep: KeepPolicy) -> ReportGroup:
    files = [ReportFile(display(f.path), f.host, f.mtime_ns // 1_000_000_000) for f in g.files]
    kept = keeper(g.files, keep)
    inodes: dict[tuple[str, int, int], int] = {}
    links = [inodes.setdefault((f.host, f.device, f.inode), len(inodes)) for f in g.files]
    return ReportGroup(g.size, g.hash, g.algorithm, g.wasted, files, g.files.index(kept),
                       links if len(inodes) < len(links) else None)


class ListedFile(NamedTuple):
    """One file of the "all files" view (a JSON array)."""

    path: str
    size: int
    host: str
    mtime: int  # seconds


def report_data(db: Database, sel: Selection = EVERYTHING,
                all_files_cap: int = ALL_FILES_CAP,
                keep: KeepPolicy = KeepPolicy.OLDEST) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data; each group marks the copy that
    ``keep`` would keep (as :func:`dupfinder.actions.plan.keeper` chooses it)."""
    with db.session() as s:
        st = stats(s, sel, top=0)
        groups: list[ReportGroup] = []
        exts: Counter[str] = Counter()
        for g in iter_groups(s, sel):
            group = _group(g, keep)
            exts.update(_ext(f.path) for f in group.files)
            groups.append(group)
        all_files = [ListedFile(display(f.path), f.size, f.host, f.mtime_ns // 1_000_000_000)
                     for f in iter_files(s, sel, limit=all_files_cap + 1)]
        exts.update(_ext(f.path) for f in all_files)
        scans = scan_overview(s)
    for sc in scans:  # filesystem paths as the scan was given them
        sc["roots"] = [display(r) for r in sc["roots"] or []]
    truncated = len(all_files) > all_files_cap
    return {
        "summary": {"files": st.files, "bytes": st.bytes, "groups": st.groups,
                    "files_in_groups": st.files_in_groups, "wasted": st.wasted},
        "hosts": st.hosts,
        "keep_policy": str(KeepPolicy(keep)),
        "groups": groups,
        "files": all_files[:all_files_cap],
        "files_truncated": truncated,
        "extensions": [e for e, _ in exts.most_common(200)],
        "scans": scans,
    }


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def render_report(data: dict[str, Any], source: str, title: str) -> str:
    """The HTML page for ``data``."""
    env = Environment(loader=PackageLoader("dupfinder.output", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.get_template("report.html.j2")
    return template.render(
        # already escaped for its place inside <script> by script_safe_json
        data_json=Markup(script_safe_json(data)), source=source, title=title,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), version=__version__,
        nonce=secrets.token_urlsafe(16),
    )


def write_report(db: Database, path: str, sel: Selection = EVERYTHING) -> ReportInfo:
    """Write the report of the selected files of the catalogue to ``path``; the file is
    replaced only once it is complete."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"report: {for_message(path)} is a folder; give a file name such as "
                         "report.html")
    if not target.parent.is_dir():
        raise UsageError(f"report: folder {for_message(str(target.parent))} does not exist")
    data = report_data(db, sel)
    what = ", ".join(display(r) for r in sel.roots) if sel.roots else "the whole catalogue"
    html = render_report(data, f"{what} in {mask_url(db.url)}", what)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"report: cannot write {for_message(path)}: {exc.strerror}") from exc
    s = data["summary"]
    return ReportInfo(str(target), s["groups"], s["files"], len(html.encode("utf-8")))
