"""JSON and CSV carry exact file names, so a script acting on them opens the file meant.

``dupes``, ``unique`` and ``folders`` print, in JSON and CSV, each path as the name itself
when it is valid UTF-8; a name that is not has no path (JSON ``null``, an empty CSV field)
but its bytes in base64 (``path_b64``) and, in JSON, its display form (``path_display``).
The trees hold names with a newline, tab, CR, backslash, quotes, comma, spaces at either
end, C1 and bidi controls and an undecodable byte, next to a decoy literally named
``dup\\nfile`` (backslash, n): the display form of ``dup<newline>file``, which names that
other, unique file. On both backends, through the real command line.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from dupfinder.output.formats import CsvWriter
from dupfinder.paths import display, is_utf8

NEWLINE = b"dup\nfile"
DECOY = b"dup\\nfile"  # a backslash and an n: what display() makes of NEWLINE
NON_UTF8 = b"caf\xe9"
NAMES = [NEWLINE, b"tab\tname", b"back\\slash", b"cr\rname", b"lone\r", b'quo"te',
         b'"', b"com,ma", b" lead and trail ", b"'single'", "c1\x9bx".encode(),
         "evil\u202etxt".encode(), NON_UTF8]
TWIN = b"the same bytes in every one"


def make(path: bytes, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def tree(tmp_path: Path) -> bytes:
    """dupes/: one duplicate group of every odd name, and the decoy with other bytes;
    uniq/: every odd name and the decoy, each with bytes of its own; fold/: a folder of
    every odd name holding the same two files, and a decoy folder holding others."""
    root = os.path.join(os.fsencode(tmp_path), b"t")
    for name in NAMES:
        make(os.path.join(root, b"dupes", name), TWIN)
        make(os.path.join(root, b"uniq", name), b"only here: " + name)
        make(os.path.join(root, b"fold", name, b"one.txt"), b"first file of a folder")
        make(os.path.join(root, b"fold", name, b"two.txt"), b"second file of a folder")
    make(os.path.join(root, b"dupes", DECOY), b"the decoy: not a copy of anything")
    make(os.path.join(root, b"uniq", DECOY), b"the decoy: unique too")
    make(os.path.join(root, b"fold", DECOY, b"one.txt"), b"a decoy folder's own file")
    return root


def scanned(cli, db_url: str, root: bytes) -> None:
    res = cli("scan", os.fsdecode(root), "--db-url", db_url, "-p", "1", "-q")
    assert res.code == 0, res.err


def run(cli, db_url: str, *args: str) -> str:
    res = cli(*args, "--db-url", db_url)
    assert res.code == 0, res.err
    return res.out


def files_under(root: bytes) -> list[bytes]:
    return sorted(os.path.join(folder, name) for folder, _dirs, names in os.walk(root)
                  for name in names)


def content_groups(root: bytes) -> set[frozenset[bytes]]:
    """Every set of two or more files under ``root`` with equal bytes, from the disk."""
    by_bytes: dict[bytes, set[bytes]] = defaultdict(set)
    for path in files_under(root):
        with open(path, "rb") as f:
            by_bytes[f.read()].add(path)
    return {frozenset(v) for v in by_bytes.values() if len(v) > 1}


def no_lone_surrogate(value: Any) -> None:
    """Every string in a parsed JSON document, keys too, is valid Unicode."""
    if isinstance(value, str):
        assert is_utf8(value), repr(value)
    elif isinstance(value, list):
        for v in value:
            no_lone_surrogate(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            no_lone_surrogate(k)
            no_lone_surrogate(v)


def from_json(entry: dict[str, Any]) -> bytes:
    """The exact bytes a JSON entry names, checking the form it takes."""
    if entry["path"] is None:
        raw = base64.b64decode(entry["path_b64"], validate=True)
        assert not is_utf8(os.fsdecode(raw))
        assert entry["path_display"] == display(os.fsdecode(raw))
        return raw
    assert "path_b64" not in entry and "path_display" not in entry
    return os.fsencode(entry["path"])


def parse_csv(out: str, header: tuple[str, ...]) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert tuple(rows[0]) == header
    assert all(len(r) == len(header) for r in rows)
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


def from_csv(row: dict[str, str]) -> bytes:
    """The exact bytes a CSV row names, checking the form it takes."""
    if row["path"] == "":
        raw = base64.b64decode(row["path_b64"], validate=True)
        assert not is_utf8(os.fsdecode(raw))
        return raw
    assert row["path_b64"] == ""
    return os.fsencode(row["path"])


def same_file(listed: bytes, expected: bytes) -> None:
    assert listed == expected
    assert os.path.samefile(listed, expected)


# dupes ------------------------------------------------------------------------------------


def check_groups(found: list[list[bytes]], root: bytes) -> None:
    """Each group lists existing files with equal bytes, and the groups are the disk's."""
    for group in found:
        contents = set()
        for path in group:
            with open(path, "rb") as f:  # every path opens, and the file it opens ...
                contents.add(f.read())
        assert len(contents) == 1  # ... is a copy of the others: never the decoy
    assert {frozenset(g) for g in found} == content_groups(root)
    twins = next(g for g in found if NEWLINE in {os.path.basename(p) for p in g})
    assert sorted(os.path.basename(p) for p in twins) == sorted(NAMES)


