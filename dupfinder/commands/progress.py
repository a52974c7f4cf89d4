"""The command line's :class:`~dupfinder.reporting.Reporter`: tqdm bars on stderr, shown
only when stderr is a terminal, and lines through the command's context (``-q`` silences
``info``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tqdm import tqdm


class TerminalBars:
    """tqdm bars on stderr, silent when stderr is not a terminal or ``bars`` is off; lines
    to ``warn`` and ``info``."""

    def __init__(self, warn: Callable[[str], None], info: Callable[[str], None],
                 bars: bool = True) -> None:
        self.warn, self.info = warn, info
        self.enabled = bars and sys.stderr.isatty()
        try:
            self.sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
        except (OSError, ValueError):
            self.sized = False

    def bar(self, desc: str, total: int | None = None, unit: str = "files",
            position: int = 0) -> tqdm:
        scale = unit == "B"
        # a terminal that reports no width (a bare pty) would get an empty bar: use 80
        return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024,
                    disable=not self.enabled, file=sys.stderr, leave=False,
                    dynamic_ncols=self.sized, ncols=None if self.sized else 80,
                    position=position)
