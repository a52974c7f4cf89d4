"""Copy-on-write sharing (reflinks): a duplicate made to share the kept file's extents.

The duplicate keeps its name, inode, hard links, mode, owner and mtime, and stays a file of
its own (unlike a hard link, writing to one never changes the other), but its bytes stop
taking space. Linux offers this as the ``FIDEDUPERANGE`` ioctl on btrfs, XFS, bcachefs and
others; a file system without it answers ``EOPNOTSUPP``/``EINVAL``/``EXDEV``/``ENOTTY``,
which becomes a per-file skip with that reason.

``FIDEDUPERANGE``, not ``FICLONE``: the kernel locks both files, compares the two ranges
and shares the extents only if they are equal, in place. A clone would copy whatever the
kept file holds at that moment, so a keeper edited after dupfinder compared the files byte
for byte would have left its edited bytes as the only content (fclones issue #293 is that
race). With the checked dedupe such a file is the kernel's ``FILE_DEDUPE_RANGE_DIFFERS``
and is skipped; every range shared before was equal, so a file done in part is still its
own content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct

from dupfinder.actions.fileops import CHUNK, Skip
from dupfinder.scan.hashing import open_readonly

# linux/fs.h: _IOWR(0x94, 54, struct file_dedupe_range), with
#   struct file_dedupe_range { __u64 src_offset; __u64 src_length; __u16 dest_count;
#                              __u16 reserved1; __u32 reserved2;
#                              struct file_dedupe_range_info info[]; };
#   struct file_dedupe_range_info { __s64 dest_fd; __u64 dest_offset; __u64 bytes_deduped;
#                                   __s32 status; __u32 reserved; };
_RANGE = struct.Struct("=QQHHI")  # 24 bytes: the size _IOWR encodes (info[] counts 0)
_INFO = struct.Struct("=qQQiI")  # 32 bytes per destination
_IOC_WRITE, _IOC_READ = 1, 2


def _iowr(kind: int, nr: int, size: int) -> int:
    """Linux's ``_IOWR``: direction in bits 30-31, size in 16-29, type in 8-15, number."""
    return ((_IOC_READ | _IOC_WRITE) << 30) | (size << 16) | (kind << 8) | nr


FIDEDUPERANGE = _iowr(0x94, 54, _RANGE.size)  # 0xC0189436, as gcc reads linux/fs.h
FILE_DEDUPE_RANGE_SAME = 0
FILE_DEDUPE_RANGE_DIFFERS = 1
STEP = 16 << 20  # asked per call; btrfs dedupes at most 16 MiB a call anyway

_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EINVAL, errno.EXDEV, errno.ENOTTY, errno.EBADF,
                errno.ENOSYS}


def cannot_clone(exc: OSError) -> bool:
    """Whether an error says the file system (or the pair of files) cannot share extents."""
    return exc.errno in _UNSUPPORTED


class _Differs(Exception):
    """The kernel found the ranges unequal."""


def dedupe_range(src: int, dst: int, offset: int, length: int) -> int:
    """One ``FIDEDUPERANGE`` call: share ``length`` bytes at ``offset`` of ``dst`` with the
    same range of ``src`` if (and only if) they are equal; returns how many bytes the
    kernel deduped (it may do fewer than asked). Raises :class:`_Differs` when the ranges
    differ, :class:`OSError` for any other refusal (the ioctl's own or the range's)."""
    buf = bytearray(_RANGE.size + _INFO.size)
    _RANGE.pack_into(buf, 0, offset, length, 1, 0, 0)
    _INFO.pack_into(buf, _RANGE.size, dst, offset, 0, 0, 0)
    fcntl.ioctl(src, FIDEDUPERANGE, buf, True)
    _, _, done, status, _ = _INFO.unpack_from(buf, _RANGE.size)
    if status == FILE_DEDUPE_RANGE_DIFFERS:
        raise _Differs
    if status < 0:
        raise OSError(-status, os.strerror(-status))
    if status != FILE_DEDUPE_RANGE_SAME:
        raise OSError(errno.EIO, f"FIDEDUPERANGE: unknown status {status}")
    return int(done)


_NOT_PERMITTED = "not permitted to dedupe this file (only its owner, root or who may write " \
    "to it can)"


def _as_skip(exc: OSError) -> Skip | None:
    """The per-file skip an error of the dedupe means, or None for any other error."""
    if exc.errno == errno.EPERM:
        return Skip(_NOT_PERMITTED)
    if cannot_clone(exc):
        return Skip("the file system cannot clone these files "
                    f"({os.strerror(exc.errno or 0)})")
    return None


