"""User-facing errors: every failure a user can cause becomes one line and an exit code."""

from __future__ import annotations

import logging

# Exit codes, shared by every command.
EXIT_ERROR = 1  # a runtime failure (database unreachable, I/O error, ...)
EXIT_USAGE = 2  # bad input: a missing path, a bad option, a bad config file
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

_secrets: set[str] = set()


class DupfinderError(Exception):
    """An error with a message meant for the user and the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return mask_secrets(super().__str__())


class UsageError(DupfinderError):
    """Bad input from the user: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class ConfigError(UsageError):
    """A configuration file or setting that cannot be used."""


class DatabaseError(DupfinderError):
    """The database cannot be reached or used."""


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
