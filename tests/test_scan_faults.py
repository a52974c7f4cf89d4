"""Scans that meet a hostile or changing world: a FIFO where a catalogued file was, a file
rewritten while another scan hashed it, hosts whose clocks disagree, folders that can be
listed but not entered, a catalogue reached through a symbolic link. On both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dupfinder import Catalogue
from dupfinder.db import models, pending
from tests.helpers import HOST, as_unprivileged, blob, write


def dupfinder(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dupfinder", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_a_fifo_where_a_catalogued_file_was_never_hangs_a_scan(db_url: str, tmp_path: Path
                                                               ) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write(a / "f1", b"hello")
    write(a / "keep", b"another size")
    common = ("--db-url", db_url, "--host-label", HOST, "-p", "1")
    assert dupfinder("scan", str(a), *common).returncode == 0
    (a / "f1").unlink()
    os.mkfifo(a / "f1")  # nobody will ever write to it
    write(b / "g", b"world")  # 5 bytes, like A/f1 was: A/f1 becomes a hash candidate
    done = dupfinder("scan", str(b), "-v", *common, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(a) not in done.stderr  # A's problems are not this scan's errors
    assert "0 errors" in done.stdout


def test_a_hash_read_before_another_scan_rewrote_the_file_is_not_stored(
        cat: Catalogue, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = write(tmp_path / "x", b"A" * 20)
    y = write(tmp_path / "y", b"A" * 20)
    real_save = pending.append
    raced: list[bool] = []

    def save_after_a_race(session, scan_id, updates):  # type: ignore[no-untyped-def]
        if not raced:  # scan A read both files; before it writes, scan B wins a race
            raced.append(True)
            y.write_bytes(b"B" * 20)
            later = os.stat(y).st_mtime_ns + 2_000_000_000
            os.utime(y, ns=(later, later))
            with Catalogue.open(db_url, host=HOST, fallback=False) as other:
                assert other.scan([tmp_path], processes=1).sync.changed == 1
        return real_save(session, scan_id, updates)

    # PostgreSQL's workers write their own results; SQLite's scan writes what they send back
    monkeypatch.setattr(pending, "append", save_after_a_race)
    cat.scan([tmp_path], processes=1)
    assert raced
    assert list(cat.groups()) == []  # x and y differ now: never listed as duplicates
    monkeypatch.setattr(pending, "append", real_save)
    y.write_bytes(b"A" * 20)
    cat.scan([tmp_path], processes=1)
    assert [[f.path for f in g.files] for g in cat.groups()] == [[str(x), str(y)]]


class _Behind(datetime):
    """A clock ten minutes behind, as on a host whose clock drifted."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
        return datetime.now(tz) - timedelta(minutes=10)


def test_hosts_with_skewed_clocks_still_complete_groups(db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    write(tmp_path / "on-a/report.pdf", blob(3, 9000))
    write(tmp_path / "on-b/report.pdf", blob(3, 9000))
    with Catalogue.open(db_url, host="host-a", fallback=False) as a, \
            Catalogue.open(db_url, host="host-b", fallback=False) as b:
        a.scan([tmp_path / "on-a"], processes=1)
        monkeypatch.setattr(models, "datetime", _Behind)  # host B's clock
        b.scan([tmp_path / "on-b"], processes=1)
        monkeypatch.undo()
        again = a.scan([tmp_path / "on-a"], processes=1)
        assert again.files_hashed == 1  # B's new row is newer than A's last scan
        assert a.totals() == (1, 2, 9000)


def test_a_folder_that_can_be_listed_but_not_entered_keeps_its_rows(db_url: str,
                                                                    shared_tmp: Path) -> None:
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{shared_tmp}/cat.db"
    tree = shared_tmp / "tree"
    write(tree / "locked/a", b"twin")
    write(tree / "open/b", b"twin")
    for folder, dirs, files in os.walk(shared_tmp):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), 65534, 65534)

    def scan() -> tuple[int, int, int]:
        with Catalogue.open(url, host=HOST, fallback=False) as cat:
            summary = cat.scan([tree], processes=1)
            return summary.sync.seen, summary.sync.removed, cat.totals().groups

    assert as_unprivileged(scan) == (2, 0, 1)
    (tree / "locked").chmod(0o644)  # names can be read, the folder cannot be entered
    seen, removed, groups = as_unprivileged(scan)
    assert (seen, removed, groups) == (1, 0, 1)  # nothing recorded is lost


def test_a_sqlite_catalogue_reached_through_a_link_is_not_catalogued(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    write(real / "a", b"twin")
    write(real / "b", b"twin")
    with Catalogue.open(f"sqlite:///{tmp_path}/link/cat.db", host=HOST) as cat:
        cat.scan([real], processes=1)
        cat.scan([real], processes=1)  # the catalogue file exists and has grown by now
        names = {os.path.basename(f.path) for g in cat.groups() for f in g.files}
        assert cat.stats().files == 2 and names == {"a", "b"}


@pytest.mark.parametrize("args", [("undo", "0"), ("journal", "0"),
                                  ("journal", "99999999999999999999999"),
                                  ("undo", "99999999999999999999999")])
def test_run_ids_out_of_range_are_one_line_errors(cli, db_url: str, args: tuple[str, ...]
                                                  ) -> None:
    res = cli(*args, "--db-url", db_url)
    assert res.code == 2
    (line,) = res.err.strip().splitlines()
    assert line.startswith("dupfinder: error: ") and args[1] in line
