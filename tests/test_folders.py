"""duplicate_folders: folders holding the same files as another folder.

Property-based against a brute-force model computed from the files' bytes on disk (every
folder's sorted contents compared with every other's), and plain tests for nesting,
``same_names``, hard links and several hosts, on both backends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupfinder import Catalogue
from dupfinder.db.folders import FolderGroup, FolderRef, duplicate_folders
from tests.helpers import HOST, blob, forget_everything, write

BIG = blob(2, 9000)
CONTENTS = [b"", b"x", b"aa", b"bb", blob(1, 5000), blob(1, 4999) + b"!",
            BIG, BIG[:-1] + b"?"]  # the last two: same size and prefix, different tails
FOLDERS = ["a", "a/b", "a/b/c", "d", "d/e", "g"]
KINDS = ["copy", "renamed", "minus", "plus", "change", "link", "flat"]

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

files_st = st.lists(st.tuples(st.sampled_from(FOLDERS), st.integers(0, len(CONTENTS) - 1)),
                    min_size=1, max_size=8)
ops_st = st.lists(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(KINDS),
                            st.sampled_from(["", "g/", "d/e/"]),
                            st.integers(0, len(CONTENTS) - 1)), max_size=4)


def build(root: Path, spec, ops) -> None:
    """Base files, then copies of folders: exact, renamed, one file less, one more, one
    changed, hard-linked, or flattened (every file in one folder)."""
    for i, (folder, content) in enumerate(spec):
        write(root / folder / f"f{i}", CONTENTS[content])
    for k, (src, kind, where, content) in enumerate(ops):
        source = root / src
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
        if not files:
            continue
        dest = root / f"{where}c{k}"
        snapshot = [(p.relative_to(source), p.read_bytes(), p) for p in files]
        for n, (rel, data, original) in enumerate(snapshot):
            if kind == "minus" and n == 0:
                continue
            target = dest / rel
            if kind == "renamed":
                target = dest / rel.parent / f"r_{rel.name}"
            elif kind == "flat":
                target = dest / f"flat{n}"
            if kind == "change" and n == 0:
                data = data + b"+"
            if kind == "link":
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(original, target)
            else:
                write(target, data)
        if kind == "plus":
            write(dest / "extra", CONTENTS[content])


def files_and_folders(root: Path) -> tuple[dict[str, bytes], set[str]]:
    """Every file under ``root`` with its bytes, and every folder that holds one (with
    the folders above it, up to ``root``)."""
    files: dict[str, bytes] = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(folder, name)
            files[p] = Path(p).read_bytes()
    folders = {str(root)} | {os.path.dirname(p) for p in files}
    for p in list(folders):
        while p != str(root):
            p = os.path.dirname(p)
            folders.add(p)
    return files, folders


def model(root: Path, same_names: bool) -> set[tuple[frozenset[str], int, int, int]]:
    """The expected groups, by brute force over every folder at or under ``root``."""
    files, folders = files_and_folders(root)

    def below(folder: str) -> list[str]:
        return sorted(p for p in files if p.startswith(folder + "/"))

    def key(f: str, paths: tuple[str, ...]):
        if same_names:
            return tuple(sorted((os.path.relpath(p, f), files[p]) for p in paths))
        return tuple(sorted(files[p] for p in paths))

    # one entry per distinct set of files seen the same way (without names, a folder that
    # holds only a subfolder is the same entry as it), named by its topmost folder
    entries: dict[tuple[tuple[str, ...], object], str] = {}
    for f in sorted(folders, key=len):
        mine = tuple(below(f))
        if mine and (mine, key(f, mine)) not in entries:
            entries[(mine, key(f, mine))] = f

    groups: dict[object, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
    for (paths, k), f in entries.items():
        groups[k].append((f, paths))
    dup = [g for g in groups.values() if len(g) > 1]
    in_dup = {f for g in dup for f, _ in g}

    def covered(f: str) -> bool:
        while f != str(root):
            f = os.path.dirname(f)
            if f in in_dup:
                return True
        return False

    out = set()
    for g in dup:
        if all(covered(f) for f, _ in g):
            continue
        size = sum(len(files[p]) for p in g[0][1])
        out.add((frozenset(f for f, _ in g), len(g[0][1]), size, size * (len(g) - 1)))
    return out


def as_set(groups: list[FolderGroup]) -> set[tuple[frozenset[str], int, int, int]]:
    assert all(ref.host == HOST for g in groups for ref in g.folders)
    return {(frozenset(ref.path for ref in g.folders), g.files, g.size, g.wasted)
            for g in groups}


@SETTINGS
@given(spec=files_st, ops=ops_st, same_names=st.booleans())
def test_duplicate_folders_match_a_brute_force_model(cat: Catalogue, spec, ops,
                                                     same_names: bool) -> None:
    forget_everything(cat)
    base = Path(tempfile.mkdtemp(prefix="dupfinder-folders-"))
    try:
        root = base / "tree"
        build(root, spec, ops)
        cat.scan([root], min_size=0)
        with cat.db.session() as s:
            got = duplicate_folders(s, same_names=same_names)
            assert as_set(duplicate_folders(s, [str(root)], same_names=same_names)) == \
                as_set(got)
        assert as_set(got) == model(root, same_names)
        assert [g.wasted for g in got] == sorted((g.wasted for g in got), reverse=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tree(folder: Path, seed: int) -> None:
    write(folder / "one.bin", blob(seed, 5000))
    write(folder / "sub" / "two.bin", blob(seed + 1, 6000))
    write(folder / "sub" / "deeper" / "three.txt", f"three {seed}")


def test_nested_equal_folders_are_reported_only_at_the_top(cat: Catalogue,
                                                           tmp_path: Path) -> None:
    _tree(tmp_path / "photos", 1)
    _tree(tmp_path / "backup" / "photos-2020", 1)
    write(tmp_path / "backup" / "unrelated.txt", "not in photos")
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = duplicate_folders(s)
    size = 5000 + 6000 + len("three 1")
    assert got == [FolderGroup([FolderRef(str(tmp_path / "backup" / "photos-2020"), HOST),
                                FolderRef(str(tmp_path / "photos"), HOST)], 3, size, size)]


def test_a_folder_holding_only_a_copy_is_reported_as_the_upper_folder(cat: Catalogue,
                                                                      tmp_path: Path) -> None:
    _tree(tmp_path / "x", 1)
    _tree(tmp_path / "y" / "only", 1)
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = duplicate_folders(s)
        named = duplicate_folders(s, same_names=True)
    assert [[r.path for r in g.folders] for g in got] == [[str(tmp_path / "x"),
                                                          str(tmp_path / "y")]]
    assert [[r.path for r in g.folders] for g in named] == [[str(tmp_path / "x"),
                                                            str(tmp_path / "y" / "only")]]


def test_same_names_requires_the_same_relative_paths(cat: Catalogue, tmp_path: Path) -> None:
    _tree(tmp_path / "left", 1)
    write(tmp_path / "right" / "renamed.bin", blob(1, 5000))
    write(tmp_path / "right" / "sub" / "two.bin", blob(2, 6000))
    write(tmp_path / "right" / "sub" / "deeper" / "three.txt", "three 1")
    write(tmp_path / "flat" / "a", blob(1, 5000))
    write(tmp_path / "flat" / "b", blob(2, 6000))
    write(tmp_path / "flat" / "c", "three 1")
    cat.scan([tmp_path])
    with cat.db.session() as s:
        by_content = duplicate_folders(s)
        by_names = duplicate_folders(s, same_names=True)
    assert [{r.path for r in g.folders} for g in by_content] == [
        {str(tmp_path / n) for n in ("left", "right", "flat")}]
    assert by_content[0].wasted == 2 * by_content[0].size
    # only the subfolders keep their names
    assert [{r.path for r in g.folders} for g in by_names] == [
        {str(tmp_path / "left" / "sub"), str(tmp_path / "right" / "sub")}]


def test_near_copies_are_not_duplicates(cat: Catalogue, tmp_path: Path) -> None:
    _tree(tmp_path / "orig", 1)
    _tree(tmp_path / "extra", 1)
    write(tmp_path / "extra" / "more.txt", "one more file")
    _tree(tmp_path / "fewer", 1)
    (tmp_path / "fewer" / "one.bin").unlink()
    _tree(tmp_path / "changed", 1)
    write(tmp_path / "changed" / "sub" / "deeper" / "three.txt", "three 2")  # same size
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = duplicate_folders(s)
    # only what stayed equal matches: the subfolders ("fewer" now holds nothing else)
    assert [{r.path for r in g.folders} for g in got] == [
        {str(tmp_path / "orig" / "sub"), str(tmp_path / "extra" / "sub"),
         str(tmp_path / "fewer")}]


def test_hard_linked_folders_are_duplicates_by_content(cat: Catalogue,
                                                       tmp_path: Path) -> None:
    _tree(tmp_path / "a", 1)
    for p in (tmp_path / "a").rglob("*"):
        if p.is_file():
            target = tmp_path / "b" / p.relative_to(tmp_path / "a")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, target)
    cat.scan([tmp_path])
    with cat.db.session() as s:
        got = duplicate_folders(s)
    assert [[r.path for r in g.folders] for g in got] == [[str(tmp_path / "a"),
                                                          str(tmp_path / "b")]]


def test_folders_on_different_hosts(db_url: str, tmp_path: Path) -> None:
    _tree(tmp_path / "laptop" / "music", 1)
    write(tmp_path / "laptop" / "notes.txt", "notes")
    _tree(tmp_path / "server" / "archive" / "music-copy", 1)
    write(tmp_path / "server" / "archive" / "other.txt", "other")
    with Catalogue.open(db_url, host="laptop", fallback=False) as laptop, \
            Catalogue.open(db_url, host="server", fallback=False) as server:
        laptop.scan([tmp_path / "laptop"])
        server.scan([tmp_path / "server"])
        laptop.scan([tmp_path / "laptop"])
        with laptop.db.session() as s:
            got = duplicate_folders(s)
            only_laptop = duplicate_folders(s, host="laptop")
            rooted = duplicate_folders(s, [str(tmp_path / "laptop" / "music"),
                                           str(tmp_path / "server")])
    expected = [FolderRef(str(tmp_path / "laptop" / "music"), "laptop"),
                FolderRef(str(tmp_path / "server" / "archive" / "music-copy"), "server")]
    # the scanned roots bound the folders: /tmp/.../laptop (all of laptop's files) is
    # not a folder of the server's
    assert [g.folders for g in got] == [expected]
    assert only_laptop == []
    assert [g.folders for g in rooted] == [expected]


def test_nothing_scanned_means_no_folders(cat: Catalogue) -> None:
    with cat.db.session() as s:
        assert duplicate_folders(s) == []
