"""The self-contained HTML report: one file, works offline, data embedded as inert JSON.

File names are data, never markup: Jinja2 autoescapes the page, the JSON is escaped so that
``</script>`` or ``<!--`` in a name cannot end its script element, the page script only ever
puts names into the DOM as text, and a Content-Security-Policy with a per-report nonce
stops any script but the report's own. Every name and root is in the display form of
:func:`dupfinder.paths.display`: undecodable bytes, controls and bidi controls show as visible
escapes (a right-to-left override cannot reorder a name), and nothing holds a lone surrogate,
which UTF-8 cannot encode.

A person can tick copies on the page (never a group's kept copy) and download them as a plan
file in the format of :mod:`dupfinder.actions.planfile`, for ``dupfinder apply FILE``: the
page turns each display form back into the name's exact bytes (``path_b64``/``keep_b64``),
and each file carries its exact nanosecond mtime, which ``apply`` re-checks.

The page also lists the duplicate folders of the selection (:mod:`dupfinder.db.folders`:
folders holding the same files, topmost matches only), with the bytes removing all but one
folder of each group would free, each byte counted once.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from dupfinder import __version__
from dupfinder.actions.plan import keeper
from dupfinder.db.folders import FolderGroup
from dupfinder.db.queries import Group
from dupfinder.db.report_source import ReportSource
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
    """One file of a group as the page reads it (serialised as a compact JSON array: field
    names repeated in every file would make a large report much larger).

    ``mtime_ns`` is the exact modification time a plan file made from the page records
    (``dupfinder apply`` re-checks it); it is a decimal string because a JavaScript number
    holds only 53 bits and would round it. New fields go at the end, so readers of the
    older arrays keep working."""

    path: str
    host: str
    mtime: int  # seconds
    mtime_ns: str  # nanoseconds, exact, as a decimal string


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
    files = [ReportFile(display(f.path), f.host, f.mtime_ns // 1_000_000_000, str(f.mtime_ns))
             for f in g.files]
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


class ReportFolderGroup(NamedTuple):
    """One group of duplicate folders as the page reads it (a JSON array): ``files`` and
    ``size`` are one folder's, ``wasted`` the size of all but one; ``folders`` are
    ``[path, host]`` pairs in display form."""

    size: int
    files: int
    wasted: int
    folders: list[tuple[str, str]]


def _folder_group(g: FolderGroup) -> ReportFolderGroup:
    return ReportFolderGroup(g.size, g.files, g.wasted,
                             [(display(f.path), f.host) for f in g.folders])


def folder_reclaimable(groups: list[FolderGroup]) -> int:
    """The bytes removing all but one folder of each group frees, each byte once.

    A group's ``wasted`` can overlap an enclosing group's (its folders lie partly inside
    another group's folders), so the sum would count bytes twice. Groups are taken outer
    first (a nested folder holds fewer files); of a group, only the folders not inside a
    folder already removed count, and the one kept is the one holding the most other listed
    folders (so that their groups still have all their copies)."""

    def above(f: tuple[str, str]) -> Iterator[tuple[str, str]]:  # its ancestor folders
        path, host = f
        while path not in ("/", ""):
            path = path.rpartition("/")[0] or "/"
            yield path, host

    below: Counter[tuple[str, str]] = Counter()  # folder -> listed folders inside it
    for g in groups:
        for f in g.folders:
            below.update(above((f.path, f.host)))
    removed: set[tuple[str, str]] = set()
    total = 0
    for g in sorted(groups, key=lambda g: (-g.size, -g.files)):
        alive = [(f.path, f.host) for f in g.folders]
        alive = [f for f in alive if f not in removed and removed.isdisjoint(above(f))]
        if len(alive) < 2:
            continue
        kept = max(alive, key=lambda d: below[d])
        removed.update(f for f in alive if f != kept)
        total += g.size * (len(alive) - 1)
    return total


class _Parts(NamedTuple):
    """The report's data: ``head`` (the small keys) now, ``groups`` and ``files`` as
    streams from the database (consume ``groups`` first), ``tail`` (the keys that need the
    streams seen) once they are done."""

    head: dict[str, Any]
    groups: Iterator[ReportGroup]
    files: Iterator[ListedFile]
    tail: Callable[[], dict[str, Any]]


@contextmanager
def _parts(src: ReportSource, all_files_cap: int, keep: KeepPolicy) -> Iterator[_Parts]:
    """Everything the page shows, with the groups and the listed files streamed as
    ``src`` gives them."""
    st, scans, folder_groups = src.stats, [dict(sc) for sc in src.scans], src.folder_groups
    for sc in scans:  # filesystem paths as the scan was given them
        sc["roots"] = [display(r) for r in sc["roots"] or []]
    exts: Counter[str] = Counter()
    listed = 0

    def groups() -> Iterator[ReportGroup]:
        for g in src.groups():
            group = _group(g, keep)
            exts.update(_ext(f.path) for f in group.files)
            yield group

    def files() -> Iterator[ListedFile]:
        nonlocal listed
        for f in src.files(all_files_cap + 1):
            listed += 1
            if listed > all_files_cap:
                return
            shown = ListedFile(display(f.path), f.size, f.host, f.mtime_ns // 1_000_000_000)
            exts.update((_ext(shown.path),))
            yield shown

    head = {
        "summary": {"files": st.files, "bytes": st.bytes, "groups": st.groups,
                    "files_in_groups": st.files_in_groups, "wasted": st.wasted,
                    "folder_groups": len(folder_groups),
                    "folder_wasted": folder_reclaimable(folder_groups)},
        "hosts": st.hosts,
        "keep_policy": str(KeepPolicy(keep)),
    }
    yield _Parts(head, groups(), files(), lambda: {
        "files_truncated": listed > all_files_cap,
        "extensions": [e for e, _ in exts.most_common(200)],
        "scans": scans,
        "folder_groups": [_folder_group(g) for g in folder_groups],
    })


def report_data(src: ReportSource, all_files_cap: int = ALL_FILES_CAP,
                keep: KeepPolicy = KeepPolicy.OLDEST) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data held in memory (the report file
    itself is written from the same parts as a stream); each group marks the copy that
    ``keep`` would keep (as :func:`dupfinder.actions.plan.keeper` chooses it)."""
    with _parts(src, all_files_cap, keep) as parts:
        data = {**parts.head, "groups": list(parts.groups), "files": list(parts.files)}
        return {**data, **parts.tail()}


def _json_pieces(parts: _Parts) -> Iterator[str]:
    """The data as script-safe JSON text, a group or a file at a time."""
    yield script_safe_json(parts.head)[:-1]  # the object stays open
    for key, items in (("groups", parts.groups), ("files", parts.files)):
        yield f',"{key}":['
        first = True
        for item in items:
            yield script_safe_json(item) if first else "," + script_safe_json(item)
            first = False
        yield "]"
    yield "," + script_safe_json(parts.tail())[1:]


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def render_report(data: dict[str, Any], source: str, title: str) -> str:
    """The HTML page for ``data``."""
    head, tail = _page(source, title)
    return head + script_safe_json(data) + tail


_SLOT = "\x00dupfinder-report-data\x00"


def _page(source: str, title: str) -> tuple[str, str]:
    """The page around its data: (up to the data's script element, from its end)."""
    env = Environment(loader=PackageLoader("dupfinder.output", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.get_template("report.html.j2")
    page = template.render(
        data_json=Markup(_SLOT), source=source, title=title,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), version=__version__,
        nonce=secrets.token_urlsafe(16),
    )
    head, slot, tail = page.partition(_SLOT)
    assert slot and _SLOT not in tail, "the report template must hold data_json once"
    return head, tail


def write_report(src: ReportSource, path: str, keep: KeepPolicy = KeepPolicy.OLDEST
                 ) -> ReportInfo:
    """Write the report of ``src`` to ``path``, streaming its groups into the file; the file
    is replaced only once it is complete."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"report: {for_message(path)} is a folder; give a file name such as "
                         "report.html")
    if not target.parent.is_dir():
        raise UsageError(f"report: folder {for_message(str(target.parent))} does not exist")
    what = ", ".join(display(r) for r in src.roots) if src.roots else "the whole catalogue"
    head, tail = _page(f"{what} in {src.where}", what)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        with _parts(src, ALL_FILES_CAP, keep) as parts, \
                open(tmp, "w", encoding="utf-8", buffering=1 << 20) as out:
            out.write(head)
            out.writelines(_json_pieces(parts))
            out.write(tail)
        size = tmp.stat().st_size
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"report: cannot write {for_message(path)}: {exc.strerror}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    summary = parts.head["summary"]
    return ReportInfo(str(target), summary["groups"], summary["files"], size)
