"""How the library says how far it has got: one small protocol the caller passes in (the
command line's draws tqdm bars on the terminal), silent by default. The library itself never
writes to the terminal."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol


class Bar(Protocol):
    """One stage's progress."""

    def update(self, n: int = 1) -> object:
        """``n`` more files (or bytes) done."""


class Reporter(Protocol):
    """What the library reports to: bars for the stages of long work, and lines for a
    person (``warn``: something that went wrong without stopping the work; ``info``: what
    is worth knowing, such as the fall back to SQLite or an unmerged fallback catalogue).
    What a scan could not look at is in its summary, not reported line by line."""

    def bar(self, desc: str, total: int | None = None, unit: str = "files",
            position: int = 0) -> AbstractContextManager[Bar]:
        """A bar for the ``with`` block: ``desc`` names the stage, ``unit`` is ``files``
        or ``B``; ``position`` is its line among the bars shown at once."""

    def warn(self, line: str) -> None:
        """A line that matters."""

    def info(self, line: str) -> None:
        """A line worth knowing."""


class _NoBar:
    def update(self, n: int = 1) -> None:
        return None


class Silent:
    """Reports nothing."""

    def bar(self, desc: str, total: int | None = None, unit: str = "files",
            position: int = 0) -> AbstractContextManager[Bar]:
        return nullcontext(_NoBar())

    def warn(self, line: str) -> None:
        return None

    def info(self, line: str) -> None:
        return None


SILENT: Reporter = Silent()
