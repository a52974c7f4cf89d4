"""File operations of the actions, each made so that no step can lose the last copy.

- Before anything destructive, :func:`prove_distinct` shows the duplicate and the copy that
  stays are two files, by making a hard link to the duplicate and seeing whether the
  keeper's link count moves (or, where links are refused, its mtime). (device, inode) is
  not enough: through an overlay, FUSE or NFS mount one file shows another identity, and
  the only copy was deleted that way. Moving the duplicate aside and reading the keeper was
  measured not to be enough either: overlayfs keeps serving the renamed lower file.
- Links replace the duplicate by rename from a temporary name in the same folder, so the
  path always holds the file or the link.
- ``move`` never follows a symbolic link below ``--to``, never replaces anything there, and
  across file systems copies to a temporary name, fsyncs, verifies, then renames.
Temporary names derive from the journal entry's id so a later command can find them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat

from dupfinder.paths import for_message
from dupfinder.scan.hashing import open_readonly

CHUNK = 1 << 20


class Skip(Exception):
    """This duplicate is left alone, for the reason given."""


def same_content(a: str, b: str) -> bool:
    """Byte-for-byte comparison of two files, chunk by chunk, with two reused buffers."""
    buf_a, buf_b = bytearray(CHUNK), bytearray(CHUNK)
    fa, fb = open_readonly(a), open_readonly(b)
    try:
        while True:
            na, nb = os.readv(fa, [buf_a]), os.readv(fb, [buf_b])
            if na != nb or buf_a[:na] != buf_b[:nb]:
                return False
            if na == 0:
                return True
    finally:
        os.close(fa)
        os.close(fb)


def temp_beside(path: str, tag: int | str) -> str:
    """A temporary name in ``path``'s folder, known from the journal entry ``tag``."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.dupfinder-{tag}")


def probe_path(dup: str, tag: int | str) -> str:
    """The probe hard link :func:`prove_distinct` makes beside ``dup`` for entry ``tag``."""
    return temp_beside(dup, f"probe-{tag}")


def prove_distinct(dup: str, kept: str, tag: int | str) -> None:
    """Raise :class:`Skip` unless ``dup`` and ``kept`` are shown to be two files."""
    before = os.stat(kept)
    _refuse_same_inode_elsewhere(os.stat(dup), before)
    probe = probe_path(dup, tag)
    linked = False
    try:  # entered before the link is made: Ctrl-C or SIGTERM right after it still cleans up
        try:
            os.link(dup, probe)
            linked = True
        except OSError:
            _prove_by_mtime(dup, kept, before)
            return
        after = os.stat(kept)
    finally:
        if linked:
            os.unlink(probe)
    if after.st_nlink != before.st_nlink:
        raise Skip("the copy that stays is this same file seen through another mount")


def _refuse_same_inode_elsewhere(st: os.stat_result, kst: os.stat_result) -> None:
    """Skip two paths on different devices with the same inode number, size, mtime and
    ctime: one file seen through another mount (an overlay shows a lower file that was not
    copied up this way). Needed before the hard-link probe, because probing through an
    overlay copies the file up first: the merged path then looked distinct from its own
    lower file, and deleting it left a whiteout hiding the file in the merged view. A copy
    cannot share the ctime (it cannot be set), so only real copies go on to the probe."""
    if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
            kst.st_ino, kst.st_size, kst.st_mtime_ns, kst.st_ctime_ns):
        raise Skip("the copy that stays is this same file seen through another mount")