def test_dupes_json_names_exactly_the_duplicates(cli, db_url: str, tree: bytes) -> None:
    scanned(cli, db_url, tree)
    out = run(cli, db_url, "dupes", os.fsdecode(tree), "--format", "json")
    doc = json.loads(out)
    no_lone_surrogate(doc)
    assert doc["roots"] == [os.fsdecode(tree)] and "roots_b64" not in doc
    found = [[from_json(f) for f in g["files"]] for g in doc["groups"]]
    check_groups(found, tree)
    by_name = {os.path.basename(from_json(f)): f for g in doc["groups"] for f in g["files"]}
    newline = by_name[NEWLINE]
    assert newline["path"].endswith("/dupes/dup\nfile")  # the name itself, not "dup\\nfile"
    same_file(os.fsencode(newline["path"]), os.path.join(tree, b"dupes", NEWLINE))
    odd = by_name[NON_UTF8]
    assert odd["path"] is None  # nothing a script could open by mistake
    same_file(base64.b64decode(odd["path_b64"]), os.path.join(tree, b"dupes", NON_UTF8))
    assert odd["path_display"].endswith("/dupes/caf\\xe9")
    assert DECOY not in by_name


def test_dupes_csv_names_exactly_the_duplicates(cli, db_url: str, tree: bytes) -> None:
    scanned(cli, db_url, tree)
    out = run(cli, db_url, "dupes", "--format", "csv")
    rows = parse_csv(out, ("group", "size", "hash", "algorithm", "host", "path", "mtime",
                           "path_b64"))
    groups: dict[str, list[bytes]] = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(from_csv(r))
    check_groups(list(groups.values()), tree)
    by_name = {os.path.basename(from_csv(r)): r for r in rows}
    assert by_name[NEWLINE]["path"].endswith("/dupes/dup\nfile")
    assert by_name[NON_UTF8]["path"] == ""
    same_file(base64.b64decode(by_name[NON_UTF8]["path_b64"]),
              os.path.join(tree, b"dupes", NON_UTF8))


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_deleting_all_but_the_first_of_each_group_deletes_only_copies(
        cli, db_url: str, tmp_path: Path, fmt: str) -> None:
    """The script the display form broke: ``dup<newline>file`` was shown as the decoy's
    exact name, so a script deleting all but the first copy deleted the unique decoy."""
    root = os.path.join(os.fsencode(tmp_path), b"s")
    utf8 = [b"a copy", NEWLINE]  # "a copy" sorts first: the one such a script keeps
    for name in utf8:
        make(os.path.join(root, name), TWIN)
    make(os.path.join(root, DECOY), b"the decoy: the only copy of its bytes")
    scanned(cli, db_url, root)
    out = run(cli, db_url, "dupes", "--format", fmt)
    if fmt == "json":
        groups = [[f["path"] for f in g["files"]] for g in json.loads(out)["groups"]]
    else:
        by_group: dict[str, list[str]] = defaultdict(list)
        for r in csv.DictReader(io.StringIO(out, newline="")):
            by_group[r["group"]].append(r["path"])
        groups = list(by_group.values())
    assert len(groups) == 1 and len(groups[0]) == len(utf8)
    doomed = groups[0][1:]
    for path in doomed:  # what such a script would delete: copies of the first, only
        with open(path, "rb") as f:
            assert f.read() == TWIN, path
    assert os.fsdecode(os.path.join(root, DECOY)) not in doomed
    assert {os.fsencode(p) for p in groups[0]} == {os.path.join(root, n) for n in utf8}


