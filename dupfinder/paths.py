"""File paths as dupfinder stores and shows them.

Linux file names are bytes. Python hands them over as ``str`` with undecodable bytes as lone
surrogates (``surrogateescape``). Databases cannot store lone surrogates, so the catalogue keeps
a text form in which a backslash is written ``\\\\`` and an undecodable byte ``0xNN`` is written
``\\xNN``. The mapping is exact both ways and preserves prefixes, so "every file under a folder"
is still a range query on the stored text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2})")
_NEEDS_ESCAPE = re.compile("[\\\\\udc80-\udcff]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch == "\\":
        return "\\\\"
    return f"\\x{ord(ch) - 0xDC00:02x}"


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    return chr(0xDC00 + int(code[1:], 16))


def to_db(path: str) -> str:
    """Encode a filesystem path (``str`` with surrogate escapes) for the catalogue."""
    if _NEEDS_ESCAPE.search(path) is None:
        return path
    return _NEEDS_ESCAPE.sub(_escape, path)


def from_db(text: str) -> str:
    """Decode a catalogue path back into a filesystem path usable with ``open``."""
    if "\\" not in text:
        return text
    return _ESCAPED.sub(_unescape, text)


def subtree_range(root: str) -> tuple[str, str]:
    """The half-open range [lo, hi) of catalogue paths strictly below folder ``root``.

    ``root`` is in catalogue form. '/' is followed by '0' in byte order, so every path
    that starts with ``root + '/'`` sorts inside the range (the column uses byte order).
    """
    base = root.rstrip("/")
    return base + "/", base + "0"


def absolute(path: str) -> str:
    """``~`` expanded and made absolute (not resolved: links in the path stay)."""
    return os.path.abspath(os.path.expanduser(path))


def is_under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (plain string test, either form)."""
    base = folder.rstrip("/")
    return path == folder or path.startswith(base + "/")


def db_roots(roots: Sequence[str] | None) -> list[str] | None:
    """Filesystem roots in catalogue form, or None for "no restriction"."""
    return [to_db(r) for r in roots] if roots else None


def display(path: str) -> str:
    """A printable form of a path: undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def for_message(path: str) -> str:
    """A path for a one-line message: like :func:`display`, and control characters such
    as a newline in a file name are shown as escapes so the message stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], display(path))
