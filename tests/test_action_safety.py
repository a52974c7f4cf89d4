"""Actions where a file system could make a dedupe lose data: overlay mounts, links made by
an earlier run, owners and modes, a full move target, links in or below ``--to``.

Written as examples of the library API (``cat``); each runs on both backends. Mounts live
under ``tmp_path`` and are always unmounted in the fixture's teardown.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dupfinder import Catalogue
from dupfinder.errors import SafetyError
from tests.helpers import HOST, blob, write

NOBODY = 65534
SAME_FILE = "this same file seen through another mount"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False, capture_output=True)


@pytest.fixture
def mounts() -> Iterator[Callable[..., Path]]:
    """``mounts(target, *mount_args)`` mounts and returns ``target``; every mount made is
    unmounted at teardown, even when the test fails (newest first)."""
    made: list[Path] = []

    def do(target: Path, *args: str) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        mount(*args, str(target))
        made.append(target)
        return target

    yield do
    for target in reversed(made):
        while os.path.ismount(target):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(target)], capture_output=True)
                break


def overlay(mounts: Callable[..., Path], base: Path) -> Path:
    for d in ("lower", "upper", "work", "merged"):
        (base / d).mkdir(parents=True, exist_ok=True)
    return mounts(base / "merged", "-t", "overlay", "overlay", "-o",
                  f"lowerdir={base / 'lower'},upperdir={base / 'upper'},"
                  f"workdir={base / 'work'}")


def tmpfs(mounts: Callable[..., Path], target: Path, size: str) -> Path:
    return mounts(target, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs")


def all_files(root: Path) -> list[str]:
    """Every non-folder below ``root``, hidden ones included, relative to it."""
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, n), root) for n in files]
    return sorted(found)


def owner_and_mode(p: Path | str) -> tuple[int, int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def age(p: Path, seconds: int) -> None:
    t = 1_600_000_000_000_000_000 + seconds * 1_000_000_000
    os.utime(p, ns=(t, t))


# ------------------------------------------------------------------ 1. overlay mounts

THESIS = b"my thesis, the only copy\n" * 400


def test_overlay_lower_file_is_not_deleted_for_its_own_merged_view(
        cat: Catalogue, tmp_path: Path, mounts: Callable[..., Path]) -> None:
    ov = tmp_path / "ov"
    write(ov / "lower/thesis.txt", THESIS)
    merged = overlay(mounts, ov)
    cat.scan([ov / "lower", merged])

    plan = cat.plan_dedupe("delete", prefer=[merged])
    assert [(p.path, p.kept) for p in plan] == [(str(ov / "lower/thesis.txt"),
                                                 str(merged / "thesis.txt"))]
    run = cat.apply(plan)

    assert run.done == 0 and run.failed == []
    assert [(path, why) for path, why in run.skipped if SAME_FILE in why] == \
        [(str(ov / "lower/thesis.txt"), run.skipped[0][1])]
    assert (ov / "lower/thesis.txt").read_bytes() == THESIS
    assert (merged / "thesis.txt").read_bytes() == THESIS
    assert all_files(ov / "lower") == ["thesis.txt"]  # no probe left behind
    umount(merged)
    overlay(mounts, ov)
    assert (merged / "thesis.txt").read_bytes() == THESIS


def test_overlay_same_file_is_caught_by_the_link_probe_alone(
        cat: Catalogue, tmp_path: Path, mounts: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where an overlay maps inode numbers (xino), only the hard-link probe tells."""
    from dupfinder.actions import fileops

    monkeypatch.setattr(fileops, "_refuse_same_inode_elsewhere", lambda st, kst: None)
    ov = tmp_path / "ov"
    write(ov / "lower/thesis.txt", THESIS)
    merged = overlay(mounts, ov)
    cat.scan([ov / "lower", merged])

    run = cat.apply(cat.plan_dedupe("delete", prefer=[merged]))

    assert run.done == 0 and len(run.skipped) == 1 and SAME_FILE in run.skipped[0][1]
    assert (ov / "lower/thesis.txt").read_bytes() == THESIS
    assert (merged / "thesis.txt").read_bytes() == THESIS
    assert all_files(ov / "lower") == ["thesis.txt"]  # the probe link is gone


def test_overlay_merged_view_is_not_deleted_for_its_lower_file(
        cat: Catalogue, tmp_path: Path, mounts: Callable[..., Path]) -> None:
    ov = tmp_path / "ov"
    write(ov / "lower/thesis.txt", THESIS)
    merged = overlay(mounts, ov)
    cat.scan([ov / "lower", merged])

    plan = cat.plan_dedupe("delete", prefer=[ov / "lower"])
    assert [(p.path, p.kept) for p in plan] == [(str(merged / "thesis.txt"),
                                                 str(ov / "lower/thesis.txt"))]
    run = cat.apply(plan)

    # one file seen twice: nothing to reclaim, and deleting through the overlay would only
    # hide the lower file (a whiteout), so it is left alone
    assert run.done == 0 and run.failed == []
    assert len(run.skipped) == 1 and SAME_FILE in run.skipped[0][1]
    for readable in (ov / "lower/thesis.txt", merged / "thesis.txt"):
        assert readable.read_bytes() == THESIS
    assert all_files(ov / "upper") == []  # not even copied up
    umount(merged)
    assert (ov / "lower/thesis.txt").read_bytes() == THESIS
    overlay(mounts, ov)
    assert (merged / "thesis.txt").read_bytes() == THESIS


