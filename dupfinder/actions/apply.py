"""Verify, then act: delete, trash, hardlink, symlink or move one duplicate at a time.

Each entry is journaled as ``planned`` before anything is touched and moved to ``done``,
``skipped`` (with the reason) or ``failed`` right after, so an interrupted run can be read
back and finished. Nothing is touched unless its content still equals the copy that stays.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import send2trash

from dupfinder.actions.plan import Planned
from dupfinder.db import journal
from dupfinder.db.catalogue import signed64
from dupfinder.db.engine import Database
from dupfinder.paths import for_message, to_db
from dupfinder.scan.hashing import open_readonly

CHUNK = 1 << 20


class Skip(Exception):
    """This duplicate is left alone, for the reason given."""


@dataclass
class Outcome:
    """What a run did."""

    run_id: int
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    reclaimed: int = 0


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


def verify(p: Planned) -> os.stat_result:
    """Check the duplicate and its keeper are still what the catalogue says and equal;
    returns the keeper's stat. Raises :class:`Skip` otherwise."""
    try:
        st = os.lstat(p.path)
        kst = os.lstat(p.kept)
    except FileNotFoundError as exc:
        which = "the copy that stays" if exc.filename == p.kept else "the file"
        raise Skip(f"{which} is gone") from exc
    if not stat.S_ISREG(st.st_mode) or not stat.S_ISREG(kst.st_mode):
        raise Skip("not a regular file any more")
    if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
        raise Skip("changed since the scan")
    if (kst.st_size, kst.st_mtime_ns) != (p.size, p.kept_mtime_ns):
        raise Skip("the copy that stays changed since the scan")
    if (st.st_dev, st.st_ino) == (kst.st_dev, kst.st_ino):
        raise Skip("already the same file as the copy that stays")
    if not same_content(p.path, p.kept):
        raise Skip("content differs from the copy that stays")
    return kst


def _temp_beside(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.dupfinder-{os.getpid()}")


def _replace_with_link(p: Planned, make: Callable[[str, str], None], target: str) -> None:
    """Create the link under a temporary name in the same folder, then rename it over the
    duplicate: the duplicate's path always holds either the file or the link."""
    tmp = _temp_beside(p.path)
    try:
        make(target, tmp)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise Skip("cross-device: a hard link cannot span file systems") from exc
        raise
    try:
        os.replace(tmp, p.path)
    except OSError:
        os.unlink(tmp)
        raise


def move_target(to_dir: str, path: str) -> str:
    """Where ``move`` puts a file: its absolute path recreated below ``to_dir``."""
    return os.path.join(to_dir, path.lstrip("/"))


def _move(src: str, dst: str) -> None:
    if os.path.lexists(dst):
        raise Skip(f"the move target exists already: {for_message(dst)}")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)  # across file systems: copy, check, then remove
        with open(dst, "rb") as f:
            os.fsync(f.fileno())
        if not same_content(src, dst):
            os.unlink(dst)
            raise Skip("the copy to the other file system did not verify") from exc
        os.unlink(src)


def act(p: Planned, to_dir: str | None) -> str | None:
    """Make one action; returns where a moved file went."""
    if p.action == "delete":
        os.unlink(p.path)
    elif p.action == "trash":
        send2trash.send2trash(p.path)
    elif p.action == "hardlink":
        _replace_with_link(p, os.link, p.kept)
    elif p.action == "symlink":
        _replace_with_link(p, os.symlink, os.path.abspath(p.kept))
    elif p.action == "move":
        assert to_dir is not None
        dst = move_target(to_dir, p.path)
        _move(p.path, dst)
        return dst
    else:
        raise ValueError(f"unknown action {p.action!r}")
    return None


def apply(db: Database, host: str, planned: Sequence[Planned], options: dict[str, object],
          to_dir: str | None = None, progress: Callable[[Planned, str], None] | None = None
          ) -> Outcome:
    """Journal every planned action, then verify and make them one by one.

    Raises KeyboardInterrupt after recording the run as interrupted."""
    action = planned[0].action if planned else str(options.get("action"))
    with db.session() as s:
        run_id = journal.start_run(s, host, action, options)
        journal.add_entries(s, run_id, [
            {"seq": i, "action": p.action, "path": to_db(p.path), "kept_path": to_db(p.kept),
             "size": p.size, "full_hash": p.full_hash, "mtime_ns": p.mtime_ns,
             "mode": _mode(p.path)}
            for i, p in enumerate(planned)
        ])
        s.commit()
        ids = [e.id for e in journal.entries(s, run_id)]
    outcome = Outcome(run_id)
    status = "complete"
    try:
        for entry_id, p in zip(ids, planned, strict=True):
            _one(db, host, entry_id, p, to_dir, outcome)
            if progress:
                progress(p, "done")
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        with db.session() as s:
            journal.finish_run(s, run_id, status)
            s.commit()
    return outcome


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None


def _one(db: Database, host: str, entry_id: int, p: Planned, to_dir: str | None,
         outcome: Outcome) -> None:
    key = to_db(p.path)
    with db.session() as s:
        try:
            kst = verify(p)
            stash = act(p, to_dir)
        except Skip as why:
            journal.set_state(s, entry_id, "skipped", str(why))
            outcome.skipped.append((p.path, str(why)))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            journal.set_state(s, entry_id, "failed", reason)
            outcome.failed.append((p.path, reason))
        else:
            if p.action == "hardlink":
                journal.relink_file(s, host, key, signed64(kst.st_dev), signed64(kst.st_ino),
                                    kst.st_nlink + 1, kst.st_mtime_ns)
            else:
                journal.forget_file(s, host, key)
            journal.set_state(s, entry_id, "done",
                              stash_path=to_db(stash) if stash is not None else None)
            outcome.done += 1
            if p.action != "move":
                outcome.reclaimed += p.size
        s.commit()


def describe(p: Planned) -> str:
    """One line for a planned action."""
    return f"{p.action:8} {for_message(p.path)}  (keeps {for_message(p.kept)})"

