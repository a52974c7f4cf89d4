"""Filesystem paths as dupfinder takes and shows them.

Linux file names are bytes; Python hands them over as ``str`` with undecodable bytes as lone
surrogates (``surrogateescape``), and that is the one path form the library speaks. The
catalogue's stored form lives in :mod:`dupfinder.db.stored_paths` and never leaves
``dupfinder/db/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TypeAlias

# what the library accepts wherever it takes a path: str, pathlib.Path or raw bytes
PathArg: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def fspath(path: PathArg) -> str:
    """Any accepted path as the library's one form: ``str`` with surrogate escapes."""
    return os.fsdecode(os.fspath(path))


def absolute(path: PathArg) -> str:
    """``~`` expanded and made absolute, naming the file the kernel would open.

    Links in the path stay, except before a ``..``: the kernel takes ``lnk/..`` as the
    parent of the link's target, not as the folder holding ``lnk``, so everything up to
    the last ``..`` is resolved (``os.path.abspath`` alone would name another file)."""
    p = os.path.expanduser(fspath(path))
    if not os.path.isabs(p):
        p = os.path.join(os.getcwd(), p)
    parts = p.split("/")
    if ".." in parts:
        last = len(parts) - parts[::-1].index("..")
        p = "/".join([os.path.realpath("/".join(parts[:last]) or "/"), *parts[last:]])
    return os.path.normpath(p)


def dot_segment(path: str) -> bool:
    """Whether ``path`` holds a ``.`` or ``..`` segment (text and kernel may disagree on
    which file it names)."""
    return any(part in (".", "..") for part in path.split("/"))


def is_under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (plain string test, either form)."""
    base = folder.rstrip("/")
    return path == folder or path.startswith(base + "/")


def outermost(paths: Iterable[str]) -> list[str]:
    """``paths`` once each, without any that lies below another (shortest first; plain
    string test, either form)."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(is_under(path, k) for k in kept):
            kept.append(path)
    return kept


# What display() escapes. A backslash, so that an escape can never be confused with the
# same characters in a name. Lone surrogates: undecodable bytes (\udc80-\udcff, from
# surrogateescape) and, defensively, any other. C0, DEL and C1 controls: a terminal obeys
# them (ESC starts a sequence, a newline breaks a line). Bidi controls (U+061C, U+200E,
# U+200F, U+202A-U+202E, U+2066-U+2069), which reorder what follows so that a name can
# look like another (``evil\u202etxt.exe`` shows as "evilexe.txt"), and the line and
# paragraph separators U+2028/U+2029, which some terminals and editors break lines at.
_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u2028\u2029\ud800-\udfff]"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _show(match: re.Match[str]) -> str:
    ch = match.group(0)
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte: \xNN is always >= \x80 ...
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # ... and a C0 control or DEL is always below, so they never clash
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"  # C1 controls (not \xNN: that is a byte), bidi, separators


def display(path: str) -> str:
    """A form of a path that is safe to print and says exactly which name it is.

    Text, CSV, JSON ``path``, the HTML report and every message use this one form, so a
    name reads the same everywhere. Names are shown as they are except that a backslash
    is doubled (``\\\\``), an undecodable byte is ``\\xNN`` (always 80-ff), a newline, CR or
    tab is ``\\n``, ``\\r``, ``\\t``, any other C0 control or DEL is ``\\xNN`` (00-1f, 7f),
    and C1 controls, bidi controls and U+2028/U+2029 are ``\\uNNNN``. Doubling the backslash
    keeps the byte ``0xff`` (shown ``\\xff``) apart from the four characters ``\\xff`` in a
    name (shown ``\\\\xff``); the mapping is one-to-one, so the name can be recovered. Escaping
    controls stops a file name from moving the cursor, recolouring or clearing the terminal,
    or breaking a line; escaping bidi controls stops it from reordering what is shown.
    """
    if _UNSAFE.search(path) is None:
        return path
    return _UNSAFE.sub(_show, path)


def for_message(path: str) -> str:
    """A path inside a one-line message: the same form as :func:`display` (kept as its
    own name so that message call sites say what they are for)."""
    return display(path)


def is_utf8(path: str) -> bool:
    """Whether a filesystem path is valid UTF-8, i.e. holds no undecodable byte; when it
    does not, :func:`display` alone cannot hand a program the exact bytes back."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Folders that hold deleted files: the freedesktop trash of a volume (.Trash-UID, and
# .Trash/UID), macOS's (.Trash, .Trashes), Windows' ($RECYCLE.BIN, RECYCLER)
_TRASH_NAME = re.compile(r"\.Trash(?:-\d+)?|\.Trashes|(?i:\$RECYCLE\.BIN|RECYCLER)")
# a path that holds none of these cannot be in a trash (asked for every file of a plan)
_TRASH_HINT = re.compile(r"Trash|(?i:RECYCLE)")


def _home_trash() -> str:
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "Trash")


def trash_folder(path: str) -> bool:
    """Whether the folder ``path`` is a trash folder: one of the names trashes have, or a
    home trash (``~/.local/share/Trash``, ``$XDG_DATA_HOME/Trash``)."""
    if _TRASH_HINT.search(path) is None:
        return False
    return (_TRASH_NAME.fullmatch(os.path.basename(path)) is not None
            or path.endswith("/.local/share/Trash") or path == _home_trash())


def in_trash(path: str) -> bool:
    """Whether ``path`` lies in a trash folder (see :func:`trash_folder`)."""
    if _TRASH_HINT.search(path) is None:
        return False
    if "/.local/share/Trash/" in path or is_under(path, _home_trash()):
        return True
    return any(_TRASH_NAME.fullmatch(part) for part in path.split("/")[:-1])
