"""What a PostgreSQL connection failure means: a setting libpq refuses (the user's
mistake), a missing database, refused credentials, or a server that did not answer (the one
case the SQLite fallback is for), and a few words for people."""

from __future__ import annotations

import re

from dupfinder.errors import one_line

# libpq's complaints about connection settings it refuses before connecting, e.g.
# 'invalid sslmode value: "bogus"', 'invalid port number: "99999"', 'invalid connection
# option "foo"', 'invalid integer value "x" for connection option "connect_timeout"'.
_BAD_SETTING = re.compile(
    r"\binvalid (?:dsn|connection option|integer value|port number|[\w ]{1,40} value)\b"
)


def classify_pg_failure(exc: BaseException) -> str:
    """Sort a PostgreSQL connection failure: ``config``, ``missing-db``, ``auth`` or
    ``unreachable``. ``config`` (a setting libpq refuses) is the user's mistake and must never
    be taken for an unreachable server, which would fall back to SQLite."""
    msg = str(getattr(exc, "orig", exc)).lower()
    if _BAD_SETTING.search(msg):
        return "config"
    if "does not exist" in msg and "database" in msg:
        return "missing-db"
    if "password" in msg or "authentication" in msg or "role" in msg and "not exist" in msg:
        return "auth"
    if "no pg_hba.conf entry" in msg or "permission denied" in msg:
        return "auth"
    return "unreachable"


_GISTS = (("refused", "connection refused"), ("timeout", "timed out"),
          ("timed out", "timed out"), ("could not translate host name", "unknown host"),
          ("name or service not known", "unknown host"), ("no route", "no route to host"),
          ("network is unreachable", "network unreachable"))


def gist(exc: BaseException) -> str:
    """A few words for why a server could not be reached."""
    msg = str(getattr(exc, "orig", exc)).lower()
    for needle, words in _GISTS:
        if needle in msg:
            return words
    first = one_line(exc).split(";")[0].strip()
    return first if len(first) <= 60 else first[:57] + "..."
