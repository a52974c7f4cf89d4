"""``dupfinder dedupe``, ``undo`` and ``journal`` on both backends."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from dupfinder import Catalogue, GroupFile
from dupfinder.actions.plan import keeper
from dupfinder.db.engine import Database
from dupfinder.db.models import ActionEntry, FileHash
from dupfinder.db.stored_paths import from_db
from tests.helpers import HOST, blob, dedupe_tree, scan, tree_checksums


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return dedupe_tree(tmp_path / "tree")


def run(cli, db_url: str, *args: str):
    return cli(*args, "--db-url", db_url, "--host-label", HOST)


def contents(root: Path) -> set[bytes]:
    return {data for _, data in tree_checksums(root).values()}


def test_dry_run_lists_and_changes_nothing(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    before = tree_checksums(tree)
    res = run(cli, db_url, "dedupe", str(tree), "--action", "delete")
    assert res.code == 0, res.err
    lines = res.out.strip().splitlines()
    assert len(lines) == 4  # 3 actions + total
    assert f"delete   {tree}/copies/photo.jpg  (keeps {tree}/keep/photo.jpg)" in res.out
    assert "3 actions planned; would reclaim 156.3 KiB (dry run" in res.out
    assert tree_checksums(tree) == before
    with db.session() as s:
        assert s.scalars(select(ActionEntry)).all() == []  # not even journaled


@pytest.mark.parametrize("action", ["delete", "trash", "hardlink", "symlink", "move"])
def test_each_action_keeps_one_copy_and_updates_the_catalogue(
        cli, db: Database, db_url: str, tree: Path, tmp_path: Path, action: str) -> None:
    scan(db, tree)
    before = contents(tree)
    extra = ["--to", str(tmp_path / "moved")] if action == "move" else []
    res = run(cli, db_url, "dedupe", str(tree), "--action", action, "--apply", "-y", *extra)
    assert res.code == 0, res.err
    assert "3 done, 0 skipped, 0 failed" in res.out
    assert contents(tree) >= {c for c in before}  # every content still exists
    assert (tree / "keep/photo.jpg").read_bytes() == blob(1, 80_000)
    dup = tree / "copies/photo.jpg"
    if action in ("delete", "trash", "move"):
        assert not dup.exists()
    elif action == "hardlink":
        assert dup.stat().st_ino == (tree / "keep/photo.jpg").stat().st_ino
    else:
        assert os.readlink(dup) == str(tree / "keep/photo.jpg")
    if action == "move":
        assert (tmp_path / "moved" / str(dup).lstrip("/")).read_bytes() == blob(1, 80_000)
    with db.session() as s:
        rows = {from_db(p): ino for p, ino in s.execute(select(FileHash.path, FileHash.inode))}
    if action == "hardlink":
        assert rows[str(dup)] == rows[str(tree / "keep/photo.jpg")]  # link recorded
    else:
        assert str(dup) not in rows  # gone from its place: gone from the catalogue
    again = scan(db, tree)
    assert again.duplicate_groups == 0 and again.wasted_bytes == 0


@pytest.mark.parametrize(("policy", "kept"), [
    ("oldest", "keep/photo.jpg"), ("newest", "copies/deeper/photo-2.jpg"),
    ("shortest-path", "keep/photo.jpg"), ("longest-path", "copies/deeper/photo-2.jpg"),
])
def test_keep_policies(cat: Catalogue, tree: Path, policy: str, kept: str) -> None:
    cat.scan([tree])
    plan = cat.plan_dedupe("delete", keep=policy, min_size=50_000)
    assert {p.kept for p in plan} == {str(tree / kept)}


def test_prefer_and_first_root_and_ties_are_deterministic(tmp_path: Path) -> None:
    files = [GroupFile("/b/x", "h", 5, 1, 1), GroupFile("/a/x", "h", 5, 1, 2),
             GroupFile("/c/x", "h", 9, 1, 3)]
    assert keeper(files, "oldest").path == "/a/x"  # tie on mtime: byte order of the path
    assert keeper(list(reversed(files)), "oldest").path == "/a/x"
    assert keeper(files, "oldest", prefer=["/c"]).path == "/c/x"
    assert keeper(files, "newest", prefer=["/z", "/b"]).path == "/b/x"
    assert keeper(files, "first-root", roots=["/c", "/a"]).path == "/c/x"


def test_modified_after_scan_is_skipped_untouched(cli, db: Database, db_url: str,
                                                  tree: Path) -> None:
    scan(db, tree)
    victim = tree / "copies/photo.jpg"
    victim.write_bytes(blob(9, 80_000))  # same size, other content, new mtime
    res = run(cli, db_url, "dedupe", str(tree), "--action", "delete", "--apply", "-y")
    assert res.code == 0
    assert f"skipped {victim}: changed since the scan" in res.err
    assert victim.read_bytes() == blob(9, 80_000)
    assert "2 done, 1 skipped" in res.out


def test_content_differs_despite_same_metadata_is_skipped(cli, db: Database, db_url: str,
                                                          tree: Path) -> None:
    scan(db, tree)
    victim = tree / "copies/a.txt"
    st = victim.stat()
    victim.write_text("text twiX")  # same size; put the old mtime back
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = run(cli, db_url, "dedupe", str(tree), "--action", "delete", "--apply", "-y")
    assert "content differs from the copy that stays" in res.err
    assert victim.read_text() == "text twiX"


def test_keeper_gone_skips_its_group(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    (tree / "keep/photo.jpg").unlink()
    res = run(cli, db_url, "dedupe", str(tree), "--action", "delete", "--apply", "-y")
    assert res.code == 0
    assert res.err.count("the copy that stays is gone") == 2
    assert (tree / "copies/photo.jpg").exists() and (tree / "copies/deeper/photo-2.jpg").exists()


def test_cross_device_hardlink_is_a_skip(cli, db: Database, db_url: str, tree: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scan(db, tree)

    def exdev(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", exdev)
    res = run(cli, db_url, "dedupe", str(tree), "--action", "hardlink", "--apply", "-y")
    assert res.code == 0
    assert res.err.count("cross-device") == 3
    assert "0 done, 3 skipped, 0 failed" in res.out
    assert not list(tree.rglob(".*dupfinder-*"))  # no temporary left behind


@pytest.mark.parametrize("action", ["trash", "hardlink", "symlink", "move"])
def test_undo_restores_the_tree(cli, db: Database, db_url: str, tree: Path, tmp_path: Path,
                                action: str) -> None:
    scan(db, tree)
    before = tree_checksums(tree)
    modes = {p: os.stat(p).st_mode for p in before}
    extra = ["--to", str(tmp_path / "moved")] if action == "move" else []
    assert run(cli, db_url, "dedupe", str(tree), "--action", action, "--apply", "-y",
               *extra).code == 0
    res = run(cli, db_url, "undo")
    assert res.code == 0, res.out + res.err
    assert "3 restored, 0 could not be restored" in res.out
    assert tree_checksums(tree) == before  # same paths, contents and mtimes
    assert {p: os.stat(p).st_mode for p in before} == modes
    assert all(not os.path.islink(p) for p in before)
    assert len({os.stat(p).st_ino for p in before}) == len(before)  # no links left
    rescan = scan(db, tree)
    assert rescan.duplicate_groups == 2


def test_delete_cannot_be_undone_and_says_so(cli, db: Database, db_url: str,
                                             tree: Path) -> None:
    scan(db, tree)
    res = run(cli, db_url, "dedupe", str(tree), "--action", "delete", "--apply", "-y")
    assert "deleted files cannot be restored" in res.err  # warned before acting
    res = run(cli, db_url, "undo")
    assert res.code == 1
    assert res.out.count("deleted files cannot be restored") == 3


def test_undo_never_overwrites_a_new_file(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    run(cli, db_url, "dedupe", str(tree), "--action", "trash", "--apply", "-y")
    (tree / "copies/a.txt").write_text("a new file took the place")
    res = run(cli, db_url, "undo")
    assert res.code == 1
    assert "something else is at the original path now" in res.out
    assert (tree / "copies/a.txt").read_text() == "a new file took the place"


def test_journal_records_every_action(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    (tree / "copies/a.txt").unlink()  # vanished since the scan: journaled as skipped
    run(cli, db_url, "dedupe", str(tree), "--action", "trash", "--apply", "-y")
    with db.session() as s:
        states = sorted(s.scalars(select(ActionEntry.state)))
    assert states == ["done", "done", "skipped"]
    listing = run(cli, db_url, "journal")
    assert "trash    complete      3 planned, 2 done, 1 skipped" in listing.out
    entries = run(cli, db_url, "journal", "1")
    assert "skipped     trash" in entries.out and "the file is gone" in entries.out


def test_only_this_hosts_files_are_touched(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    res = cli("dedupe", str(tree), "--action", "delete", "--apply", "-y", "--db-url", db_url,
              "--host-label", "another-machine")
    assert res.code == 0 and "0 actions planned" in res.out
    assert (tree / "copies/photo.jpg").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--action", "move"], "--action move needs --to DIR"),
    (["--action", "move", "--to", "INSIDE"], "lies inside the scanned folder"),
    (["--action", "delete", "--to", "/tmp"], "--to only goes with --action move"),
    (["--action", "erase"], "'erase' is not one of"),
])
def test_bad_dedupe_options(cli, db_url: str, tree: Path, args: list[str], message: str) -> None:
    args = [str(tree / "keep") if a == "INSIDE" else a for a in args]
    res = cli("dedupe", str(tree), *args, "--db-url", db_url)
    assert res.code == 2 and message in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_apply_without_terminal_needs_yes(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    res = run(cli, db_url, "dedupe", str(tree), "--action", "trash", "--apply")
    assert res.code == 2 and "add -y" in res.err
    assert (tree / "copies/photo.jpg").exists()
