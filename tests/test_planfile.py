"""Plan files through the command line, on both backends: ``dedupe --save-plan FILE`` writes
a plan to review and edit, ``dupfinder apply FILE`` carries out exactly what is left in it,
``undo`` reverses it; and the confirmation asked in a real terminal."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dupfinder import Catalogue
from tests.helpers import HOST, blob, dedupe_tree, tree_checksums, write

T0 = 1_600_000_000_000_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return dedupe_tree(tmp_path / "tree")


DUPS = ["copies/a.txt", "copies/deeper/photo-2.jpg", "copies/photo.jpg"]


def run(cli, db_url: str, *args: str):
    return cli(*args, "--db-url", db_url, "--host-label", HOST)


def save(cli, db_url: str, tree: Path, plan_file: Path, action: str = "trash",
         *extra: str) -> dict[str, Any]:
    res = run(cli, db_url, "dedupe", str(tree), "--action", action, "--save-plan",
              str(plan_file), *extra)
    assert res.code == 0, res.err
    assert f"wrote {plan_file}:" in res.out and f"dupfinder apply {plan_file}" in res.out
    return json.loads(plan_file.read_text(encoding="utf-8"))


def dump(doc: dict[str, Any], plan_file: Path) -> None:
    plan_file.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")


def one_error_line(res) -> str:
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("dupfinder: error: "), res.err
    return lines[0]


def group_paths(cat: Catalogue, under: Path) -> set[frozenset[str]]:
    return {frozenset(f.path for f in g.files) for g in cat.groups(under)}


def test_save_edit_apply_and_undo_a_plan(cli, cat: Catalogue, db_url: str, tree: Path,
                                         tmp_path: Path) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    groups_before = group_paths(cat, tree)
    plan_file = tmp_path / "plan.json"

    doc = save(cli, db_url, tree, plan_file)
    assert tree_checksums(tree) == before  # saving a plan touches nothing ...
    assert cat.runs() == []  # ... and journals nothing
    assert doc["format"] == "dupfinder-plan" and doc["version"] == 1
    assert doc["host"] == HOST and doc["created"]
    assert doc["options"]["action"] == "trash" and doc["options"]["keep"] == "oldest"
    assert doc["options"]["roots"] == [str(tree)] and doc["options"]["to"] is None
    entries = doc["entries"]
    assert sorted(e["path"] for e in entries) == [str(tree / d) for d in DUPS]
    for e in entries:
        assert e["action"] == "trash" and e["host"] == HOST
        assert e["keep"] == str(tree / ("keep/a.txt" if e["path"].endswith(".txt")
                                        else "keep/photo.jpg"))
        assert e["size"] == os.path.getsize(e["path"])
        assert e["mtime_ns"] == os.stat(e["path"]).st_mtime_ns
        assert e["keep_mtime_ns"] == os.stat(e["keep"]).st_mtime_ns
        assert isinstance(e["hash"], str) and e["hash"]
        assert "path_b64" not in e and "keep_b64" not in e

    spared = str(tree / "copies/photo.jpg")
    doc["entries"] = [e for e in entries if e["path"] != spared]
    dump(doc, plan_file)

    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 0, res.err
    assert "2 done, 0 skipped, 0 failed" in res.out
    assert Path(spared).read_bytes() == blob(1, 80_000)  # the deleted entry is not done
    assert not (tree / "copies/a.txt").exists()
    assert not (tree / "copies/deeper/photo-2.jpg").exists()
    assert (tree / "keep/a.txt").exists() and (tree / "keep/photo.jpg").exists()
    [r] = cat.runs()
    assert (r.action, r.status, r.files_planned, r.files_done) == ("trash", "complete", 2, 2)
    listing = run(cli, db_url, "journal", str(r.id)).out
    assert listing.count("done        trash") == 2 and spared not in listing

    res = run(cli, db_url, "undo")
    assert res.code == 0, res.out + res.err
    assert "2 restored, 0 could not be restored" in res.out
    assert tree_checksums(tree) == before
    # the restored files are duplicates again at once, without a rescan
    assert group_paths(cat, tree) == groups_before
    dupes = run(cli, db_url, "dupes", str(tree))
    assert dupes.code == 0, dupes.err
    assert all(str(tree / p) in dupes.out for p in [*DUPS, "keep/a.txt", "keep/photo.jpg"])


@pytest.mark.parametrize("action", ["trash", "move", "hardlink", "symlink"])
def test_undone_files_keep_their_hashes(cli, cat: Catalogue, db_url: str, tree: Path,
                                        tmp_path: Path, action: str) -> None:
    cat.scan([tree])
    groups_before = group_paths(cat, tree)
    assert len(groups_before) == 2
    to = tmp_path / "moved" if action == "move" else None
    run_ = cat.apply(cat.plan_dedupe(action, tree, to=to))
    assert run_.done == 3
    if action != "hardlink":
        assert group_paths(cat, tree) == set()
    assert cat.undo(run_.id).not_restored == []
    assert group_paths(cat, tree) == groups_before
    totals = cat.totals(tree)
    assert (totals.groups, totals.files) == (2, 5)
    out = run(cli, db_url, "dupes", str(tree), "-f", "json").out
    listed = {frozenset(f["path"] for f in g["files"]) for g in json.loads(out)["groups"]}
    assert listed == groups_before


@pytest.mark.parametrize("where", ["plan", "entry"])
def test_a_plan_for_another_host_is_refused(cli, cat: Catalogue, db_url: str, tree: Path,
                                            tmp_path: Path, where: str) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    plan_file = tmp_path / "plan.json"
    doc = save(cli, db_url, tree, plan_file)
    assert len(doc["entries"]) == 3
    if where == "plan":
        doc["host"] = "other-machine"
    else:
        doc["entries"][1]["host"] = "other-machine"
    dump(doc, plan_file)
    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 2, res.out + res.err
    line = one_error_line(res)
    assert "other-machine" in line and str(plan_file) in line
    assert res.out == ""
    assert tree_checksums(tree) == before
    assert cat.runs() == []


MALFORMED = {
    "not json": "{\"format\": \"dupfinder-plan\",",
    "empty": "",
    "a list": "[]",
    "no format": "{}",
    "other version": {"version": 99},
    "no entries": {"entries": None},
    "entries not a list": {"entries": {"a": 1}},
    "entry not an object": {"entries": [1]},
    "entry without path": {"entries": [{"action": "trash", "keep": "/k", "size": 1}]},
    "relative path": {"entries": [{"action": "trash", "path": "rel", "keep": "/k",
                                   "size": 1}]},
    "bad base64": {"entries": [{"action": "trash", "path_b64": "!!", "keep": "/k",
                                "size": 1}]},
    "size a string": {"entries": [{"action": "trash", "path": "/p", "keep": "/k",
                                   "size": "1"}]},
    "size negative": {"entries": [{"action": "trash", "path": "/p", "keep": "/k",
                                   "size": -1}]},
    "size too big": {"entries": [{"action": "trash", "path": "/p", "keep": "/k",
                                  "size": 10**30}]},
    "mtime too big": {"entries": [{"action": "trash", "path": "/p", "keep": "/k",
                                   "size": 1, "mtime_ns": 2**64}]},
    "mixed actions": {"entries": [{"action": "delete", "path": "/p", "keep": "/k",
                                   "size": 1}]},
    "unknown action": {"options": {"action": "shred"}},
    "unknown keep": {"options": {"action": "trash", "keep": ["x"]}},
    "roots not text": {"options": {"action": "trash", "roots": [1]}},
    "to not text": {"options": {"action": "trash", "to": 5}},
    "path with NUL": {"entries": [{"action": "trash", "path": "/p\0q", "keep": "/k",
                                   "size": 1}]},
    "relative path_b64": {"entries": [{"action": "trash", "path": "/p", "path_b64": "cmVs",
                                       "keep": "/k", "size": 1}]},
    "hash too long": {"entries": [{"action": "trash", "path": "/p", "keep": "/k",
                                   "size": 1, "hash": "f" * 129}]},
    "path equals keep": {"entries": [{"action": "trash", "path": "/p", "keep": "/p",
                                      "size": 1}]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_plan_is_one_line_naming_the_file(cli, cat: Catalogue, db_url: str,
                                                      tree: Path, tmp_path: Path,
                                                      case: str) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    plan_file = tmp_path / "plan.json"
    doc = save(cli, db_url, tree, plan_file)
    bad = MALFORMED[case]
    if isinstance(bad, str):
        plan_file.write_text(bad, encoding="utf-8")
    else:
        dump({**doc, **bad}, plan_file)
    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 2, res.out + res.err
    assert str(plan_file) in one_error_line(res)
    assert res.out == ""
    assert tree_checksums(tree) == before
    assert cat.runs() == []


def test_a_plan_file_that_is_missing_or_not_utf8(cli, db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    res = run(cli, db_url, "apply", str(missing), "-y")
    assert res.code == 2 and str(missing) in one_error_line(res)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{\x00")
    res = run(cli, db_url, "apply", str(binary), "-y")
    assert res.code == 2 and str(binary) in one_error_line(res)


def test_an_entry_changed_since_is_skipped_and_the_rest_done(
        cli, cat: Catalogue, db_url: str, tree: Path, tmp_path: Path) -> None:
    cat.scan([tree])
    plan_file = tmp_path / "plan.json"
    assert len(save(cli, db_url, tree, plan_file)["entries"]) == 3
    victim = tree / "copies/a.txt"
    st = victim.stat()
    victim.write_text("other text")  # other bytes: a new mtime and size
    same_size = tree / "copies/photo.jpg"
    pst = same_size.stat()
    same_size.write_bytes(blob(9, 80_000))  # same size, the old mtime put back
    os.utime(same_size, ns=(pst.st_atime_ns, pst.st_mtime_ns))
    assert victim.stat().st_mtime_ns != st.st_mtime_ns or victim.stat().st_size != st.st_size

    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 0, res.err
    assert "1 done, 2 skipped, 0 failed" in res.out
    assert f"skipped {victim}: changed since the scan" in res.err
    assert f"skipped {same_size}: content differs from the copy that stays" in res.err
    assert victim.read_text() == "other text"
    assert same_size.read_bytes() == blob(9, 80_000)
    assert not (tree / "copies/deeper/photo-2.jpg").exists()


def test_a_non_utf8_name_survives_the_round_trip(cli, cat: Catalogue, db_url: str,
                                                 tmp_path: Path) -> None:
    root = tmp_path / "tree"
    base = os.fsencode(root)
    kept = os.fsdecode(base + b"/k\xff/orig.bin")
    dup = os.fsdecode(base + b"/caf\xe9 \\x e9.bin")
    write(kept, blob(3, 5000))
    write(dup, blob(3, 5000))
    os.utime(kept, ns=(T0, T0))
    cat.scan([root])
    before = tree_checksums(root)
    plan_file = tmp_path / "plan.json"
    doc = save(cli, db_url, root, plan_file)
    plan_file.read_bytes().decode("utf-8")  # the file itself is valid UTF-8
    [e] = doc["entries"]
    assert base64.b64decode(e["path_b64"]) == os.fsencode(dup)
    assert base64.b64decode(e["keep_b64"]) == os.fsencode(kept)
    assert e["path"] == str(root) + "/caf\\xe9 \\\\x e9.bin"  # the shown form

    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 0, res.err
    assert "1 done, 0 skipped, 0 failed" in res.out
    assert not os.path.lexists(dup) and os.path.exists(kept)
    res = run(cli, db_url, "undo")
    assert res.code == 0, res.out + res.err
    assert tree_checksums(root) == before
    assert group_paths(cat, root) == {frozenset({kept, dup})}


@pytest.mark.parametrize("name", [b"moved\\dir", b"moved \xff", b"moved\ttab"])
def test_a_move_plan_keeps_its_exact_target(cli, cat: Catalogue, db_url: str, tree: Path,
                                            tmp_path: Path, name: bytes) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    to = os.fsdecode(os.fsencode(tmp_path) + b"/" + name)
    plan_file = tmp_path / "plan.json"
    doc = save(cli, db_url, tree, plan_file, "move", "--to", to)
    assert len(doc["entries"]) == 3
    if b"\xff" in name:
        assert base64.b64decode(doc["options"]["to_b64"]) == os.fsencode(to)
    else:
        assert doc["options"]["to"] == to and "to_b64" not in doc["options"]
    res = run(cli, db_url, "apply", str(plan_file), "-y")
    assert res.code == 0, res.err
    assert "3 done, 0 skipped, 0 failed" in res.out
    for d in DUPS:  # files keep their full path below the target
        assert os.path.isfile(to + str(tree / d)), sorted(os.listdir(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([os.fsdecode(name), "plan.json", "tree"])
    assert run(cli, db_url, "undo").code == 0
    assert tree_checksums(tree) == before


def test_save_plan_with_apply_is_an_error(cli, cat: Catalogue, db_url: str, tree: Path,
                                          tmp_path: Path) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    plan_file = tmp_path / "plan.json"
    res = run(cli, db_url, "dedupe", str(tree), "--action", "trash", "--save-plan",
              str(plan_file), "--apply", "-y")
    assert res.code == 2
    assert "--save-plan" in one_error_line(res)
    assert res.out == ""
    assert not plan_file.exists()
    assert tree_checksums(tree) == before


def test_save_plan_over_a_folder_is_an_error(cli, cat: Catalogue, db_url: str, tree: Path,
                                             tmp_path: Path) -> None:
    cat.scan([tree])
    res = run(cli, db_url, "dedupe", str(tree), "--action", "trash", "--save-plan",
              str(tmp_path))
    assert res.code == 2 and "is a folder" in one_error_line(res)
    assert list(tmp_path.glob(".*.tmp*")) == []


def test_apply_without_terminal_or_yes_fails_before_printing(
        cli, cat: Catalogue, db_url: str, tree: Path, tmp_path: Path) -> None:
    cat.scan([tree])
    plan_file = tmp_path / "plan.json"
    save(cli, db_url, tree, plan_file)
    before = tree_checksums(tree)
    res = run(cli, db_url, "apply", str(plan_file))
    assert res.code == 2
    assert "add -y" in one_error_line(res)
    assert res.out == ""
    assert tree_checksums(tree) == before
    assert cat.runs() == []


def in_terminal(answer: bytes, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dupfinder ARGS`` with its stdin on a pseudo-terminal (stdout and
    stderr piped) and type ``answer`` there."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dupfinder", *args, "--db-url", db_url,
             "--host-label", HOST],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        slave = -1
        os.write(master, answer)
        out, err = proc.communicate(timeout=120)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_answering_no_in_a_terminal_does_nothing(cat: Catalogue, db_url: str, tree: Path,
                                                 tmp_path: Path) -> None:
    cat.scan([tree])
    before = tree_checksums(tree)
    res = in_terminal(b"n\n", db_url, "dedupe", str(tree), "--action", "trash", "--apply")
    assert res.returncode == 0, res.stderr
    assert "3 actions planned" in res.stdout
    assert "Apply 3 actions" in res.stdout
    assert res.stdout.rstrip().endswith("nothing done")
    assert tree_checksums(tree) == before
    assert cat.runs() == []


@pytest.mark.parametrize("answer", [b"n\n", b"y\n"])
def test_apply_asks_in_a_terminal(cli, cat: Catalogue, db_url: str, tree: Path,
                                  tmp_path: Path, answer: bytes) -> None:
    cat.scan([tree])
    plan_file = tmp_path / "plan.json"
    save(cli, db_url, tree, plan_file)
    before = tree_checksums(tree)
    res = in_terminal(answer, db_url, "apply", str(plan_file))
    assert res.returncode == 0, res.stderr
    assert "Apply 3 actions" in res.stdout
    if answer == b"n\n":
        assert res.stdout.rstrip().endswith("nothing done")
        assert tree_checksums(tree) == before
        assert cat.runs() == []
    else:
        assert "3 done, 0 skipped, 0 failed" in res.stdout
        assert all(not (tree / d).exists() for d in DUPS)
