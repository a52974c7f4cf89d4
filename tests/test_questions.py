"""The questions people bring to a catalogue, through the real command line: what here
exists elsewhere, what two folders have in common, reference folders, files with no copy
elsewhere, duplicate folders (compared with rmlint -D), narrower rescans, mistakes. On both
backends."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

from dupfinder import Catalogue, SafetyError
from dupfinder.db.selection import Reference
from tests.helpers import HOST, blob, write


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """backup/ holds copies of photos/ and one file only it has; scratch/copy copies a file
    of photos; photos has a file nobody else has and a pair inside itself."""
    root = tmp_path / "tree"
    for i in range(3):
        write(root / f"photos/p{i}.jpg", blob(i, 3000 + i))
        write(root / f"backup/photos/p{i}.jpg", blob(i, 3000 + i))
    write(root / "photos/only-here.jpg", blob(9, 4100))
    write(root / "photos/twin-a.txt", blob(7, 700))
    write(root / "photos/twin-b.txt", blob(7, 700))
    write(root / "backup/old.zip", blob(8, 5000))
    write(root / "scratch/copy/p0.jpg", blob(0, 3000))
    return root


def run(cli, db_url: str, *args: str):
    res = cli(*args, "--db-url", db_url, "--host-label", HOST)
    return res


def groups_json(cli, db_url: str, *args: str) -> list[list[str]]:
    res = run(cli, db_url, "dupes", "-f", "json", *args)
    assert res.code == 0, res.err
    return sorted(sorted(f["path"] for f in g["files"]) for g in json.loads(res.out)["groups"])


def test_paths_select_groups_with_all_their_members(cli, db_url: str, tree: Path) -> None:
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0
    b = str(tree / "backup")
    touching = groups_json(cli, db_url, b)
    assert [str(tree / "backup/photos/p0.jpg"), str(tree / "photos/p0.jpg"),
            str(tree / "scratch/copy/p0.jpg")] in touching  # members elsewhere are listed
    assert len(touching) == 3  # p0, p1, p2; backup/old.zip has no copy
    assert groups_json(cli, db_url, b, "--within") == []  # within backup: no pair at all
    across = groups_json(cli, db_url, str(tree / "photos"), b, "--across")
    assert len(across) == 3 and all(len(g) == 2 for g in across)  # not the in-photos pair
    assert [str(tree / "photos/twin-a.txt"), str(tree / "photos/twin-b.txt")] not in across
    stats = run(cli, db_url, "stats", b)
    assert "duplicate groups: 3 " in stats.out, stats.out


def test_dedupe_of_a_folder_of_copies_of_files_elsewhere(cli, db_url: str, tree: Path) -> None:
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0
    res = run(cli, db_url, "dedupe", str(tree / "scratch/copy"), "--action", "delete")
    assert res.code == 0, res.err
    assert "1 action planned" in res.out  # it was 0: its twin lies outside the folder
    assert f"(keeps {tree}/" in res.out and f"keeps {tree}/scratch" not in res.out
    res = run(cli, db_url, "dedupe", str(tree / "scratch/copy"), "--action", "delete",
              "--apply", "-y")
    assert res.code == 0 and not (tree / "scratch/copy/p0.jpg").exists()
    assert (tree / "photos/p0.jpg").exists() and (tree / "backup/photos/p0.jpg").exists()


def test_reference_folders_are_kept_and_never_touched(cli, cat: Catalogue, db_url: str,
                                                      tree: Path) -> None:
    cat.scan([tree])
    ref = str(tree / "backup")
    only_ref = groups_json(cli, db_url, "--reference", ref)
    assert len(only_ref) == 3  # the twin-a/twin-b pair has no file in the reference
    assert groups_json(cli, db_url, "--reference", f"{HOST}:{ref}") == only_ref
    assert groups_json(cli, db_url, "--reference", f"elsewhere:{ref}") == []
    plan = cat.plan_dedupe("delete", reference=[ref], keep="newest")
    assert {p.kept for p in plan} == {str(tree / f"backup/photos/p{i}.jpg") for i in range(3)}
    assert not any(p.path.startswith(ref + "/") for p in plan)
    assert len(plan) == 4  # photos/p0..p2 and scratch/copy/p0
    res = run(cli, db_url, "dedupe", "--action", "delete", "--reference", ref, "--apply", "-y")
    assert res.code == 0, res.err
    assert sorted(p.name for p in (tree / "backup/photos").iterdir()) == \
        ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert (tree / "photos/twin-a.txt").exists() and (tree / "photos/twin-b.txt").exists()
    with pytest.raises(SafetyError, match="another host's files cannot be compared"):
        cat.plan_dedupe("delete", reference=[Reference(ref, "nas")])


def test_unique_lists_what_has_no_copy_elsewhere(cli, db_url: str, tree: Path,
                                                 tmp_path: Path) -> None:
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0
    res = run(cli, db_url, "unique", str(tree / "photos"), "-f", "json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    names = sorted(os.path.basename(f["path"]) for f in doc["files"])
    assert names == ["only-here.jpg", "twin-a.txt", "twin-b.txt"]  # twins are not elsewhere
    assert all(set(f) >= {"path", "host", "size", "copies"} for f in doc["files"])
    assert doc["total_files"] == 3 and doc["total_bytes"] == 4100 + 700 + 700
    two = run(cli, db_url, "unique", str(tree / "photos"), "--min-copies", "2", "-f", "csv")
    assert len(two.out.strip().splitlines()) == 1 + 3 + 2  # header, those, p1 and p2 (1 copy)
    text = run(cli, db_url, "unique", str(tree / "photos"))
    assert "3 files (5.4 KiB) with fewer than 1 copy elsewhere" in text.err
    # copies on another host count, unless --host narrows which hosts count
    other = tmp_path / "nas"
    write(other / "only-here.jpg", blob(9, 4100))
    assert cli("scan", str(other), "-q", "--db-url", db_url, "--host-label", "nas").code == 0
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0  # hashes what now collides
    any_host = json.loads(run(cli, db_url, "unique", str(tree / "photos"), "-f", "json").out)
    assert "only-here.jpg" not in {os.path.basename(f["path"]) for f in any_host["files"]}
    mine = json.loads(run(cli, db_url, "unique", str(tree / "photos"), "--host", HOST,
                          "-f", "json").out)
    assert "only-here.jpg" in {os.path.basename(f["path"]) for f in mine["files"]}


def _folder_tree(root: Path) -> None:
    for name in ("albums/2019", "archive/2019", "old/archive/2019"):
        for i in range(3):
            write(root / name / f"img{i}.jpg", blob(100 + i, 2000 + i))
            write(root / name / f"raw/img{i}.raw", blob(200 + i, 6000 + i))
    for i in range(3):  # a near copy: one file more
        write(root / "near/2019" / f"img{i}.jpg", blob(100 + i, 2000 + i))
        write(root / "near/2019" / f"raw/img{i}.raw", blob(200 + i, 6000 + i))
    write(root / "near/2019/extra.txt", blob(300, 900))
    write(root / "lonely/x.bin", blob(400, 1500))


def test_duplicate_folders_agree_with_rmlint(cli, db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _folder_tree(root)
    assert run(cli, db_url, "scan", str(root), "-q").code == 0
    res = run(cli, db_url, "folders", "-f", "json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    ours = [sorted(f["path"] for f in g["folders"]) for g in doc["groups"]]
    # the three equal 2019 folders, reported at the top (albums/, archive/ and old/ hold
    # nothing but their copy); and the raw/ folders, since the near copy's raw/ is equal
    # too and nothing above it is
    assert sorted(ours) == [
        sorted(str(root / p) for p in ("albums", "archive", "old")),
        sorted(str(root / p) for p in ("albums/2019/raw", "archive/2019/raw", "near/2019/raw",
                                       "old/archive/2019/raw")),
    ]
    raw, top = doc["groups"]  # biggest waste first: four raw/ folders beat three 2019/
    assert top["files"] == 6 and top["wasted"] == 2 * top["size"]
    assert raw["files"] == 3 and raw["wasted"] == 3 * raw["size"]
    assert doc["wasted_bytes"] == top["wasted"] + raw["wasted"]
    # rmlint -D on the same tree (output into a fresh folder: never an existing file)
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "rmlint.json"
    subprocess.run(["rmlint", "-D", "-o", f"json:{out}", str(root)], check=True,
                   capture_output=True, cwd=tmp_path, timeout=120)
    by_sum: dict[str, set[str]] = defaultdict(set)
    for item in json.loads(out.read_text()):
        if item.get("type") == "duplicate_dir":
            by_sum[item["checksum"]].add(item["path"])
    theirs = [sorted(v) for v in by_sum.values()]
    # rmlint lists every equal pair it finds, nested ones too; dupfinder only the topmost
    # folders, so each of rmlint's groups lies inside one of ours (by design) ...
    ours_flat = {p for g in ours for p in g}
    for g in theirs:
        assert all(any(p == q or p.startswith(q + "/") for q in ours_flat) for p in g), g
    # ... and the near copy (one file more) is a duplicate for neither
    assert str(root / "near/2019") not in {p for g in theirs for p in g} | ours_flat


def test_a_narrower_rescan_forgets_nothing(cli, db_url: str, tree: Path) -> None:
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0
    narrow = run(cli, db_url, "scan", str(tree), "--min-size", "4kb")
    assert narrow.code == 0, narrow.err
    assert " 0 removed" in narrow.out  # small files were not examined: their rows stay
    again = run(cli, db_url, "scan", str(tree))
    assert "hashed: 0 files" in again.out, again.out  # nothing to hash again
    excluded = run(cli, db_url, "scan", str(tree), "--exclude", "backup/")
    assert " 0 removed" in excluded.out
    assert len(groups_json(cli, db_url)) == 4


def test_mistakes_are_errors_not_empty_results(cli, db_url: str, tree: Path) -> None:
    empty = run(cli, db_url, "dupes")
    assert empty.code == 2
    assert empty.err.strip() == ("dupfinder: error: no files catalogued yet: run "
                                 "`dupfinder scan PATH`")
    assert run(cli, db_url, "scan", str(tree), "-q").code == 0
    typo = run(cli, db_url, "dupes", "/no/such/path")
    assert typo.code == 2
    assert "/no/such/path: no such file or folder, and nothing catalogued under it" in typo.err
    host = run(cli, db_url, "dupes", "--host", "nosuchhost")
    assert host.code == 2 and f"it has: {HOST}" in host.err
    assert len(host.err.strip().splitlines()) == 1
    # a folder that is gone from disk but still catalogued is a fair question
    write(tree / "gone/a", b"twin bytes")
    write(tree / "gone/b", b"twin bytes")
    assert run(cli, db_url, "scan", str(tree / "gone"), "-q").code == 0
    for f in (tree / "gone").iterdir():
        f.unlink()
    (tree / "gone").rmdir()
    assert run(cli, db_url, "dupes", str(tree / "gone")).code == 0
