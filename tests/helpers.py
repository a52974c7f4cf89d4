"""Helpers for tests: building trees, scanning them, reading groups back."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from dupfinder.cli import main
from dupfinder.db.engine import Database
from dupfinder.db.groups import iter_groups
from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.db.selection import Selection
from dupfinder.db.stored_paths import from_db
from dupfinder.scan.pipeline import ScanSummary

if TYPE_CHECKING:
    from dupfinder import Catalogue

HOST = "testhost"


def write(path: Path | str, data: bytes | str) -> Path:
    """Create a file (and its folders) with ``data``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def blob(seed: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    import random

    return random.Random(seed).randbytes(size)


def catalogue_of(db: Database, host: str = HOST) -> Catalogue:
    """The library's front door on an opened test database, as ``host`` (the caller keeps
    owning ``db``: do not close the result)."""
    from dupfinder import Catalogue
    from dupfinder.config import load_settings

    return Catalogue(db, load_settings(db_url=db.url_string(), host_label=host, lookup=False))


def scan(db: Database, *paths: Path | str, processes: int = 1, host: str = HOST,
         **fields: Any) -> ScanSummary:
    """Scan ``paths`` as ``host`` (the test host by default) as a library caller does."""
    return catalogue_of(db, host).scan(paths, processes=processes, **fields)


def groups(db: Database, host: str | None = None) -> set[frozenset[str]]:
    """Every duplicate group in the catalogue as a set of filesystem paths (of ``host``'s
    files only, when given)."""
    with db.session() as s:
        return {frozenset(f.path for f in g.files) for g in iter_groups(s, Selection(host))}


def catalogue_rows(db: Database) -> dict[str, tuple[int, str | None, str | None]]:
    """path -> (size, prefix_hash, full_hash) for every catalogue row."""
    with db.session() as s:
        rows = s.execute(select(FileHash.path, FileHash.size, FileHash.prefix_hash,
                                FileHash.full_hash))
        return {from_db(p): (size, ph, fh) for p, size, ph, fh in rows}


def tree_checksums(root: Path) -> dict[str, tuple[int, bytes]]:
    """path -> (mtime_ns, content) for every file: proves a tree was not touched."""
    out: dict[str, tuple[int, bytes]] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                out[p] = (os.stat(p).st_mtime_ns, Path(p).read_bytes())
    return out


def as_unprivileged(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as the ``nobody`` user in a forked child when we are root (root reads
    everything, so permission errors cannot happen as root); return its result."""
    if os.geteuid() != 0:
        return fn()
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            payload = pickle.dumps(("ok", fn()))
        except BaseException as exc:  # report any failure to the parent
            payload = pickle.dumps(("error", repr(exc)))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        kind, value = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert kind == "ok", value
    return value


def dedupe_tree(root: Path) -> Path:
    """Two groups to dedupe and a lone file: keep/ holds the oldest copies."""
    write(root / "keep/photo.jpg", blob(1, 80_000))
    write(root / "copies/photo.jpg", blob(1, 80_000))
    write(root / "copies/deeper/photo-2.jpg", blob(1, 80_000))
    write(root / "keep/a.txt", "text twin")
    write(root / "copies/a.txt", "text twin")
    write(root / "alone.txt", "only one")
    for i, p in enumerate(["keep/photo.jpg", "copies/photo.jpg", "copies/deeper/photo-2.jpg",
                           "keep/a.txt", "copies/a.txt"]):
        t = 1_600_000_000_000_000_000 + i * 1_000_000_000  # keep/... is the oldest
        os.utime(root / p, ns=(t, t))
    return root


def hashes_committed(db: Database, which: str = "full") -> int:
    """How many ``full`` (or ``prefix``) hashes are committed: in catalogue rows, or still
    waiting in the pending table for their merge (a killed scan's finished work)."""
    from sqlalchemy import func

    from dupfinder.db.models import PendingHash

    column = {"full": (FileHash.full_hash, PendingHash.full_hash),
              "prefix": (FileHash.prefix_hash, PendingHash.prefix_hash)}[which]
    with db.session() as s:
        rows = s.scalar(select(func.count()).select_from(FileHash).where(column[0].is_not(None)))
        waiting = s.scalar(select(func.count(func.distinct(PendingHash.file_id)))
                           .where(column[1].is_not(None)))
    return int(rows or 0) + int(waiting or 0)


def forget_everything(cat: Catalogue) -> None:
    """Hypothesis reuses the catalogue between examples: start each from an empty one."""
    with cat.db.session() as s:
        s.execute(delete(FileHash))
        s.execute(delete(ScanMetadata))
        s.commit()


def run_captured(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this (forked) process; stdout has a ``.buffer``, as ``dupes`` needs."""
    raw = io.BytesIO()
    out, err = io.TextIOWrapper(raw, encoding="utf-8"), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout, sys.stderr = saved
        out.flush()
    return code, raw.getvalue().decode(), err.getvalue()


def _quiet(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def btrfs_mount() -> Iterator[Path]:
    """A fresh 300 MiB btrfs on a loop image in a temporary folder, mounted; unmounted and
    removed afterwards, whatever happened."""
    assert os.geteuid() == 0, "the reflink tests mount a btrfs loop image: run them as root"
    assert shutil.which("mkfs.btrfs"), "mkfs.btrfs is missing (Debian package btrfs-progs)"
    base = Path(tempfile.mkdtemp(prefix="dupfinder-btrfs-"))
    img, mnt = base / "img", base / "mnt"
    mounted = False
    try:
        mnt.mkdir()
        _quiet("truncate", "-s", "300M", str(img))
        _quiet("mkfs.btrfs", "-q", str(img))
        _quiet("mount", "-o", "loop", str(img), str(mnt))
        mounted = True
        yield mnt
    finally:
        if mounted and subprocess.run(["umount", str(mnt)],
                                      capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
