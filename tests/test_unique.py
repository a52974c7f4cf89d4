"""unique_files / unique_totals: files under folders with too few copies elsewhere.

Property-based against a model computed from the files' bytes on disk, and plain tests for
several hosts, hard links and files whose hashes are not known yet, on both backends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from dupfinder import Catalogue
from dupfinder.db.file_rows import upsert_files
from dupfinder.db.models import FileHash
from dupfinder.db.unique import UniqueTotals, unique_files, unique_totals
from tests.helpers import blob, forget_everything, write

BIG = blob(2, 9000)
CONTENTS = [b"", b"x", b"aa", b"bb", blob(1, 5000), blob(1, 4999) + b"!",
            BIG, BIG[:-1] + b"?"]  # the last two: same size and prefix, different tails
FOLDERS = ["a", "a/b", "a/b/c", "d", "d/e", "g"]
TOPS = ["a", "a/b", "d", "g"]

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

files_st = st.lists(st.tuples(st.sampled_from(FOLDERS), st.integers(0, len(CONTENTS) - 1)),
                    min_size=1, max_size=10)
links_st = st.lists(st.tuples(st.integers(0, 9), st.sampled_from(FOLDERS)), max_size=3)


def build(root: Path, spec: list[tuple[str, int]], links: list[tuple[int, str]]) -> None:
    for i, (folder, content) in enumerate(spec):
        write(root / folder / f"f{i}", CONTENTS[content])
    for k, (i, folder) in enumerate(links):
        src = root / spec[i % len(spec)][0] / f"f{i % len(spec)}"
        (root / folder).mkdir(parents=True, exist_ok=True)
        os.link(src, root / folder / f"link{k}")


def model(root: Path, roots: list[Path], min_copies: int) -> set[tuple[str, int, int]]:
    """(path, size, copies) of every file under ``roots`` with fewer than ``min_copies``
    copies outside them, from the bytes on disk: a copy is a file outside with the same
    bytes on another inode, each inode counted once."""
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(folder, name)
            st_ = os.stat(p)
            files[p] = (Path(p).read_bytes(), (st_.st_dev, st_.st_ino))

    def inside(p: str) -> bool:
        return any(p.startswith(str(r) + "/") for r in roots)

    out = set()
    for p, (data, ino) in files.items():
        if not inside(p):
            continue
        copies = {i for q, (d, i) in files.items() if not inside(q) and d == data and i != ino}
        if len(copies) < min_copies:
            out.add((p, len(data), len(copies)))
    return out


@SETTINGS
@given(spec=files_st, links=links_st,
       picks=st.lists(st.sampled_from(TOPS), min_size=1, max_size=2, unique=True),
       min_copies=st.integers(1, 3))
def test_unique_files_match_a_model_of_the_bytes(cat: Catalogue, spec, links, picks,
                                                 min_copies: int) -> None:
    forget_everything(cat)
    base = Path(tempfile.mkdtemp(prefix="dupfinder-unique-"))
    try:
        root = base / "tree"
        build(root, spec, links)
        cat.scan([root], min_size=0)
        roots = [root / p for p in picks]
        expected = model(root, roots, min_copies)
        with cat.db.session() as s:
            got = list(unique_files(s, [str(r) for r in roots], min_copies, host=cat.host))
            totals = unique_totals(s, [str(r) for r in roots], min_copies, host=cat.host)
        assert {(u.path, u.size, u.copies) for u in got} == expected
        assert not any(u.undecided for u in got)  # a scan of both sides hashes all it needs
        assert [u.path for u in got] == sorted(u.path for u in got)
        inodes = {}
        for u in got:
            st_ = os.stat(u.path)
            inodes[(st_.st_dev, st_.st_ino)] = u.size
        assert totals == UniqueTotals(len(got), sum(inodes.values()))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_copies_on_other_hosts_count_unless_hosts_narrows(db_url: str, tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    write(mine / "shared.txt", "same on both hosts")
    write(mine / "only-here.txt", "nowhere else!")
    write(mine / "sub" / "also-there.bin", blob(3, 6000))
    write(theirs / "copy.txt", "same on both hosts")
    write(theirs / "deep" / "x.bin", blob(3, 6000))
    with Catalogue.open(db_url, host="alpha", fallback=False) as alpha, \
            Catalogue.open(db_url, host="beta", fallback=False) as beta:
        alpha.scan([mine])
        beta.scan([theirs])
        alpha.scan([mine])  # hashes what beta's scan made collide
        with alpha.db.session() as s:
            names = [u.path for u in unique_files(s, [str(mine)], host="alpha")]
            assert names == [str(mine / "only-here.txt")]
            # only alpha's own copies count: none outside ``mine``
            narrowed = list(unique_files(s, [str(mine)], hosts=["alpha"], host="alpha"))
            assert [u.path for u in narrowed] == sorted(str(p) for p in mine.rglob("*")
                                                        if p.is_file())
            assert all(not u.undecided for u in narrowed)
            # beta's view of its folder: both files have a copy on alpha
            assert list(unique_files(s, [str(theirs)], host="beta")) == []
            two = list(unique_files(s, [str(theirs)], 2, host="beta"))
            assert {(u.path, u.copies) for u in two} == {
                (str(theirs / "copy.txt"), 1), (str(theirs / "deep" / "x.bin"), 1)}
            assert unique_totals(s, [str(mine)], host="alpha") == (1, len("nowhere else!"))


def test_the_same_path_on_another_host_is_a_copy(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write(folder / "a.jpg", blob(4, 5000))
    write(folder / "b.jpg", blob(5, 5000))
    with Catalogue.open(db_url, host="laptop", fallback=False) as laptop, \
            Catalogue.open(db_url, host="server", fallback=False) as server:
        laptop.scan([folder])
        server.scan([folder])  # the same paths recorded for another machine
        laptop.scan([folder])
        with laptop.db.session() as s:
            assert list(unique_files(s, [str(folder)], host="laptop")) == []
            assert len(list(unique_files(s, [str(folder)], hosts=["laptop"],
                                         host="laptop"))) == 2


def test_a_hard_link_is_not_a_copy(cat: Catalogue, tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    write(inside / "linked.bin", blob(6, 5000))
    write(inside / "copied.bin", blob(7, 5000))
    outside.mkdir()
    os.link(inside / "linked.bin", outside / "link.bin")
    os.link(inside / "linked.bin", outside / "link2.bin")
    write(outside / "copy.bin", blob(7, 5000))
    os.link(outside / "copy.bin", outside / "copy-link.bin")  # one inode: one copy
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = {u.path: u.copies for u in unique_files(s, [str(inside)], 3, host=cat.host)}
    assert got == {str(inside / "linked.bin"): 0, str(inside / "copied.bin"): 1}


def test_hard_links_under_the_roots_count_their_bytes_once(cat: Catalogue,
                                                          tmp_path: Path) -> None:
    write(tmp_path / "a" / "one", blob(8, 3000))
    os.link(tmp_path / "a" / "one", tmp_path / "a" / "two")
    cat.scan([tmp_path])
    with cat.db.session() as s:
        assert unique_totals(s, [str(tmp_path / "a")], host=cat.host) == (2, 3000)


def test_a_size_nobody_else_has_is_unique_without_a_hash(cat: Catalogue,
                                                         tmp_path: Path) -> None:
    write(tmp_path / "in" / "lonely", blob(9, 1234))
    write(tmp_path / "out" / "other", blob(10, 4321))
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = list(unique_files(s, [str(tmp_path / "in")], host=cat.host))
        full = s.query(FileHash.full_hash).filter(FileHash.size == 1234).scalar()
    assert full is None
    assert [(u.path, u.copies, u.undecided) for u in got] == [
        (str(tmp_path / "in" / "lonely"), 0, False)]


def _remote_rows(host: str, entries: list[tuple[str, int]]) -> list[dict]:
    now = datetime.now(UTC)
    return [dict(host=host, path=p, name=os.path.basename(p), size=size, mtime_ns=1,
                 device=1, inode=i + 1, nlink=1, scan_id=None, last_seen=now, first_seen=now)
            for i, (p, size) in enumerate(entries)]


def test_files_whose_possible_copies_are_not_hashed_are_undecided(cat: Catalogue,
                                                                  tmp_path: Path) -> None:
    write(tmp_path / "in" / "maybe.bin", blob(11, 7000))
    write(tmp_path / "in" / "sure.bin", blob(12, 6500))
    with cat.db.session() as s:  # another host's file of the same size, never hashed
        upsert_files(s, _remote_rows("elsewhere", [("/remote/maybe-copy", 7000)]))
        s.commit()
    cat.scan([tmp_path])
    root = [str(tmp_path / "in")]
    with cat.db.session() as s:
        got = {u.path: (u.copies, u.undecided)
               for u in unique_files(s, root, host=cat.host)}
        assert got == {str(tmp_path / "in" / "maybe.bin"): (0, True),
                       str(tmp_path / "in" / "sure.bin"): (0, False)}
        assert [u.path for u in unique_files(s, root, host=cat.host, undecided=False)] == [
            str(tmp_path / "in" / "sure.bin")]
        assert unique_totals(s, root, host=cat.host, undecided=True) == (1, 7000)
        # once its hash is known and differs, the file is decided
        s.execute(update(FileHash).where(FileHash.host == "elsewhere").values(
            hash_algo=s.query(FileHash.hash_algo).filter(FileHash.size == 7000,
                                                        FileHash.host == cat.host).scalar(),
            prefix_hash="0" * 16, full_hash="0" * 32))
        s.commit()
        got = {u.path: (u.copies, u.undecided)
               for u in unique_files(s, root, host=cat.host)}
        assert got[str(tmp_path / "in" / "maybe.bin")] == (0, False)


def test_empty_files_are_copies_of_each_other(cat: Catalogue, tmp_path: Path) -> None:
    write(tmp_path / "in" / "empty", b"")
    write(tmp_path / "in" / "empty2", b"")
    write(tmp_path / "out" / "also-empty", b"")
    cat.scan([tmp_path], min_size=0)
    with cat.db.session() as s:
        assert list(unique_files(s, [str(tmp_path / "in")], host=cat.host)) == []
        two = list(unique_files(s, [str(tmp_path / "in")], 2, host=cat.host))
    assert {(u.path, u.copies) for u in two} == {
        (str(tmp_path / "in" / "empty"), 1), (str(tmp_path / "in" / "empty2"), 1)}


def test_undecodable_names_come_back_as_filesystem_paths(cat: Catalogue,
                                                         tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9\\x41.txt")
    write(tmp_path / "in" / name, "only here")
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = [u.path for u in unique_files(s, [str(tmp_path / "in")], host=cat.host)]
    assert got == [str(tmp_path / "in" / name)]
    assert os.path.exists(got[0])
