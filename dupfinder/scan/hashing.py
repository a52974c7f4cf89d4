"""Hash algorithms and the prefix / full hash of one file.

Reads go into one reused buffer per process (a fresh 4 MiB ``bytes`` per read costs more in
the kernel than the hashing itself), with ``O_NOATIME`` where allowed so that a scan leaves
access times alone. A file whose size or mtime differs from the catalogue before or after
the read raises :class:`FileChanged` and its hash is not recorded.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from typing import Any, Protocol

import blake3
import xxhash


class Hasher(Protocol):
    """What a hash object offers (hashlib-compatible)."""

    def update(self, data: Any, /) -> object: ...

    def hexdigest(self) -> str: ...


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "xxh3-128": xxhash.xxh3_128,
    "blake3": blake3.blake3,
    "blake2b": hashlib.blake2b,
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
}
DEFAULT_ALGORITHM = "xxh3-128"
DEFAULT_PREFIX_SIZE = 4096
DEFAULT_CHUNK_SIZE = 1 << 20
# Files up to this size are read whole in the prefix stage, which then records their full
# hash too: one open instead of two for the many small files (opening costs more than
# reading a few extra KiB from the page cache).
SMALL_FILE = 64 << 10

_NOATIME = getattr(os, "O_NOATIME", 0)
_noatime_ok = True


def whole_limit(prefix_size: int, chunk_size: int) -> int:
    """The largest file the prefix stage reads whole (and so hashes in full at once)."""
    return max(prefix_size, min(SMALL_FILE, max(chunk_size, prefix_size)))


class FileChanged(Exception):
    """The file is not what the catalogue says (changed since the walk, or while read)."""


class NotRegularFile(OSError):
    """The path no longer holds a regular file (a FIFO, a device, a folder took its place)."""


def algorithm_tag(algorithm: str, prefix_size: int) -> str:
    """The label stored with each hash; a non-default prefix size is part of it, so hashes
    made with different prefix sizes are never compared."""
    if prefix_size == DEFAULT_PREFIX_SIZE:
        return algorithm
    return f"{algorithm}/p{prefix_size}"


def open_readonly(path: str) -> int:
    """Open a regular file for reading, without updating the access time when the OS
    allows it; anything else raises :class:`NotRegularFile`.

    ``O_NONBLOCK`` makes opening a FIFO that replaced a catalogued file return at once
    instead of waiting forever for a writer (a scan hung that way), and the ``fstat`` check
    then refuses it; on a regular file the flag changes nothing.
    """
    global _noatime_ok
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    fd = -1
    if _noatime_ok and _NOATIME:
        try:
            fd = os.open(path, flags | _NOATIME)
        except PermissionError:
            _noatime_ok = False  # O_NOATIME needs ownership; fall back for the rest
    if fd < 0:
        fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(0, "not a regular file", path)
    return fd


def _check(fd: int, size: int, mtime_ns: int) -> None:
    st = os.fstat(fd)
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChanged


class Reader:
    """Hashes files with one reusable buffer; one instance per process."""

    def __init__(self, algorithm: str, prefix_size: int = DEFAULT_PREFIX_SIZE,
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.new = ALGORITHMS[algorithm]
        self.prefix_size = prefix_size
        self.buffer = bytearray(max(chunk_size, prefix_size))
        self.view = memoryview(self.buffer)
        self.whole = whole_limit(prefix_size, chunk_size)

    def prefix(self, path: str, size: int, mtime_ns: int) -> tuple[str, str | None, int]:
        """Hash the first ``prefix_size`` bytes: (prefix digest, full digest or None, bytes
        read). A file of at most ``max(prefix_size, SMALL_FILE)`` bytes is read whole and
        its full digest is returned as well."""
        fd = _open(path)
        try:
            _check(fd, size, mtime_ns)
            whole = size <= self.whole
            want = size if whole else self.prefix_size
            got = _read_full(fd, self.view[:want])
            if got != want or (whole and os.read(fd, 1)):
                raise FileChanged
            _check(fd, size, mtime_ns)
            h = self.new()
            h.update(self.view[: min(got, self.prefix_size)])
            prefix = h.hexdigest()
            if not whole:
                return prefix, None, got
            if size <= self.prefix_size:
                return prefix, prefix, got
            f = self.new()
            f.update(self.view[:got])
            return prefix, f.hexdigest(), got
        finally:
            os.close(fd)

    def full(self, path: str, size: int, mtime_ns: int) -> str:
        """Hash the whole file."""
        fd = _open(path)
        try:
            _check(fd, size, mtime_ns)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            h = self.new()
            total = 0
            view = self.view
            while True:
                n = os.readv(fd, [view])
                if not n:
                    break
                h.update(view[:n])
                total += n
            if total != size:
                raise FileChanged
            _check(fd, size, mtime_ns)
            return h.hexdigest()
        finally:
            os.close(fd)


def _open(path: str) -> int:
    try:
        return open_readonly(path)
    except NotRegularFile as exc:  # the catalogue recorded a regular file there
        raise FileChanged from exc


def _read_full(fd: int, view: memoryview) -> int:
    """Fill ``view`` from ``fd`` (short reads retried); returns the bytes read."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if not n:
            break
        got += n
    return got