# ------------------------------------------------------------------ 2. symlink, then delete


def test_delete_after_symlink_dedupe_keeps_the_link_target(cat: Catalogue,
                                                           tmp_path: Path) -> None:
    photos, backup = tmp_path / "photos", tmp_path / "backup"
    data = blob(7, 50_000)
    img, img_copy, old = (write(photos / "img", data), write(photos / "img_copy", data),
                          write(backup / "img", data))
    age(old, 0)  # the backup is the oldest copy
    age(img, 10)
    age(img_copy, 20)
    cat.scan([photos, backup])

    plan = cat.plan_dedupe("symlink", photos, scope="within", keep="shortest-path")
    assert [(p.path, p.kept) for p in plan] == [(str(img_copy), str(img))]
    assert cat.apply(plan).done == 1
    assert os.readlink(img_copy) == str(img)

    plan = cat.plan_dedupe("delete", [photos, backup], keep="oldest")
    assert {p.kept for p in plan} == {str(img)}  # links point to it: it stays
    run = cat.apply(plan)

    assert (run.done, run.failed) == (1, [])
    assert img.read_bytes() == data
    assert img_copy.is_symlink() and img_copy.read_bytes() == data  # does not dangle
    assert not old.exists()


def test_delete_after_symlink_dedupe_skips_the_link_target_if_planned(
        cat: Catalogue, tmp_path: Path) -> None:
    """Even a plan made before the links existed (so it names their target as a
    duplicate) leaves the target alone."""
    photos, backup = tmp_path / "photos", tmp_path / "backup"
    data = blob(8, 50_000)
    img, img_copy, old = (write(photos / "img", data), write(photos / "img_copy", data),
                          write(backup / "img", data))
    age(old, 0)
    age(img, 10)
    age(img_copy, 20)
    cat.scan([photos, backup])
    delete_plan = cat.plan_dedupe("delete", [photos, backup], keep="oldest")
    assert str(img) in {p.path for p in delete_plan}

    links = cat.plan_dedupe("symlink", photos, scope="within", keep="shortest-path")
    assert cat.apply(links).done == 1
    run = cat.apply(delete_plan)

    assert (str(img), "symbolic links made by an earlier dedupe run point to it") \
        in run.skipped
    assert img.read_bytes() == data and img_copy.read_bytes() == data
    assert old.read_bytes() == data


# ------------------------------------------------------------------ 3. owners and modes


def test_hardlink_skips_a_duplicate_with_another_owner_or_mode(cat: Catalogue,
                                                               tmp_path: Path) -> None:
    data = blob(3, 20_000)
    kept, dup = write(tmp_path / "a/kept", data), write(tmp_path / "b/dup", data)
    age(kept, 0)
    age(dup, 10)
    os.chmod(kept, 0o600)
    os.chown(dup, NOBODY, NOBODY)
    os.chmod(dup, 0o640)
    cat.scan([tmp_path / "a", tmp_path / "b"])

    plan = cat.plan_dedupe("hardlink", keep="oldest")
    assert [(p.path, p.kept) for p in plan] == [(str(dup), str(kept))]
    run = cat.apply(plan)

    assert run.done == 0 and len(run.skipped) == 1
    assert "owner or permissions" in run.skipped[0][1]
    assert owner_and_mode(dup) == (NOBODY, NOBODY, 0o640)
    assert owner_and_mode(kept) == (0, 0, 0o600)
    assert os.stat(dup).st_ino != os.stat(kept).st_ino


def test_move_across_file_systems_keeps_owner_and_mode_and_undo_too(
        cat: Catalogue, tmp_path: Path, mounts: Callable[..., Path]) -> None:
    data = blob(4, 30_000)
    kept, dup = write(tmp_path / "tree/a/kept", data), write(tmp_path / "tree/b/dup", data)
    age(kept, 0)
    age(dup, 10)
    os.chown(dup, NOBODY, NOBODY)
    os.chmod(dup, 0o640)
    to = tmpfs(mounts, tmp_path / "to", "4m")
    cat.scan([tmp_path / "tree"])

    run = cat.apply(cat.plan_dedupe("move", tmp_path / "tree", to=to))

    assert (run.done, run.skipped, run.failed) == (1, [], [])
    moved = to / str(dup).lstrip("/")
    assert moved.read_bytes() == data and not dup.exists()
    assert owner_and_mode(moved) == (NOBODY, NOBODY, 0o640)
    assert os.stat(moved).st_mtime_ns == 1_600_000_010_000_000_000

    result = cat.undo()
    assert result.restored == [str(dup)] and result.not_restored == []
    assert dup.read_bytes() == data and not moved.exists()
    assert owner_and_mode(dup) == (NOBODY, NOBODY, 0o640)


# ------------------------------------------------------------------ 4. full move target


