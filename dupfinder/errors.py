"""The library's errors: each carries one line meant for a person, never an exit code
(the command line maps error classes to exit codes), and never a password."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

_secrets: set[str] = set()

# a field named in a message, between two NULs: no path in a message holds one (messages show
# paths in display form, which escapes every control character)
_FIELD = re.compile("\x00([^\x00]+)\x00")


def param(name: str) -> str:
    """``name`` (an option's field, as a Python caller passes it: ``min_size``) in a message.
    The library shows it as the field's name; the command line shows the flag that sets it
    (``--min-size``), through its table in :mod:`dupfinder.commands.flags`. A name may carry
    what the flag's value stands for after a space (``"to DIR"``): the library shows only
    the name."""
    return f"\x00{name}\x00"


def in_words(text: str, names: Mapping[str, str] | None = None) -> str:
    """``text`` with its fields shown by ``names`` (the command line's flags), or as the
    fields' own names."""
    if names is None:
        return _FIELD.sub(lambda m: m.group(1).split(" ")[0], text)
    return _FIELD.sub(lambda m: names.get(m.group(1), m.group(1).split(" ")[0]), text)


class DupfinderError(Exception):
    """An error with a message meant for the user."""

    def __str__(self) -> str:
        return mask_secrets(in_words(super().__str__()))

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with its fields shown by ``names``."""
        return mask_secrets(in_words(super().__str__(), names))


class UsageError(DupfinderError):
    """Bad input: a missing path, a bad option or argument."""


class ConfigError(UsageError):
    """A configuration file or setting that cannot be used."""


class SafetyError(UsageError):
    """A request that would break one of the rules that keep files safe (act only on this
    host's files, keep move targets outside the scanned folders, undo only a run's own
    host's actions, one action run at a time)."""


class DatabaseError(DupfinderError):
    """The database cannot be used."""


class DatabaseUnreachable(DatabaseError):
    """The database server did not answer (the one case the SQLite fallback is for)."""


def register_secret(secret: str | None) -> None:
    """Remember a secret (a database password) so that no message ever shows it."""
    if secret and len(secret) >= 3:
        _secrets.add(secret)


def mask_secrets(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def one_line(exc: BaseException) -> str:
    """Squeeze an exception message into one line without secrets."""
    text = str(getattr(exc, "orig", None) or exc)
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    # psycopg2 puts the useful part of a connection failure on its own lines
    return mask_secrets("; ".join(parts)[:500]) or type(exc).__name__


def quiet_library_logs() -> None:
    """Keep library log records (e.g. SQLAlchemy's pool complaining, with a traceback, about
    a connection lost while closing) off the user's terminal: errors reach the user once,
    as one line, through :class:`DupfinderError`."""
    for name in ("sqlalchemy", "sqlalchemy.pool"):
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
