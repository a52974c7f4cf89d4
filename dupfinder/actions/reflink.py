"""Copy-on-write clones (reflinks): a duplicate made to share the kept file's extents.

The duplicate keeps its name, mode, owner and mtime, and stays a file of its own (unlike a
hard link, writing to one never changes the other), but its bytes stop taking space. Linux
offers this as the ``FICLONE`` ioctl on btrfs, XFS, bcachefs and others; a file system
without it answers ``EOPNOTSUPP``/``EINVAL``/``EXDEV``/``ENOTTY``, which becomes a per-file
skip with that reason.

The clone is made under a temporary name in the duplicate's folder, given the duplicate's
metadata, then renamed over it, so the path always holds either the old file or the clone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable

from dupfinder.actions.files import Skip, temp_beside
from dupfinder.scan.hashing import open_readonly

FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h

_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EINVAL, errno.EXDEV, errno.ENOTTY, errno.EBADF,
                errno.ENOSYS}


def cannot_clone(exc: OSError) -> bool:
    """Whether an error says the file system (or the pair of files) cannot be cloned."""
    return exc.errno in _UNSUPPORTED


def _give_metadata(fd: int, st: os.stat_result) -> None:
    """The duplicate's owner (where permitted), mode and times onto the clone."""
    with contextlib.suppress(PermissionError):
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_with(path: str, tmp: str, fill: Callable[[int], None]) -> None:
    """Write ``tmp`` (in ``path``'s folder) with ``fill``, give it ``path``'s metadata,
    fsync it and rename it over ``path``; a failure leaves ``path`` as it was."""
    st = os.lstat(path)
    dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600)
    try:
        fill(dst)
        _give_metadata(dst, st)
        os.fsync(dst)
    except BaseException:
        os.close(dst)
        os.unlink(tmp)
        raise
    os.close(dst)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def clone_over(path: str, kept: str, tag: int) -> None:
    """Replace ``path`` by a clone of ``kept`` that keeps ``path``'s metadata; raises
    :class:`Skip` when the file system cannot clone them."""
    src = open_readonly(kept)

    def clone(dst: int) -> None:
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as exc:
            if cannot_clone(exc):
                raise Skip("the file system cannot clone these files "
                           f"({os.strerror(exc.errno or 0)})") from exc
            raise

    try:
        _replace_with(path, temp_beside(path, tag), clone)
    finally:
        os.close(src)


def can_clone_here(folder: str) -> str | None:
    """None if the file system ``folder`` is on can make clones, else the reason why not.

    The probe clones a small file made for it in ``folder`` (both removed at once), not
    ``kept``: callers ask once per file system and apply the answer to every duplicate on
    it, so the answer must not depend on one kept file (a kept copy on another file system,
    or gone since the scan, is that one file's skip, not the whole file system's). An error
    that says nothing about cloning (no write access to ``folder``, say) is not an answer
    either: None, and each file then meets its own error."""
    base = os.path.join(folder, f".dupfinder-clone-probe-{os.getpid()}")
    flags = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        src = os.open(base + "-src", os.O_RDWR | flags, 0o600)
    except OSError:
        return None
    try:
        os.write(src, b"\0" * 4096)  # one whole block: a regular extent, not an inline one
        try:
            dst = os.open(base + "-dst", os.O_WRONLY | flags, 0o600)
        except OSError:
            return None
        try:
            fcntl.ioctl(dst, FICLONE, src)
            return None
        except OSError as exc:
            return os.strerror(exc.errno or 0) if cannot_clone(exc) else None
        finally:
            os.close(dst)
            with contextlib.suppress(OSError):
                os.unlink(base + "-dst")
    except OSError:
        return None
    finally:
        os.close(src)
        with contextlib.suppress(OSError):
            os.unlink(base + "-src")


def make_private(path: str, tag: int) -> None:
    """Undo a clone: give ``path`` its own copy of its bytes (same content and metadata),
    written with plain reads and writes so that no file system shares them again."""
    src = open_readonly(path)

    def copy(dst: int) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while n := os.readv(src, [buf]):
            done = 0
            while done < n:
                done += os.write(dst, view[done:n])

    try:
        _replace_with(path, temp_beside(path, f"undo-{tag}"), copy)
    finally:
        os.close(src)
