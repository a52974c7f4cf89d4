"""Human sizes and times: parsing ``10k``, ``8MB``, ``1GiB`` and ``10m``, and printing
bytes for people."""

from __future__ import annotations

import re
from fractions import Fraction

from dupfinder.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
# The largest file size a filesystem (off_t) and the catalogue (a signed 64-bit BIGINT) hold.
MAX_SIZE = 2**63 - 1
# Digits kept after the decimal point: beyond this they cannot change a whole byte count,
# and int() refuses strings of more than 4300 digits.
_FRACTION_DIGITS = 30


def parse_size(text: str | int, what: str = "size") -> int:
    """Parse a byte count: ``4096``, ``10k``, ``8MB`` (10^6), ``8MiB`` (2^20), ``1GiB``.

    A bare suffix letter (``10k``, ``8M``) is binary, as in ``du`` and ``find``; ``kB``/``MB``
    are decimal and ``KiB``/``MiB`` binary. Raises :class:`UsageError` naming ``what``.
    """
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE.match(text)
        if not m:
            raise UsageError(f"invalid {what} '{text}' (examples: 4096, 10k, 8MB, 1GiB)")
        whole, fraction, unit, binary, byte = m.groups()
        power = _POWERS[unit.lower()]
        base = 1000 if (byte and not binary and unit) else 1024
        if binary and not unit:
            raise UsageError(f"invalid {what} '{text}' (examples: 4096, 10k, 8MB, 1GiB)")
        whole = whole.lstrip("0") or "0"
        if len(whole) > len(str(MAX_SIZE)):  # too large whatever the unit; skip int()
            raise _too_large(what, text)
        # exact arithmetic: a float turns 2**63-1 into 2**63 and 1e400 into inf
        number = Fraction(f"{whole}.{(fraction or '0')[:_FRACTION_DIGITS]}")
        value = int(number * base**power)
    if value < 0:
        raise UsageError(f"invalid {what} '{text}': must not be negative")
    if value > MAX_SIZE:
        raise _too_large(what, text)
    return value


def _too_large(what: str, text: str | int) -> UsageError:
    shown = str(text).strip()
    if len(shown) > 40:
        shown = f"{shown[:40]}... ({len(shown)} characters)"
    return UsageError(f"invalid {what} '{shown}': too large (at most {MAX_SIZE} bytes, 8 EiB)")


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 365 * 86400.0


def parse_duration(text: str, what: str = "duration") -> float:
    """Parse a time span in seconds: ``30``, ``30s``, ``10m``, ``2h``, ``1d``. Raises
    :class:`UsageError` naming ``what``."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"invalid {what} '{text}' (examples: 30, 30s, 10m, 2h)")
    seconds = float(m.group(1)) * _SECONDS[(m.group(2) or "").lower()]
    if seconds > MAX_SECONDS:
        raise UsageError(f"invalid {what} '{text}': at most a year")
    return seconds
