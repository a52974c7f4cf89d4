"""``--action reflink`` on a real btrfs file system (a loop image mounted for the module),
on both backends: the bytes become shared, every file stays a file of its own, and undo
makes them private copies again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dupfinder import Catalogue, UsageError
from dupfinder.actions import apply as apply_module
from dupfinder.actions import reflink
from dupfinder.actions.reflink import STEP
from tests.helpers import HOST, blob, tree_checksums, write

MiB = 1 << 20
SLACK = 256 * 1024  # metadata and rounding that `btrfs filesystem du` may count
T0 = 1_600_000_000_000_000_000


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def on_btrfs(btrfs: Path) -> Iterator[Path]:
    """A fresh folder on the btrfs (the mount is shared by the module's tests)."""
    folder = Path(tempfile.mkdtemp(dir=btrfs, prefix="t-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Usage:
    """What ``btrfs filesystem du -s --raw`` says of a folder, in bytes."""

    total: int
    exclusive: int
    shared: int


def du(folder: Path) -> Usage:
    """Space use of ``folder`` once everything is on disk."""
    _run("sync")
    out = subprocess.run(["btrfs", "filesystem", "du", "-s", "--raw", str(folder)],
                         check=True, capture_output=True, text=True).stdout
    header, line = out.strip().splitlines()[-2:]
    assert header.split()[:3] == ["Total", "Exclusive", "Set"], out
    m = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+", line)
    assert m, out
    return Usage(*(int(x) for x in m.groups()))


def stamp(path: Path, mode: int, seconds: int) -> None:
    t = T0 + seconds * 1_000_000_000
    os.chmod(path, mode)
    os.utime(path, ns=(t, t))


def meta(path: Path) -> tuple[int, int, int]:
    """(mode, mtime_ns, size): what a clone and its undo must keep."""
    st = os.lstat(path)
    return st.st_mode, st.st_mtime_ns, st.st_size


def three_copies(folder: Path, size: int = 2 * MiB) -> tuple[Path, list[Path], bytes]:
    """``keep`` (the oldest) and two duplicates with other modes and mtimes."""
    data = blob(42, size)
    kept = write(folder / "keep.bin", data)
    dups = [write(folder / "sub" / "copy one.bin", data), write(folder / "copy-2.bin", data)]
    stamp(kept, 0o644, 0)
    stamp(dups[0], 0o600, 10)
    stamp(dups[1], 0o640, 20)
    return kept, dups, data


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "dupfinder" in p.name]


def run(cli, db_url: str, *args: str):
    return cli(*args, "--db-url", db_url, "--host-label", HOST)


def test_reflink_shares_the_bytes_and_keeps_each_file(cat: Catalogue, on_btrfs: Path) -> None:
    kept, dups, data = three_copies(on_btrfs)
    before = {p: meta(p) for p in [kept, *dups]}
    inodes = {p: p.stat().st_ino for p in [kept, *dups]}
    cat.scan([on_btrfs])
    used = du(on_btrfs)
    assert used.exclusive >= 3 * len(data) - SLACK and used.shared <= SLACK

    plan = cat.plan_dedupe("reflink", on_btrfs)
    assert {(p.path, p.kept) for p in plan} == {(str(d), str(kept)) for d in dups}
    run_ = cat.apply(plan)
    assert (run_.done, run_.skipped, run_.failed) == (2, [], [])
    assert run_.reclaimed == 2 * len(data)

    for p in [kept, *dups]:
        assert p.read_bytes() == data
        assert meta(p) == before[p]  # name, mode, mtime and size kept
        assert not p.is_symlink() and p.stat().st_nlink == 1
    assert kept.stat().st_ino == inodes[kept]  # the kept file itself is not touched
    assert len({p.stat().st_ino for p in [kept, *dups]}) == 3  # no hard links
    assert leftovers(on_btrfs) == []  # no temporary or probe file left behind

    after = du(on_btrfs)
    assert after.total == used.total
    assert after.exclusive <= used.exclusive - 2 * len(data) + SLACK
    assert after.shared >= len(data) - SLACK  # one set of extents, shared by all three

    # each clone is a file of its own: writing to one leaves the others alone
    with open(dups[0], "r+b") as f:
        f.write(b"changed")
    assert kept.read_bytes() == data and dups[1].read_bytes() == data


def test_the_catalogue_follows_a_reflink_run(cli, cat: Catalogue, db_url: str,
                                             on_btrfs: Path) -> None:
    kept, dups, data = three_copies(on_btrfs)
    summary = cat.scan([on_btrfs])
    plan = cat.plan_dedupe("reflink", on_btrfs)
    run_ = cat.apply(plan)
    assert run_.done == 2, (  # all the scan knew, if this ever fails again
        f"scan {summary.status}: seen {summary.sync.seen}, new {summary.sync.new}, hashed "
        f"{summary.files_hashed}, changed while read {summary.changed_during_read}, "
        f"problems {summary.problems}, groups {summary.duplicate_groups}; plan "
        f"{len(plan)} actions; on disk "
        f"{[(s.st_size, s.st_mtime_ns, s.st_ino) for s in map(os.stat, [kept, *dups])]}")

    groups = list(cat.groups(on_btrfs))
    assert len(groups) == 1
    assert groups[0].size == len(data) and groups[0].inodes == 3
    assert {f.path for f in groups[0].files} == {str(p) for p in [kept, *dups]}
    assert {f.inode for f in groups[0].files} == {p.stat().st_ino for p in [kept, *dups]}

    again = cat.scan([on_btrfs])
    assert again.duplicate_groups == 1
    assert [{f.path for f in g.files} for g in cat.groups(on_btrfs)] == \
        [{str(p) for p in [kept, *dups]}]

    res = run(cli, db_url, "journal", str(run_.id))
    assert res.code == 0, res.err
    done = [line for line in res.out.splitlines() if re.search(r"\bdone\s+reflink\b", line)]
    assert len(done) == 2
    assert all(any(str(d) in line for line in done) for d in dups)
    listing = run(cli, db_url, "journal")
    assert "reflink  complete      2 planned, 2 done, 0 skipped" in listing.out


def test_undo_makes_private_copies_again(cat: Catalogue, on_btrfs: Path) -> None:
    kept, dups, data = three_copies(on_btrfs)
    before = {p: meta(p) for p in [kept, *dups]}
    cat.scan([on_btrfs])
    private = du(on_btrfs)
    run_ = cat.apply(cat.plan_dedupe("reflink", on_btrfs))
    assert run_.done == 2
    shared = du(on_btrfs)
    assert shared.exclusive <= private.exclusive - 2 * len(data) + SLACK

    result = cat.undo(run_.id)
    assert result.not_restored == [] and sorted(result.restored) == sorted(map(str, dups))
    assert result.restored_bytes == 2 * len(data)
    for p in [kept, *dups]:
        assert p.read_bytes() == data
        assert meta(p) == before[p]
        assert not p.is_symlink() and p.stat().st_nlink == 1
    assert len({p.stat().st_ino for p in [kept, *dups]}) == 3
    assert leftovers(on_btrfs) == []
    back = du(on_btrfs)
    assert back.total == private.total
    assert back.exclusive >= private.exclusive - SLACK  # every file owns its bytes again
    assert back.shared <= SLACK
    # the catalogue still knows the group, without a rescan
    assert [{f.path for f in g.files} for g in cat.groups(on_btrfs)] == \
        [{str(p) for p in [kept, *dups]}]
    assert cat.undo(run_.id).already_undone


def test_reflink_where_nothing_can_be_cloned_is_one_error_up_front(
        cli, cat: Catalogue, db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"  # on the root file system (ext4 here: no FICLONE)
    kept, dups, _ = three_copies(root, size=300_000)
    inodes = {p: p.stat().st_ino for p in [kept, *dups]}
    cat.scan([root])
    before = tree_checksums(root)
    plan = cat.plan_dedupe("reflink", root)
    assert len(plan) == 2
    with pytest.raises(UsageError, match="no file of the plan can be cloned"):
        cat.apply(plan)
    assert tree_checksums(root) == before
    assert cat.runs() == []  # refused before anything was journaled
    assert leftovers(root) == []

    res = run(cli, db_url, "dedupe", str(root), "--action", "reflink", "--apply", "-y")
    assert res.code == 2, res.out + res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dupfinder: error: ")
    assert "no file of the plan can be cloned" in lines[0] and "btrfs" in lines[0]
    assert tree_checksums(root) == before
    assert {p: p.stat().st_ino for p in [kept, *dups]} == inodes
    assert cat.runs() == []


@pytest.mark.parametrize("first", ["cross", "clonable"])
def test_mixed_plan_skips_what_cannot_be_cloned_and_does_the_rest(
        cli, cat: Catalogue, db_url: str, on_btrfs: Path, tmp_path: Path, first: str) -> None:
    """Group A lives on the btrfs; group B keeps its oldest copy on the root file system
    and has a duplicate on the btrfs (a clone cannot span file systems); group C keeps its
    copy on the btrfs and has a duplicate elsewhere. Whichever group the plan lists first,
    A is cloned and B and C are skipped, each with its reason."""
    elsewhere = tmp_path / "elsewhere"
    big, small = 3 * MiB, 1 * MiB  # groups are planned biggest waste first
    a_data = blob(1, small if first == "cross" else big)
    b_data = blob(2, big if first == "cross" else small)
    c_data = blob(3, small)
    a_kept, a_dup = write(on_btrfs / "a/keep", a_data), write(on_btrfs / "a/dup", a_data)
    b_kept, b_dup = write(elsewhere / "b/keep", b_data), write(on_btrfs / "b/dup", b_data)
    c_kept, c_dup = write(on_btrfs / "c/keep", c_data), write(elsewhere / "c/dup", c_data)
    for kept, dup in [(a_kept, a_dup), (b_kept, b_dup), (c_kept, c_dup)]:
        stamp(kept, 0o644, 0)
        stamp(dup, 0o600, 5)
    cat.scan([on_btrfs, elsewhere])
    before = tree_checksums(on_btrfs) | tree_checksums(elsewhere)
    inodes = {p: p.stat().st_ino for p in [b_dup, c_dup]}

    plan = cat.plan_dedupe("reflink", [on_btrfs, elsewhere])
    assert {(p.path, p.kept) for p in plan} == {
        (str(a_dup), str(a_kept)), (str(b_dup), str(b_kept)), (str(c_dup), str(c_kept))}
    assert plan.actions[0].path == str(b_dup if first == "cross" else a_dup)
    run_ = cat.apply(plan)
    assert run_.done == 1 and run_.failed == []
    skipped = dict(run_.skipped)
    assert set(skipped) == {str(b_dup), str(c_dup)}
    assert all("cannot clone" in why for why in skipped.values()), skipped
    assert a_dup.stat().st_ino != a_kept.stat().st_ino
    assert {p: p.stat().st_ino for p in [b_dup, c_dup]} == inodes  # not touched
    assert tree_checksums(on_btrfs) | tree_checksums(elsewhere) == before
    assert leftovers(on_btrfs) == [] and leftovers(elsewhere) == []

    entries = run(cli, db_url, "journal", str(run_.id)).out
    assert re.search(r"done\s+reflink\s+" + re.escape(str(a_dup)), entries)
    assert len(re.findall(r"skipped\s+reflink.*cannot clone", entries)) == 2


def test_a_kept_copy_gone_since_the_scan_skips_only_its_group(cat: Catalogue,
                                                              on_btrfs: Path) -> None:
    """The up-front check must not take one missing kept copy (the first the plan names)
    for a file system that cannot clone."""
    first_kept, first_dup = (write(on_btrfs / "big" / n, blob(5, 2 * MiB)) for n in "ab")
    kept, dups, data = three_copies(on_btrfs, size=MiB)
    for p, age in [(first_kept, 0), (first_dup, 1)]:
        stamp(p, 0o644, age)
    cat.scan([on_btrfs])
    plan = cat.plan_dedupe("reflink", on_btrfs)
    assert plan.actions[0].kept == str(first_kept)
    first_kept.unlink()
    run_ = cat.apply(plan)
    assert run_.skipped == [(str(first_dup), "the copy that stays is gone")]
    assert run_.done == 2 and run_.failed == []
    assert first_dup.read_bytes() == blob(5, 2 * MiB)
    assert all(d.read_bytes() == data for d in dups)
    assert leftovers(on_btrfs) == []


KERNEL_DIFFERS = "content differs from the copy that stays (checked by the kernel)"


def test_the_ioctl_number_is_linux_fs_h_fideduperange() -> None:
    # _IOWR(0x94, 54, struct file_dedupe_range): what gcc makes of linux/fs.h (24-byte head)
    assert reflink.FIDEDUPERANGE == 0xC0189436


def _edit_in_place(path: Path, at: int, new: bytes) -> None:
    """Other bytes of the same size, the mtime put back: invisible to a stat."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_keeper_edited_after_verification_is_not_cloned_over_the_duplicate(
        cat: Catalogue, on_btrfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fclones issue #293: the keeper edited between dupfinder's byte-for-byte check and
    the clone left its edited bytes as the only content. The kernel's checked dedupe finds
    the pieces differ (here the last one: the first ones are shared, which is fine, they
    were equal) and the duplicate keeps its own content."""
    size = 2 * STEP + 12345  # two whole pieces and a tail
    data = blob(7, size)
    kept, dup = write(on_btrfs / "keep.bin", data), write(on_btrfs / "dup.bin", data)
    stamp(kept, 0o644, 0)
    stamp(dup, 0o644, 10)
    edit_at, edit = size - 5000, b"edited after verification"
    edited = data[:edit_at] + edit + data[edit_at + len(edit):]
    cat.scan([on_btrfs])
    plan = cat.plan_dedupe("reflink", on_btrfs)
    assert [(p.path, p.kept) for p in plan] == [(str(dup), str(kept))]

    original = apply_module.prove_distinct

    def then_edit(d: str, k: str, tag: int) -> None:
        original(d, k, tag)
        _edit_in_place(Path(k), edit_at, edit)

    monkeypatch.setattr(apply_module, "prove_distinct", then_edit)
    dup_before = meta(dup), dup.stat().st_ino
    run_ = cat.apply(plan)
    assert run_.skipped == [(str(dup), KERNEL_DIFFERS)]
    assert run_.done == 0 and run_.failed == []
    assert dup.read_bytes() == data  # the duplicate's content is still its own
    assert kept.read_bytes() == edited  # and the edit is the keeper's alone
    assert (meta(dup), dup.stat().st_ino) == dup_before
    assert leftovers(on_btrfs) == []


def _with_hard_link(on_btrfs: Path, size: int) -> tuple[Path, Path, Path, bytes]:
    """``tree/keep`` and ``tree/dup`` (0600, owned by 1234:5678, younger), and ``elsewhere``,
    a second name of ``dup`` outside the scanned folder."""
    data = blob(8, size)
    kept = write(on_btrfs / "tree" / "keep", data)
    dup = write(on_btrfs / "tree" / "sub" / "dup", data)
    elsewhere = on_btrfs / "other" / "dup-link"
    elsewhere.parent.mkdir()
    os.link(dup, elsewhere)
    stamp(kept, 0o644, 0)
    os.chown(dup, 1234, 5678)
    stamp(dup, 0o600, 30)
    return kept, dup, elsewhere, data


def _identity(path: Path) -> tuple[int, int, int, int, int, int, int]:
    st = os.lstat(path)
    return st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, \
        st.st_size


def test_reflink_dedupes_in_place_keeping_inode_links_owner_mode_and_mtime(
        cat: Catalogue, on_btrfs: Path) -> None:
    kept, dup, elsewhere, data = _with_hard_link(on_btrfs, STEP + 4 * MiB + 1234)
    before = {p: _identity(p) for p in (kept, dup)}
    assert before[dup][1] == 2
    tree = on_btrfs / "tree"
    cat.scan([tree])
    private = du(on_btrfs)
    assert private.shared <= SLACK

    run_ = cat.apply(cat.plan_dedupe("reflink", tree))
    assert (run_.done, run_.skipped, run_.failed) == (1, [], [])
    assert {p: _identity(p) for p in (kept, dup)} == before  # the very same inodes
    assert os.path.samefile(dup, elsewhere)  # the extra hard link still is the duplicate
    assert dup.read_bytes() == data and kept.read_bytes() == data
    assert leftovers(on_btrfs) == []
    shared = du(on_btrfs)
    assert shared.total == private.total
    assert shared.exclusive <= private.exclusive - len(data) + SLACK
    assert shared.shared >= len(data) - SLACK


def test_undo_gives_the_bytes_back_in_place(cat: Catalogue, on_btrfs: Path) -> None:
    kept, dup, elsewhere, data = _with_hard_link(on_btrfs, 3 * MiB + 77)
    before = {p: _identity(p) for p in (kept, dup)}
    tree = on_btrfs / "tree"
    cat.scan([tree])
    private = du(on_btrfs)
    run_ = cat.apply(cat.plan_dedupe("reflink", tree))
    assert run_.done == 1
    assert du(on_btrfs).shared >= len(data) - SLACK

    result = cat.undo(run_.id)
    assert result.restored == [str(dup)] and result.not_restored == []
    assert {p: _identity(p) for p in (kept, dup)} == before  # inode, links, times kept
    assert os.path.samefile(dup, elsewhere)
    assert dup.read_bytes() == data and kept.read_bytes() == data
    assert leftovers(on_btrfs) == []
    back = du(on_btrfs)
    assert back.total == private.total
    assert back.exclusive >= private.exclusive - SLACK  # each file owns its bytes again
    assert back.shared <= SLACK


def test_a_keeper_replaced_before_the_hard_link_is_skipped(
        cat: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper's name taken by another file (same size and mtime, other bytes) between
    the check and the link: the temporary link shows another inode, so it is removed and
    the duplicate, now the only copy of its content, is left alone."""
    data = blob(9, 300_000)
    root = tmp_path / "tree"
    kept, dup = write(root / "keep", data), write(root / "dup", data)
    stamp(kept, 0o644, 0)
    stamp(dup, 0o644, 5)
    cat.scan([root])
    plan = cat.plan_dedupe("hardlink", root)
    assert [(p.path, p.kept) for p in plan] == [(str(dup), str(kept))]
    other = blob(10, len(data))

    real_link = os.link

    def replace_keeper_first(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(src) == str(kept) and ".dupfinder-" in os.fspath(dst):
            st = os.stat(kept)
            new = write(root / "new-keep", other)
            os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(new, kept)  # the verified keeper is gone: dup is its only copy
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", replace_keeper_first)
    run_ = cat.apply(plan)
    monkeypatch.undo()
    assert run_.skipped == [(str(dup), "the copy that stays changed since it was verified")]
    assert run_.done == 0 and run_.failed == []
    assert dup.read_bytes() == data  # nothing lost
    assert not os.path.samefile(dup, kept)
    assert dup.stat().st_nlink == 1
    assert leftovers(root) == []
