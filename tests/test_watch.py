"""``dupfinder watch`` on real inotify: it keeps the catalogue equal to what a fresh scan
would give, on both backends, through renames, bursts, overflows, the watch limit, roots
that go away and kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.states import ScanStatus
from dupfinder.watch.changes import Pending
from dupfinder.watch.mounts import network_paths
from tests.helpers import HOST, blob, write
from tests.watching import Watcher, kill, many, settles, sizes


def test_follows_created_rewritten_deleted_and_renamed_files(db_url: str, tmp_path: Path
                                                             ) -> None:
    root = tmp_path / "tree"
    write(root / "a" / "one", blob(1, 5000))
    write(root / "b" / "lone", blob(2, 3000))
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        # a copy arrives: said with both names, exactly (a newline in a name included)
        shutil.copy(root / "a" / "one", root / "b" / "copy\nof one")
        e = w.wait_for("new_copy")
        assert (e["path"], e["other_path"], e["size"]) == (
            str(root / "b" / "copy\nof one"), str(root / "a" / "one"), 5000)
        settles(db_url, [root], tmp_path)
        # rewritten: no longer a copy, and the group ends
        n = len(w.events())
        write(root / "a" / "one", blob(3, 5000))
        e = w.wait_for("not_duplicated", after=n)
        assert e["size"] == 5000
        settles(db_url, [root], tmp_path)
        # a file renamed keeps its row; deleted files leave
        os.rename(root / "b" / "lone", root / "a" / "renamed")
        os.remove(root / "a" / "one")
        settles(db_url, [root], tmp_path)
        assert w.stop() == 0


def test_a_folder_rename_moves_its_rows_and_hashes_nothing(db_url: str, tmp_path: Path
                                                           ) -> None:
    root = tmp_path / "tree"
    many(root / "photos" / "2024", 300)
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        db = open_database(load_settings(db_url=db_url), no_fallback=True)
        try:
            with db.session() as s:
                before = {p: h for p, h in s.execute(select(FileHash.path, FileHash.full_hash))}
            n = len(w.events())
            os.rename(root / "photos", root / "pictures")
            e = w.wait_for("updated", lambda e: e["moved"] > 0, after=n)
            assert (e["moved"], e["count"]) == (300, 0)  # one statement, no scan at all
            settles(db_url, [root], tmp_path)
            with db.session() as s:
                after = {p: h for p, h in s.execute(select(FileHash.path, FileHash.full_hash))}
            assert sorted(after.values(), key=str) == sorted(before.values(), key=str)
            # a file written in the renamed folder right after is seen under its new name
            write(root / "pictures" / "2024" / "late", blob(4, 100))
            settles(db_url, [root], tmp_path)
        finally:
            db.dispose()


def test_filters_hold_as_in_a_scan(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "keep" / "a.jpg", blob(1, 4000))
    write(root / ".gitignore", "*.log\n")
    args = ["--exclude", "cache/", "--exclude", "*.tmp", "--ignore-files"]
    with Watcher(db_url, [root], tmp_path / "logs", *args) as w:
        w.ready()
        write(root / "cache" / "a.jpg", blob(1, 4000))  # excluded folder: never recorded
        write(root / "keep" / "b.tmp", blob(1, 4000))  # excluded name
        write(root / "keep" / "c.log", blob(1, 4000))  # ignored by .gitignore
        settles(db_url, [root], tmp_path, exclude=("cache/", "*.tmp"), ignore_files=True)
        # renamed out of the excluded name: a new file; the ignore file no longer ignores
        # c.log: its folder is rescanned and c.log found
        os.rename(root / "keep" / "b.tmp", root / "keep" / "b.jpg")
        write(root / ".gitignore", "*.bak\n")
        settles(db_url, [root], tmp_path, exclude=("cache/", "*.tmp"), ignore_files=True)
        assert not any(e["event"] == "new_copy" and "cache" in e["path"] for e in w.events())


def test_hard_links_are_no_new_copy(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "a", blob(1, 6000))
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        os.link(root / "a", root / "b")
        settles(db_url, [root], tmp_path)
        shutil.copy(root / "a", root / "c")
        e = w.wait_for("new_copy")
        assert e["path"] == str(root / "c")
        assert [e["path"] for e in w.events() if e["event"] == "new_copy"] == [str(root / "c")]


def test_a_file_still_being_written_is_read_once_when_it_ends(db_url: str, tmp_path: Path
                                                              ) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        n = len(w.events())
        with open(root / "big", "wb") as f:  # written for 2 s, kept open
            for i in range(20):
                f.write(blob(i, 1 << 16))
                f.flush()
                time.sleep(0.1)
            assert not [e for e in w.events()[n:] if e["event"] == "updated"]
        settles(db_url, [root], tmp_path)
        assert len([e for e in w.events()[n:] if e["event"] == "updated"]) == 1


def test_moved_in_and_out_of_the_roots(db_url: str, tmp_path: Path) -> None:
    root, outside = tmp_path / "tree", tmp_path / "outside"
    many(outside / "album", 50)
    write(root / "gone" / "x", blob(5, 700))
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        os.rename(outside / "album", root / "album")  # in from outside: new files
        os.rename(root / "gone", outside / "gone")  # out: they leave
        settles(db_url, [root], tmp_path)
        write(root / "album" / "new", blob(6, 800))  # the folder moved in is watched
        settles(db_url, [root], tmp_path)


def test_a_burst_settles_to_a_fresh_scan(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    many(root / "tree50k", 50_000, seed=1)
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        t = time.monotonic()
        made = many(root / "burst", 10_000, seed=2)
        assert time.monotonic() - t < 5
        settles(db_url, [root], tmp_path, timeout=120)
        for p in made:
            p.unlink()
        settles(db_url, [root], tmp_path, timeout=120)
        os.rename(root / "tree50k", root / "tree-moved")
        settles(db_url, [root], tmp_path, timeout=120)


def test_an_overflowed_queue_is_rescanned_and_said(db_url: str, tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    root = tmp_path / "tree"
    write(root / "old", blob(1, 100))
    (root / "flood").mkdir()  # watched: every file made in it is an event
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        w.proc.send_signal(signal.SIGSTOP)  # it reads nothing while the queue fills
        try:
            many(root / "flood", limit + 2000)
            (root / "old").unlink()
        finally:
            w.proc.send_signal(signal.SIGCONT)
        w.wait_for("overflow")
        assert "event queue overflowed" in w.err()
        settles(db_url, [root], tmp_path, timeout=120)


def test_the_watch_limit_is_said_and_the_rest_rescanned(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for name in ("a", "b", "c", "d", "e", "f"):
        write(root / name / "file", blob(ord(name), 100 + ord(name)))
    # a user namespace of its own has its own limit: 3 watches for 7 folders
    prefix = ["unshare", "-U", "-r", "sh", "-c",
              'echo 3 > /proc/sys/user/max_inotify_watches && exec "$@"', "sh"]
    with Watcher(db_url, [root], tmp_path / "logs", "--rescan-every", "2s",
                 prefix=prefix) as w:
        e = w.wait_for("limit")
        assert e["count"] == 3 and len(e["paths"]) == 4
        assert "fs.inotify.max_user_watches (3)" in w.err()
        assert "sysctl fs.inotify.max_user_watches=N" in w.err()
        w.ready()
        unwatched = Path(e["paths"][0])
        write(unwatched / "new", blob(9, 999))  # no event: found by the rescan
        w.wait_for("rescan")
        settles(db_url, [root], tmp_path, timeout=30)


def test_a_root_that_goes_away_keeps_its_rows_and_comes_back(db_url: str, tmp_path: Path
                                                             ) -> None:
    first, second, away = tmp_path / "first", tmp_path / "second", tmp_path / "away"
    write(first / "x", blob(1, 1000))
    write(second / "y", blob(2, 2000))
    with Watcher(db_url, [first, second], tmp_path / "logs") as w:
        w.ready()
        db = open_database(load_settings(db_url=db_url), no_fallback=True)
        try:
            kept = sizes(db)
            os.rename(first, away)
            w.wait_for("root_gone", lambda e: e["path"] == str(first))
            assert f"watched folder gone: {first}" in w.err()
            write(second / "z", blob(3, 3000))  # the other root goes on
            w.wait_for("updated", lambda e: e["count"] > 0)
            deadline = time.monotonic() + 30
            while str(second / "z") not in sizes(db):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert sizes(db) == {**kept, str(second / "z"): 3000}
            os.rename(away, first)  # back, and watched again
            w.wait_for("root_back", timeout=30)
            write(first / "w", blob(4, 4000))
            settles(db_url, [first, second], tmp_path)
        finally:
            db.dispose()


def test_an_unmounted_root_keeps_its_rows(db_url: str, tmp_path: Path) -> None:
    mounted, other = tmp_path / "mounted", tmp_path / "other"
    below = other / "usb"  # a file system mounted below a root
    for folder in (mounted, below):
        folder.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
                       check=True)
    try:
        write(mounted / "inner" / "x", blob(1, 1000))
        write(below / "y", blob(2, 2000))
        with Watcher(db_url, [mounted, other], tmp_path / "logs") as w:
            w.ready()
            db = open_database(load_settings(db_url=db_url), no_fallback=True)
            try:
                kept = sizes(db)
                assert {str(mounted / "inner" / "x"), str(below / "y")} <= set(kept)
                subprocess.run(["umount", str(mounted)], check=True)
                w.wait_for("root_gone", lambda e: e["path"] == str(mounted))
                subprocess.run(["umount", str(below)], check=True)
                w.wait_for("unmounted", lambda e: e["path"] == str(below))
                assert f"file system unmounted: {below}" in w.err()
                write(other / "z", blob(3, 3000))  # the rest is still watched
                w.wait_for("updated", lambda e: e["count"] > 0)
                time.sleep(1)
                assert sizes(db) == {**kept, str(other / "z"): 3000}
            finally:
                db.dispose()
            assert w.stop() == 0
    finally:
        for folder in (mounted, below):
            subprocess.run(["umount", str(folder)], capture_output=True)


def test_kill_9_then_scan_equals_a_fresh_scan(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    many(root / "start", 500)
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        many(root / "during", 3000, seed=3)
        kill(w.proc)
    many(root / "after", 100, seed=4)
    done = subprocess.run([sys.executable, "-m", "dupfinder", "scan", str(root), "--db-url",
                           db_url, "--host-label", HOST, "-q"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    settles(db_url, [root], tmp_path, timeout=5)


def test_other_commands_work_while_it_runs(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "a", blob(1, 5000))
    write(root / "b", blob(1, 5000))
    with Watcher(db_url, [root], tmp_path / "logs") as w:
        w.ready()
        base = ["--db-url", db_url, "--host-label", HOST]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([sys.executable, "-m", "dupfinder", *args, *base],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            return done

        assert str(root / "b") in run("dupes").stdout
        (tmp_path / "out").mkdir()
        run("report", "-o", str(tmp_path / "out" / "report.html"))
        run("unique", str(root))
        # a dedupe run's own changes: recorded by it, not taken for foreign ones
        run("dedupe", str(root), "--action", "hardlink", "--apply", "--yes")
        write(root / "c", blob(1, 5000))
        w.wait_for("new_copy", lambda e: e["path"] == str(root / "c"))
        settles(db_url, [root], tmp_path)
        assert w.stop() == 0


def test_ctrl_c_during_the_initial_scan_is_a_scan_interruption(db_url: str, tmp_path: Path
                                                               ) -> None:
    root = tmp_path / "tree"
    many(root, 20_000, size=4096)
    db = open_database(load_settings(db_url=db_url), no_fallback=True)
    try:
        with Watcher(db_url, [root], tmp_path / "logs") as w:
            deadline = time.monotonic() + 60
            while True:  # the scan has started
                with db.session() as s:
                    if s.scalar(select(func.count()).select_from(FileHash)):
                        break
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert w.stop(signal.SIGINT) == 130
            assert "interrupted" in w.err()
        with db.session() as s:
            status = s.scalar(select(ScanMetadata.status).order_by(ScanMetadata.id.desc()))
        assert status == ScanStatus.INTERRUPTED
    finally:
        db.dispose()


def test_sigterm_ends_it_with_0_and_writes_what_is_ready(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    with Watcher(db_url, [root], tmp_path / "logs", "--settle", "30") as w:
        w.ready()
        write(root / "closed", blob(1, 100))  # closed: ready at once
        time.sleep(0.5)
        assert w.stop() == 0
    db = open_database(load_settings(db_url=db_url), no_fallback=True)
    try:
        assert str(root / "closed") in sizes(db)
    finally:
        db.dispose()


def test_bad_input_is_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "file", "x")
    url = f"sqlite:///{tmp_path}/c.db"
    r = cli("watch", str(tmp_path / "file"), "--db-url", url)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "watch takes folders" in r.err and str(tmp_path / "file") in r.err
    r = cli("watch", str(tmp_path), "--db-url", url, "--rescan-every", "soon")
    assert r.code == 2 and "--rescan-every 'soon'" in r.err


def test_network_file_systems_are_found_in_mountinfo() -> None:
    info = "\n".join([
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        "40 22 0:50 / /mnt/nas rw,relatime shared:9 - nfs4 nas:/export rw",
        "41 22 0:51 / /home/me/my\\040share rw - cifs //srv/share rw",
        "42 22 0:52 / /home/me/local rw - tmpfs tmpfs rw",
    ])
    assert network_paths(["/mnt/nas/photos", "/home/me"], info) == [
        "/mnt/nas/photos", "/home/me/my share"]
    assert network_paths(["/home/me/local"], info) == []


def test_pending_waits_for_writers_and_follows_renames() -> None:
    p = Pending(settle=1.0)
    p.quiet("/r/a/big", at=0.0)
    p.quiet("/r/a/big", at=0.5)  # written again: later
    p.now("/r/a/small", at=0.5)
    assert p.take(0.6).paths == ["/r/a/small"]
    p.move("/r/a", "/r/b", folder=True)
    batch = p.take(1.0)
    assert batch.moves == [("/r/a", "/r/b", True)] and batch.paths == []
    assert p.next_due() == 1.5
    assert p.take(1.5).paths == ["/r/b/big"]
    assert not p.take(9.0)



def test_its_own_catalogue_file_in_a_watched_folder_is_no_change(db_url: str, tmp_path: Path
                                                                 ) -> None:
    root = tmp_path / "tree"
    write(root / "a", blob(1, 100))
    url = f"sqlite:///{root}/catalogue.db" if db_url.startswith("sqlite") else db_url
    with Watcher(url, [root], tmp_path / "logs") as w:
        w.ready()
        write(root / "b", blob(2, 200))
        w.wait_for("updated")
        time.sleep(3)  # its own writes (the file, -wal, -shm, the lock) start nothing
        assert len([e for e in w.events() if e["event"] == "updated"]) == 1
        assert w.stop() == 0


def test_folders_reached_through_links_are_watched_with_follow_links(
        db_url: str, tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
    write(elsewhere / "pics" / "a", blob(1, 3000))
    write(root / "b", blob(2, 3000))
    (root / "pics").symlink_to(elsewhere / "pics")
    (root / "pics" / "loop").symlink_to(root)  # a loop: not entered twice
    with Watcher(db_url, [root], tmp_path / "logs", "--follow-links") as w:
        w.ready()
        shutil.copy(root / "b", elsewhere / "pics" / "b-copy")  # seen through the link
        e = w.wait_for("new_copy")
        assert e["path"] == str(root / "pics" / "b-copy")
        settles(db_url, [root], tmp_path, follow_links=True)