def test_dupes_text_keeps_the_display_form(cli, db_url: str, tree: bytes) -> None:
    scanned(cli, db_url, tree)
    out = run(cli, db_url, "dupes", os.fsdecode(os.path.join(tree, b"dupes")))
    base = display(os.fsdecode(os.path.join(tree, b"dupes")))
    assert f"  {base}/dup\\nfile\n" in out and f"  {base}/caf\\xe9\n" in out
    assert "\r" not in out and "\t" not in out


# unique -----------------------------------------------------------------------------------


def test_unique_json_and_csv_name_exactly_the_unique_files(cli, db_url: str, tree: bytes
                                                           ) -> None:
    scanned(cli, db_url, tree)
    folder = os.path.join(tree, b"uniq")
    expected = files_under(folder)
    assert len(expected) == len(NAMES) + 1

    doc = json.loads(run(cli, db_url, "unique", os.fsdecode(folder), "--format", "json"))
    no_lone_surrogate(doc)
    listed = {from_json(f): f for f in doc["files"]}
    assert sorted(listed) == expected
    for path, f in listed.items():
        assert os.path.getsize(path) == f["size"] and f["copies"] == 0

    rows = parse_csv(run(cli, db_url, "unique", os.fsdecode(folder), "--format", "csv"),
                     ("path", "host", "size", "copies", "undecided", "path_b64"))
    by_path = {from_csv(r): r for r in rows}
    assert sorted(by_path) == expected
    for path, r in by_path.items():
        assert os.path.getsize(path) == int(r["size"])
    assert by_path[os.path.join(folder, NEWLINE)]["path"] == os.fsdecode(
        os.path.join(folder, NEWLINE))
    assert by_path[os.path.join(folder, DECOY)]["path"].endswith("/uniq/dup\\nfile")


# folders ----------------------------------------------------------------------------------


def test_folders_json_and_csv_name_exactly_the_duplicate_folders(cli, db_url: str,
                                                                 tree: bytes) -> None:
    scanned(cli, db_url, tree)
    expected = {frozenset(os.path.join(tree, b"fold", n) for n in NAMES)}

    doc = json.loads(run(cli, db_url, "folders", "--format", "json"))
    no_lone_surrogate(doc)
    found = {frozenset(from_json(f) for f in g["folders"]) for g in doc["groups"]}
    assert found == expected
    for group in found:
        for folder in group:
            assert os.path.isdir(folder)
            assert sorted(os.listdir(folder)) == [b"one.txt", b"two.txt"]

    rows = parse_csv(run(cli, db_url, "folders", "--format", "csv"),
                     ("group", "host", "path", "files", "size", "wasted", "path_b64"))
    by_group: dict[str, set[bytes]] = defaultdict(set)
    for r in rows:
        by_group[r["group"]].add(from_csv(r))
    assert {frozenset(v) for v in by_group.values()} == expected


# a root that is not UTF-8 -----------------------------------------------------------------


def test_json_roots_give_the_bytes_of_a_root_that_is_not_utf8(cli, db_url: str,
                                                              tree: bytes) -> None:
    scanned(cli, db_url, tree)
    odd = os.path.join(tree, b"fold", NON_UTF8)
    plain = os.path.join(tree, b"fold", b"tab\tname")
    doc = json.loads(run(cli, db_url, "dupes", os.fsdecode(odd), os.fsdecode(plain),
                         "--format", "json"))
    no_lone_surrogate(doc)
    assert doc["roots"] == [None, os.fsdecode(plain)]
    assert doc["roots_b64"] == [base64.b64encode(odd).decode(), None]
    assert doc["roots_display"] == [display(os.fsdecode(odd)), display(os.fsdecode(plain))]


# the CSV writer ---------------------------------------------------------------------------


def test_csv_fields_round_trip_through_csv_reader() -> None:
    fields = ["cr\rname", "\r", "lf\nname", "crlf\r\n", " lead", "trail ", " ", '"',
              '"quoted"', "a,b", "tab\tname", "back\\slash", "", "plain"]
    buf = io.StringIO(newline="")
    writer = CsvWriter(buf)
    writer.writerow(fields)
    writer.writerows([[f, 1] for f in fields])
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert rows[0] == fields
    assert rows[1:] == [[f, "1"] for f in fields]
    assert '"cr\rname","1"\n' in buf.getvalue()  # a row with a CR: every field quoted
    plain = io.StringIO(newline="")
    CsvWriter(plain).writerow(["plain", 1, "a b"])
    assert plain.getvalue() == "plain,1,a b\n"  # rows without CR are written as before
