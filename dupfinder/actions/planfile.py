"""Plan files: a dedupe plan written as JSON for a person to review and edit, and read back.

``dupfinder dedupe ... --save-plan FILE`` writes one; ``dupfinder apply FILE`` carries out
exactly the entries left in it, with the same checks as ``dedupe --apply`` (the plan's host
must be this host, a move target outside the scanned folders, every file re-verified byte
for byte against the copy it keeps right before acting). Deleting entries therefore never
makes a plan unsafe: each entry names its own kept copy, which must still exist and match.

Paths are written as text, exactly, when they are valid UTF-8; a name that is not is shown
escaped and also gets ``path_b64``/``keep_b64``/``to_b64`` (its exact bytes in base64; for
the lists ``roots`` and ``prefer``, ``roots_b64``/``prefer_b64``), which win when reading.
Numbers must fit the catalogue's 64-bit columns; anything else malformed is one error
naming the file, before anything is journaled or touched.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dupfinder.actions.plan import Plan, Planned
from dupfinder.errors import SafetyError, UsageError, param
from dupfinder.paths import display, dot_segment, for_message, is_utf8
from dupfinder.states import Action, KeepPolicy

FORMAT = "dupfinder-plan"
VERSION = 1
_INT64 = 2**63  # sizes and times are stored as signed 64-bit integers
_HASH_MAX = 128  # the journal's hash column


def _path_fields(key: str, path: str) -> dict[str, str]:
    if is_utf8(path):
        return {key: path}
    return {key: display(path),
            f"{key}_b64": base64.b64encode(os.fsencode(path)).decode("ascii")}


def _list_fields(key: str, paths: list[str]) -> dict[str, list[str]]:
    """A list of paths as text, with ``<key>_b64`` (every path's bytes) when one of them
    is not valid UTF-8."""
    if all(is_utf8(p) for p in paths):
        return {key: list(paths)}
    return {key: [p if is_utf8(p) else display(p) for p in paths],
            f"{key}_b64": [base64.b64encode(os.fsencode(p)).decode("ascii") for p in paths]}


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-able document."""
    return {
        "format": FORMAT, "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": plan.host,
        "options": {**plan.options(),
                    **_list_fields("prefer", plan.prefer),
                    **_list_fields("roots", plan.roots),
                    **(_path_fields("to", plan.to) if plan.to else {"to": None})},
        "entries": [
            {"action": str(p.action), **_path_fields("path", p.path),
             **_path_fields("keep", p.kept), "size": p.size, "host": plan.host,
             "hash": p.full_hash, "mtime_ns": p.mtime_ns, "keep_mtime_ns": p.kept_mtime_ns}
            for p in plan
        ],
    }


def save_plan(plan: Plan, path: str) -> None:
    """Write the plan to ``path`` (replaced only once complete; never over a folder)."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{param('save_plan')} {for_message(path)} is a folder; give a file name")
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(plan_document(plan), indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{param('save_plan')} {for_message(path)}: {exc.strerror}") from exc


class _Reader:
    """Checks one document, naming the file and the entry in every complaint."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, what: str) -> UsageError:
        return UsageError(f"plan {for_message(self.name)}: {what}")

    def get(self, obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
            required: bool = True) -> Any:
        if key not in obj or obj[key] is None:
            if required:
                raise self.fail(f"{where}has no '{key}'")
            return None
        value = obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"{where}'{key}' has the wrong type")
        return value

    def integer(self, obj: dict[str, Any], key: str, where: str, low: int,
                required: bool = True) -> int | None:
        """An int in [low, 2**63): what the catalogue's 64-bit columns can hold."""
        value = self.get(obj, key, int, where, required)
        if value is not None and not low <= value < _INT64:
            raise self.fail(f"{where}'{key}' is out of range")
        return value

    def path(self, obj: dict[str, Any], key: str, where: str) -> str:
        raw = obj.get(f"{key}_b64")
        if raw is not None:
            return self._checked(self._b64(raw, f"{key}_b64", where), f"{key}_b64", where)
        return self._checked(self.get(obj, key, str, where), key, where)

    def paths(self, obj: dict[str, Any], key: str, where: str) -> list[str]:
        """An optional list of paths (``<key>_b64``, the exact bytes, wins)."""
        name = f"{key}_b64"
        raw = self.get(obj, name, list, where, required=False)
        if raw is not None:
            return [self._checked(self._b64(x, name, where), name, where) for x in raw]
        values = self.get(obj, key, list, where, required=False) or []
        if not all(isinstance(x, str) for x in values):
            raise self.fail(f"{where}'{key}' must be a list of paths")
        return [self._checked(x, key, where) for x in values]

    def _b64(self, raw: Any, name: str, where: str) -> str:
        if not isinstance(raw, str):
            raise self.fail(f"{where}'{name}' has the wrong type")
        try:
            return os.fsdecode(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise self.fail(f"{where}'{name}' is not base64") from exc

    def _checked(self, value: str, name: str, where: str) -> str:
        """The exact bytes must name an absolute path with no ``.`` or ``..`` segment, and no
        file name holds a NUL."""
        if not value.startswith("/"):
            raise self.fail(f"{where}'{name}' is not an absolute path")
        if "\0" in value:
            raise self.fail(f"{where}'{name}' holds a NUL character")
        if dot_segment(value):
            # the byte check would read the file the kernel resolves, a link made to it
            # would name the file the text names: two files
            raise self.fail(f"{where}'{name}' holds a '.' or '..' segment; give the path "
                            "without them")
        return value


def _current(path: str) -> tuple[int, int, int]:
    """(mtime_ns, device, inode) of a file now, zeros if it is gone (the entry is then
    skipped when applied)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0, 0
    return st.st_mtime_ns, st.st_dev, st.st_ino


def load_plan(path: str, host: str) -> Plan:
    """Read a plan file for ``host``: a malformed file is a :class:`UsageError` naming it, a
    plan made for another host a :class:`SafetyError`."""
    r = _Reader(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise r.fail("no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise r.fail(f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise r.fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}") from exc
    except RecursionError as exc:
        raise r.fail("invalid JSON: nested too deeply") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise r.fail(f"not a dupfinder plan (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise r.fail(f"plan version {doc.get('version')!r} is not one this dupfinder reads "
                     f"({VERSION})")
    plan_host = r.get(doc, "host", str, "")
    if plan_host != host:
        raise SafetyError(f"plan {for_message(path)} was made for host {plan_host}; only that "
                          f"host's own files can be acted on (this is {host})")
    opts = r.get(doc, "options", dict, "")
    try:
        action = Action(r.get(opts, "action", str, "options: "))
        keep = KeepPolicy(opts.get("keep") or KeepPolicy.OLDEST)
    except ValueError as exc:
        raise r.fail(f"options: {exc}") from exc
    roots = r.paths(opts, "roots", "options: ")
    to = None if opts.get("to") is None and opts.get("to_b64") is None \
        else r.path(opts, "to", "options: ")
    entries = r.get(doc, "entries", list, "")
    actions: list[Planned] = []
    for i, e in enumerate(entries, 1):
        where = f"entry {i}: "
        if not isinstance(e, dict):
            raise r.fail(f"{where}is not an object")
        if r.get(e, "action", str, where) != action:
            raise r.fail(f"{where}action '{e['action']}' differs from the plan's '{action}'")
        entry_host = r.get(e, "host", str, where, required=False)
        if entry_host not in (None, host):
            raise SafetyError(f"plan {for_message(path)}: {where}is a file of host "
                              f"{entry_host}; only this host's ({host}) can be acted on")
        p, kept = r.path(e, "path", where), r.path(e, "keep", where)
        if p == kept:
            raise r.fail(f"{where}'path' and 'keep' are the same file")
        size = r.integer(e, "size", where, 0)
        now_mtime, device, inode = _current(p)
        mtime = r.integer(e, "mtime_ns", where, -_INT64, required=False)
        kept_mtime = r.integer(e, "keep_mtime_ns", where, -_INT64, required=False)
        full_hash = r.get(e, "hash", str, where, False) or ""
        if len(full_hash) > _HASH_MAX:
            raise r.fail(f"{where}'hash' is longer than {_HASH_MAX} characters")
        actions.append(Planned(action, p, kept, size, full_hash,
                               now_mtime if mtime is None else mtime,
                               _current(kept)[0] if kept_mtime is None else kept_mtime,
                               device, inode))
    return Plan(host, action, keep, [], roots, to, 0, actions)