def clone_over(path: str, kept: str, tag: int) -> None:
    """Make ``path`` share ``kept``'s extents where the kernel finds their bytes equal, in
    place (``path`` keeps its inode, hard links, owner, mode and mtime). Raises
    :class:`Skip` when the kernel finds them different or the file system cannot share
    extents between them. ``tag`` (the journal entry) names no temporary file any more: the
    dedupe makes none.

    The duplicate is opened read-only: since Linux 4.19 the kernel lets its owner, root, or
    anyone who may write to it dedupe it through such a descriptor. Older kernels asked a
    caller other than root for a writable one (and said ``EINVAL``), so an ``EINVAL`` or
    ``EPERM`` on the first piece is tried once more through a read/write descriptor of the
    same file, which is never written through."""
    del tag
    src = open_readonly(kept)
    fds = [src]
    try:
        dst = open_readonly(path)
        fds.append(dst)
        size, before = os.fstat(src).st_size, os.fstat(dst)
        if before.st_size != size:
            raise Skip("the copy that stays changed since it was verified (its size)")
        offset = 0
        try:
            while offset < size:
                length = min(STEP, size - offset)  # the last piece reaches EOF: the tail
                try:
                    try:
                        done = dedupe_range(src, dst, offset, length)
                    except OSError as exc:
                        writable = _writable_again(path, before, exc) if offset == 0 else -1
                        if writable < 0:
                            raise
                        fds.append(writable)
                        dst = writable
                        done = dedupe_range(src, dst, offset, length)
                except _Differs as exc:
                    raise Skip("content differs from the copy that stays (checked by the "
                               "kernel)") from exc
                except OSError as exc:
                    skip = _as_skip(exc)
                    if skip is None:
                        raise
                    raise skip from exc
                if done <= 0:  # nothing shared and no error: stop; the content is intact
                    raise Skip(f"the file system stopped sharing extents at byte {offset} "
                               f"of {size}; the content is unchanged")
                offset += done
        finally:
            _keep_mtime(dst, before)
    finally:
        for fd in fds:
            os.close(fd)


def _writable_again(path: str, before: os.stat_result, exc: OSError) -> int:
    """A read/write descriptor of ``path`` (still the file ``before`` was taken of) after
    the dedupe through a read-only one said ``EINVAL``/``EPERM``; -1 when that is not the
    answer or ``path`` cannot be opened so."""
    if exc.errno not in (errno.EINVAL, errno.EPERM):
        return -1
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return -1
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        return -1
    return fd


def _keep_mtime(fd: int, before: os.stat_result) -> None:
    """Dedupe leaves the mtime alone on Linux; were a file system to change it, it is put
    back (the access time as it is now)."""
    now = os.fstat(fd)
    if now.st_mtime_ns != before.st_mtime_ns:
        os.utime(fd, ns=(now.st_atime_ns, before.st_mtime_ns))


def can_clone_here(folder: str) -> str | None:
    """None if the file system ``folder`` is on can dedupe (share extents of equal files),
    else the reason why not.

    The probe dedupes two equal 4 KiB files made for it in ``folder`` (both removed at
    once), not ``kept``: callers ask once per file system and apply the answer to every
    duplicate on it, so the answer must not depend on one kept file (a kept copy on another
    file system, or gone since the scan, is that one file's skip, not the whole file
    system's). An error that says nothing about sharing extents (no write access to
    ``folder``, say) is not an answer either: None, and each file then meets its own
    error."""
    base = os.path.join(folder, f".dupfinder-clone-probe-{os.getpid()}")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    block = b"dupfinder probe\n" * 256  # one whole block: a regular extent, not inline
    try:
        src = os.open(base + "-src", flags, 0o600)
    except OSError:
        return None
    try:
        os.write(src, block)
        try:
            dst = os.open(base + "-dst", flags, 0o600)
        except OSError:
            return None
        try:
            os.write(dst, block)
            dedupe_range(src, dst, 0, len(block))
            return None
        except _Differs:
            return None  # it compared them: it can dedupe
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
    """Undo a dedupe: give ``path`` its own copy of its bytes again, in place, so it keeps
    its inode and hard links (and owner, mode, atime and mtime).

    Each piece is read and written back, unchanged, at the same offset through a read/write
    descriptor; a copy-on-write file system then gives the rewritten piece new extents of
    this file's own. That is safe because the content is unchanged at every instant: every
    write puts back exactly the bytes that were there, so a reader (or a crash) at any point
    sees the same file, shared in part or not. (A process writing to the file at the same
    time could have a piece of its write put back to the bytes read just before; it is one
    chunk's window, and replacing the file by a copy, as before, lost such writes whole.)
    The bytes are fsynced, then the times are put back. ``tag`` names no temporary file: an
    in-place rewrite makes none."""
    del tag
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        offset = 0
        while n := os.preadv(fd, [buf], offset):
            done = 0
            while done < n:
                done += os.pwrite(fd, view[done:n], offset + done)
            offset += n
        os.fsync(fd)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)
