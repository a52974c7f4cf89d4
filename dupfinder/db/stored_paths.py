"""The catalogue's path form, which never leaves ``dupfinder/db/``.

Linux file names are bytes. Python hands them over as ``str`` with undecodable bytes as lone
surrogates (``surrogateescape``). Databases cannot store lone surrogates, so the catalogue keeps
a text form in which a backslash is written ``\\\\`` and an undecodable byte ``0xNN`` is written
``\\xNN``. The mapping is exact both ways and preserves prefixes, so "every file under a folder"
is still a range query on the stored text.

Everything above this package speaks filesystem paths. The stored form has its own type,
:class:`DbPath`, so a type checker catches a filesystem path handed to a query that wants the
stored form (the bug that made "files under a folder" work only for ASCII names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NewType

DbPath = NewType("DbPath", str)

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


def to_db(path: str) -> DbPath:
    """Encode a filesystem path (``str`` with surrogate escapes) for the catalogue."""
    if _NEEDS_ESCAPE.search(path) is None:
        return DbPath(path)
    return DbPath(_NEEDS_ESCAPE.sub(_escape, path))


def from_db(text: str) -> str:
    """Decode a catalogue path back into a filesystem path usable with ``open``."""
    if "\\" not in text:
        return text
    return _ESCAPED.sub(_unescape, text)


def maybe_from_db(text: str | None) -> str | None:
    """:func:`from_db` for a nullable column."""
    return None if text is None else from_db(text)


def db_roots(roots: Iterable[str] | None) -> list[DbPath]:
    """Filesystem folders in catalogue form (an empty list for "no restriction")."""
    return [to_db(r) for r in roots] if roots else []


def subtree_range(root: DbPath) -> tuple[str, str]:
    """The half-open range [lo, hi) of catalogue paths strictly below folder ``root``.

    '/' is followed by '0' in byte order, so every path that starts with ``root + '/'``
    sorts inside the range (the column uses byte order).
    """
    base = root.rstrip("/")
    return base + "/", base + "0"


def order_key(text: str) -> str:
    """The key by which the catalogue orders ``text`` (a filesystem path or name): its
    stored form, compared code point by code point, which is byte order in UTF-8, the
    order of SQLite's BINARY and PostgreSQL's "C" collation. A walk that sorts by it
    yields paths in the (host, path) index's own order."""
    return to_db(text)