def _prove_by_mtime(dup: str, kept: str, before: os.stat_result) -> None:
    st = os.stat(dup)
    os.utime(dup, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        moved = os.stat(kept).st_mtime_ns != before.st_mtime_ns
    finally:
        os.utime(dup, ns=(st.st_atime_ns, st.st_mtime_ns))
    if moved:
        raise Skip("the copy that stays is this same file seen through another mount")


def replace_with_link(path: str, target: str, symbolic: bool, tag: int, *,
                      expect: os.stat_result | None = None) -> None:
    """Create the link under a temporary name in the same folder, then rename it over the
    duplicate.

    ``expect`` is the keeper's stat taken when it was verified: a hard link made to a
    keeper replaced or edited since (another file now under its name) would put that file
    in place of the duplicate, so the new hard link's own stat (the very inode it links)
    must still show the verified size, mtime, inode and device, or the link is removed and
    the duplicate left alone. (A symbolic link names a path, not a file: not checked.)"""
    tmp = temp_beside(path, tag)
    try:
        (os.symlink if symbolic else os.link)(target, tmp)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise Skip("cross-device: a hard link cannot span file systems") from exc
        raise
    try:
        if expect is not None and not symbolic:
            got = os.lstat(tmp)
            if (got.st_size, got.st_mtime_ns, got.st_ino, got.st_dev) != (
                    expect.st_size, expect.st_mtime_ns, expect.st_ino, expect.st_dev):
                raise Skip("the copy that stays changed since it was verified")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def move_target(to_dir: str, path: str) -> str:
    """Where ``move`` puts a file: its absolute path recreated below ``to_dir``."""
    return os.path.join(to_dir, path.lstrip("/"))


def _open_below(to_dir: str, rel_dir: str) -> int:
    """Open (creating) ``rel_dir`` below ``to_dir`` one component at a time, never following
    a symbolic link; returns a directory descriptor."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    os.makedirs(to_dir, exist_ok=True)
    fd = os.open(to_dir, flags)
    try:
        for part in [p for p in rel_dir.split("/") if p]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Skip(f"the move target's folder {for_message(part)} is a symbolic "
                               "link or a file") from exc
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def move_file(src: str, to_dir: str, tag: int) -> str:
    """Move ``src`` below ``to_dir``; returns where it went."""
    dst = move_target(to_dir, src)
    folder, name = os.path.split(dst.removeprefix(to_dir.rstrip("/")))
    fd = _open_below(to_dir, folder)
    try:
        try:
            os.lstat(name, dir_fd=fd)
            raise Skip(f"the move target exists already: {for_message(dst)}")
        except FileNotFoundError:
            pass
        try:
            os.link(src, name, dst_dir_fd=fd, follow_symlinks=False)  # never replaces
            os.unlink(src)
            return dst
        except FileExistsError as exc:
            raise Skip(f"the move target exists already: {for_message(dst)}") from exc
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                try:
                    os.rename(src, name, dst_dir_fd=fd)
                    return dst
                except OSError as exc2:
                    if exc2.errno != errno.EXDEV:
                        raise
        _copy_across(src, name, fd, tag, dst)
        os.unlink(src)
        return dst
    finally:
        os.close(fd)


def _copy_across(src: str, name: str, dir_fd: int, tag: int, dst: str) -> None:
    """Copy to a temporary name, fsync, keep mode, times and (where permitted) owner,
    verify, then rename into place; a failure leaves no partial file behind."""
    part = f".{name}.dupfinder-{tag}"
    st = os.stat(src)
    out = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600, dir_fd=dir_fd)
    try:
        with open(src, "rb") as fin, os.fdopen(out, "wb", closefd=False) as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
            fout.flush()
            os.fsync(out)
        with contextlib.suppress(PermissionError):
            os.fchown(out, st.st_uid, st.st_gid)
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    except BaseException:
        os.close(out)
        os.unlink(part, dir_fd=dir_fd)
        raise
    os.close(out)
    try:
        with open(src, "rb") as a, open(f"/proc/self/fd/{dir_fd}/{part}", "rb") as b:
            equal = _equal_streams(a, b)
        if not equal:
            raise Skip("the copy to the other file system did not verify")
        try:
            os.lstat(name, dir_fd=dir_fd)
            raise Skip(f"the move target exists already: {for_message(dst)}")
        except FileNotFoundError:
            pass
        os.rename(part, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(part, dir_fd=dir_fd)
        raise


def _equal_streams(a: object, b: object) -> bool:
    while True:
        x, y = a.read(CHUNK), b.read(CHUNK)  # type: ignore[attr-defined]
        if x != y:
            return False
        if not x:
            return True
