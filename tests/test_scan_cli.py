"""``dupfinder scan`` as a user runs it: exit codes, messages, interruption and resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dupfinder.config import load_settings
from dupfinder.db.engine import Database, open_database
from dupfinder.db.models import FileHash, ScanMetadata
from tests.helpers import as_unprivileged, blob, groups, hashes_committed, scan, write


def _default_sigint() -> None:
    # a shell's background job (CI may be one) ignores SIGINT, and the child would inherit
    # that; give the scan the Ctrl-C handling it has in a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_dupfinder(*args: str, **kw: Any) -> subprocess.Popen[str]:
    """Start ``python -m dupfinder ARGS`` as a separate process."""
    return subprocess.Popen([sys.executable, "-m", "dupfinder", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint, **kw)


def test_missing_path_is_exit_2_and_writes_nothing(cli, tmp_path: Path) -> None:
    db_file = tmp_path / "never.db"
    res = cli("scan", str(tmp_path / "nope"), "--db-url", f"sqlite:///{db_file}")
    assert res.code == 2
    assert res.err.strip() == f"dupfinder: error: no such file or directory: {tmp_path}/nope"
    assert not db_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-size", "12QB"], "invalid --min-size '12QB'"),
        (["--chunk-size", "lots"], "invalid --chunk-size"),
        (["-p", "-2"], "--processes must be at least 1"),
        (["--include-empty", "--min-size", "5"], "--include-empty conflicts with --min-size"),
        (["--max-size", "1k", "--min-size", "2k"], "--max-size is smaller than --min-size"),
        (["--max-depth", "0"], "--max-depth must be at least 1"),
        (["-a", "crc32"], "crc32"),
    ],
)
def test_bad_options_are_one_line_exit_2(cli, tmp_path: Path, args: list[str],
                                         message: str) -> None:
    db_file = tmp_path / "x.db"
    res = cli("scan", str(tmp_path), "--db-url", f"sqlite:///{db_file}", *args)
    assert res.code == 2, res
    assert message in res.err and len(res.err.strip().splitlines()) == 1
    assert "Traceback" not in res.err
    assert not db_file.exists()


def test_summary_and_quiet(cli, tmp_path: Path, db_url: str) -> None:
    write(tmp_path / "t/a", "dup")
    write(tmp_path / "t/b", "dup")
    res = cli("scan", str(tmp_path / "t"), "--db-url", db_url, "-p", "1")
    assert res.code == 0, res.err
    assert "duplicates: 1 group, 2 files, 3 B wasted" in res.out
    assert "files: 2 seen, 2 new" in res.out
    quiet = cli("-q", "scan", str(tmp_path / "t"), "--db-url", db_url)
    assert quiet.code == 0 and quiet.out == "" and quiet.err == ""


def test_verbose_lists_problems_with_printable_names(cli, tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    os.symlink(b"/nonexistent", os.path.join(os.fsencode(root), b"bro\xffken"))
    res = cli("scan", str(root), "--follow-links", "-v", "--db-url",
              f"sqlite:///{tmp_path / 'c.db'}")
    assert res.code == 0
    assert "bro\\xffken: broken symlink" in res.err
    assert "1 error " in res.out


def _assert_no_process_mentions(text: str, timeout: float = 5) -> None:
    """Wait until no running process has ``text`` on its command line (no orphans)."""
    end = time.monotonic() + timeout
    while True:
        alive = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if text.encode() in cmdline.read_bytes():
                    alive.append(cmdline.parent.name)
            except OSError:
                continue
        if not alive:
            return
        assert time.monotonic() < end, f"processes left behind: {alive}"
        time.sleep(0.05)


def _big_tree(root: Path, pairs: int, size: int) -> None:
    for i in range(pairs):
        data = blob(i, size)
        write(root / f"a/{i // 50}/{i}.bin", data)
        write(root / f"b/{i}.bin", data)


def _hashed(db: Database) -> int:
    return hashes_committed(db, "full")


def _wait_for(pred: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert proc.poll() is None, f"scan ended before the test could interrupt it: {proc}"
        assert time.monotonic() < end, "timed out waiting for the scan to make progress"
        time.sleep(0.005)


@pytest.fixture
def open_db(db_url: str) -> Iterator[Callable[[], Database]]:
    opened: list[Database] = []

    def opener() -> Database:
        d = open_database(load_settings(db_url=db_url), no_fallback=True)
        opened.append(d)
        return d

    yield opener
    for d in opened:
        d.dispose()


def test_kill_9_then_resume_gives_the_same_groups(tmp_path: Path, db_url: str,
                                                  open_db: Callable[[], Database]) -> None:
    tree = tmp_path / "tree"
    _big_tree(tree, pairs=300, size=160 * 1024)  # above the small-file limit: two stages
    db = open_db()
    # every result committed at once, so that the kill lands between commits
    args = ["scan", str(tree), "--db-url", db_url, "-q", "-p", "2", "-b", "1",
            "--commit-interval", "0", "-a", "sha256", "--host-label", "testhost"]
    proc = run_dupfinder(*args)
    _wait_for(lambda: _hashed(db) >= 40, proc)
    proc.kill()
    proc.communicate(timeout=30)  # a worker left behind would hold the pipes open
    _assert_no_process_mentions(str(tree))
    done_before = _hashed(db)
    assert 0 < done_before < 600, "the kill should land in the middle of hashing"
    with db.session() as s:
        status = s.scalar(select(ScanMetadata.status))
    assert status == "running"  # killed: nobody could close the record

    resumed = run_dupfinder(*args)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert _hashed(db) == 600
    with db.session() as s:
        statuses = list(s.scalars(select(ScanMetadata.status).order_by(ScanMetadata.id)))
        rows = s.scalar(select(func.count()).select_from(FileHash))
    assert statuses == ["interrupted", "complete"]
    assert rows == 600  # no duplicate rows
    expected = {frozenset({str(tree / f"a/{i // 50}/{i}.bin"), str(tree / f"b/{i}.bin")})
                for i in range(300)}
    assert groups(db) == expected


def test_ctrl_c_exits_130_and_keeps_progress(tmp_path: Path, db_url: str,
                                             open_db: Callable[[], Database]) -> None:
    tree = tmp_path / "tree"
    _big_tree(tree, pairs=300, size=160 * 1024)  # above the small-file limit: two stages
    db = open_db()
    proc = run_dupfinder("scan", str(tree), "--db-url", db_url, "-p", "2", "-b", "1",
                         "--commit-interval", "0", "--host-label", "testhost")
    _wait_for(lambda: _hashed(db) >= 40, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "dupfinder: interrupted"
    assert "Traceback" not in err
    kept = _hashed(db)
    assert kept >= 40
    with db.session() as s:
        assert s.scalar(select(ScanMetadata.status)) == "interrupted"
    summary = scan(db, tree)  # resume in-process: only the rest is hashed
    assert summary.status == "complete" and len(groups(db)) == 300
    assert summary.files_hashed <= 1200 - kept


# ------------------------------------------------------------- permissions

def test_unreadable_folder_and_file_are_reported_not_fatal(db_url: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="dupfinder-perm-"))  # outside root-only pytest dirs
    try:
        base.chmod(0o755)
        tree = base / "tree"
        a = write(tree / "a", "readable dup")
        b = write(tree / "b", "readable dup")
        hidden = write(tree / "locked_dir/inside", "readable dup")
        for p in (tree, tree / "locked_dir"):
            p.chmod(0o755)
        for p in (a, b, hidden):
            p.chmod(0o644)
        url = db_url
        if db_url.startswith("sqlite"):
            dbdir = base / "db"
            dbdir.mkdir(mode=0o777)
            dbdir.chmod(0o777)
            url = f"sqlite:///{dbdir / 'cat.db'}"
        # first scan while everything is readable
        db = open_database(load_settings(db_url=url), no_fallback=True)
        scan(db, tree)
        db.dispose()
        if url.startswith("sqlite"):
            for f in (base / "db").iterdir():
                f.chmod(0o666)
        # a new file of the same size (so it must be hashed) that cannot be read
        locked_file = write(tree / "locked_file", "readable dup")
        locked_file.chmod(0)
        (tree / "locked_dir").chmod(0)

        def child() -> tuple[list[tuple[str, str]], set[frozenset[str]], int]:
            d = open_database(load_settings(db_url=url), no_fallback=True)
            try:
                summary = scan(d, tree)
                return summary.problems, groups(d), summary.sync.removed
            finally:
                d.dispose()

        problems, found, removed = as_unprivileged(child)
        reasons = dict(problems)
        assert reasons[str(tree / "locked_dir")] == "Permission denied"
        assert reasons[str(locked_file)] == "Permission denied"
        # the unreadable folder's rows are kept: nothing recorded is lost
        assert removed == 0
        assert found == {frozenset({str(a), str(b), str(hidden)})}
    finally:
        (base / "tree/locked_dir").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_progress_bars_on_a_terminal_only(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    _big_tree(tmp_path / "tree", pairs=40, size=100_000)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "dupfinder", "scan", str(tmp_path / "tree"),
                             "--db-url", url, "-p", "1", "-b", "2"],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    shown = b"".join(chunks).decode("utf-8", "replace")
    for stage in ("walk", "prefix hash", "full hash"):
        assert stage in shown, shown
    assert "B/s" in shown or "MB" in shown or "kB" in shown  # full hashing counts bytes
    # not a terminal: nothing but the summary
    res = subprocess.run([sys.executable, "-m", "dupfinder", "scan", str(tmp_path / "tree"),
                          "--db-url", url], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == ""