def test_move_to_a_full_file_system_leaves_no_partial_file_and_retries(
        cat: Catalogue, tmp_path: Path, mounts: Callable[..., Path]) -> None:
    tree = tmp_path / "tree"
    dups = []
    for i in range(3):
        data = blob(20 + i, 600 * 1024)
        age(write(tree / f"keep/f{i}", data), 0)
        dup = write(tree / f"copies/f{i}", data)
        age(dup, 10)
        dups.append((dup, data))
    to = tmpfs(mounts, tmp_path / "to", "1m")
    cat.scan([tree])

    run = cat.apply(cat.plan_dedupe("move", tree, to=to))

    assert run.done == 1
    not_moved = run.failed + run.skipped
    assert len(not_moved) == 2 and all(why for _, why in not_moved)
    moved = [(d, data) for d, data in dups if not d.exists()]
    assert len(moved) == 1
    for d, data in dups:
        if d.exists():  # left in place, untouched
            assert d.read_bytes() == data
            assert os.stat(d).st_mtime_ns == 1_600_000_010_000_000_000
    assert all_files(to) == [str(moved[0][0]).lstrip("/")]  # no partial or hidden file
    assert (to / str(moved[0][0]).lstrip("/")).read_bytes() == moved[0][1]

    mount("-o", "remount,size=4m", str(to))
    retry = cat.apply(cat.plan_dedupe("move", tree, to=to))

    assert (retry.done, retry.skipped, retry.failed) == (2, [], [])
    assert all(not d.exists() for d, _ in dups)
    assert all_files(to) == sorted(str(d).lstrip("/") for d, _ in dups)
    for d, data in dups:
        assert (to / str(d).lstrip("/")).read_bytes() == data


# ------------------------------------------------------------------ 5. --to safety


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    """A scanned-to-be tree with one duplicate (``copies/x``, newer than ``keep/x``)."""
    tree = tmp_path / "tree"
    age(write(tree / "keep/x", blob(5, 10_000)), 0)
    age(write(tree / "copies/x", blob(5, 10_000)), 10)
    return tree


def test_to_that_is_a_symlink_into_the_tree_is_refused(cat: Catalogue, cli, db_url: str,
                                                       pair: Path, tmp_path: Path) -> None:
    cat.scan([pair])
    link = tmp_path / "elsewhere"
    link.symlink_to(pair / "keep")
    with pytest.raises(SafetyError, match="symbolic link"):
        cat.plan_dedupe("move", pair, to=link)

    res = cli("dedupe", pair, "--action", "move", "--to", link, "--apply", "-y",
              "--db-url", db_url, "--host-label", HOST)
    assert res.code == 2
    assert res.err.startswith("dupfinder: error: ") and "symbolic link" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert (pair / "copies/x").exists() and all_files(pair / "keep") == ["x"]


def test_to_below_a_symlinked_folder_is_refused(cat: Catalogue, pair: Path,
                                                tmp_path: Path) -> None:
    cat.scan([pair])
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    with pytest.raises(SafetyError, match="symbolic link"):
        cat.plan_dedupe("move", pair, to=tmp_path / "via" / "moved")
    assert not (tmp_path / "real" / "moved").exists()


def test_symlink_planted_inside_to_is_not_followed(cat: Catalogue, pair: Path,
                                                   tmp_path: Path) -> None:
    cat.scan([pair])
    to, decoy = tmp_path / "to", tmp_path / "decoy"
    decoy.mkdir()
    # a link where the move would create the file's first folder (to/tmp -> decoy)
    first = str(pair).lstrip("/").split("/")[0]
    to.mkdir()
    (to / first).symlink_to(decoy)

    run = cat.apply(cat.plan_dedupe("move", pair, to=to))

    assert run.done == 0 and run.failed == []
    assert len(run.skipped) == 1 and "symbolic link" in run.skipped[0][1]
    assert (pair / "copies/x").read_bytes() == blob(5, 10_000)
    assert list(decoy.iterdir()) == []  # nothing written where the link points


def test_move_without_paths_checks_to_against_this_hosts_scanned_folders(
        cat: Catalogue, cli, db_url: str, pair: Path, tmp_path: Path) -> None:
    cat.scan([pair])
    inside = pair / "moved"
    res = cli("dedupe", "--action", "move", "--to", inside, "--db-url", db_url,
              "--host-label", HOST)
    assert res.code == 2 and f"lies inside the scanned folder {pair}" in res.err
    assert len(res.err.strip().splitlines()) == 1

    # another host's scans do not count: only this host's files can be acted on
    other = cli("scan", tmp_path, "--db-url", db_url, "--host-label", "another-host")
    assert other.code == 0, other.err
    outside = tmp_path / "moved"
    res = cli("dedupe", "--action", "move", "--to", outside, "--apply", "-y",
              "--db-url", db_url, "--host-label", HOST)
    assert res.code == 0, res.err
    assert "inside the scanned folder /" not in res.err
    assert "1 done, 0 skipped, 0 failed" in res.out
    assert (outside / str(pair / "copies/x").lstrip("/")).read_bytes() == blob(5, 10_000)
    assert not (pair / "copies/x").exists()
