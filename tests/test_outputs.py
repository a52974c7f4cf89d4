"""``dupes`` in every format, ``stats`` and ``report``, read back and compared with the scan."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from pathlib import Path

import pytest

from dupfinder.db.engine import Database
from dupfinder.db.queries import iter_groups
from dupfinder.paths import display
from tests.helpers import HOST, blob, groups, scan, write


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    write(root / "big/a.bin", blob(1, 300_000))
    write(root / "big/b.bin", blob(1, 300_000))
    write(root / "small/one.txt", "hello\n")
    write(root / "small/two.txt", "hello\n")
    write(root / "small/deep/three.txt", "hello\n")
    write(root / "mid/x.dat", blob(2, 5000))
    write(root / "mid/y.dat", blob(2, 5000))
    write(root / "unique", "nothing like it")
    os.link(root / "small/one.txt", root / "small/one-link.txt")
    raw = os.fsencode(root / "small") + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"hello\n")
    return root


def dupes(cli, db_url: str, *args: str):
    res = cli("dupes", "--db-url", db_url, *args)
    assert res.code == 0, res.err
    return res


def as_display(found: set[frozenset[str]]) -> set[frozenset[str]]:
    return {frozenset(display(p) for p in g) for g in found}


def exact(entry: dict[str, str]) -> str:
    """The exact path a JSON file entry or CSV row names (``path``, or for a name that is
    not valid UTF-8 its bytes in ``path_b64``)."""
    if entry["path"]:
        return entry["path"]
    return os.fsdecode(base64.b64decode(entry["path_b64"]))


def test_every_format_matches_the_scan(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    expected = groups(db)
    assert len(expected) == 3

    js = json.loads(dupes(cli, db_url, "-f", "json").out)
    assert js["group_count"] == 3
    assert {frozenset(exact(f) for f in g["files"]) for g in js["groups"]} == expected
    first = js["groups"][0]
    assert first["size"] == 300_000 and first["wasted"] == 300_000  # sorted by waste
    assert set(first["files"][0]) == {"path", "host", "mtime"}
    assert first["files"][0]["host"] == HOST

    rows = list(csv.DictReader(io.StringIO(dupes(cli, db_url, "-f", "csv").out)))
    by_group: dict[str, set[str]] = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).add(exact(r))
    assert {frozenset(v) for v in by_group.values()} == expected

    text = dupes(cli, db_url).out
    assert text.count("group ") == 3
    assert "3 files" not in text.split("\n")[0]  # the biggest waste comes first
    for g in as_display(expected):
        for path in g:
            assert f"\n  {path}\n" in text  # one host: paths without "host: "


def test_fdupes_blocks_match_the_groups_byte_for_byte(db: Database, tree: Path,
                                                      db_url: str) -> None:
    import subprocess
    import sys

    scan(db, tree)
    expected = {frozenset(os.fsencode(p) for p in g) for g in groups(db)}
    out = subprocess.run([sys.executable, "-m", "dupfinder", "dupes", "-f", "fdupes",
                          "--db-url", db_url], check=True, capture_output=True).stdout
    assert out.endswith(b"\n\n")  # as fdupes: every group, the last too, ends with a blank
    blocks = [b for b in out.split(b"\n\n") if b]
    assert {frozenset(b.split(b"\n")) for b in blocks} == expected
    assert os.fsencode(tree) + b"/small/caf\xe9.txt\n" in out  # raw bytes, as fdupes


def test_filters_paths_min_size_host_and_sort(cli, db: Database, db_url: str, tree: Path,
                                              tmp_path: Path) -> None:
    scan(db, tree)
    other = write(tmp_path / "nas/copy.bin", blob(1, 300_000))
    scan(db, tmp_path / "nas", host="nas")
    scan(db, tree)  # the other host's row arrived: hash ours again for it
    everything = json.loads(dupes(cli, db_url, "-f", "json").out)["groups"]
    big = [g for g in everything if g["size"] == 300_000][0]
    assert {f["host"] for f in big["files"]} == {HOST, "nas"}
    assert str(other) in {f["path"] for f in big["files"]}
    only_nas = json.loads(dupes(cli, db_url, "-f", "json", "--host", "nas").out)
    assert only_nas["groups"] == []  # alone on its host, nas holds no duplicates
    small = json.loads(dupes(cli, db_url, "-f", "json", str(tree / "small")).out)["groups"]
    assert [g["size"] for g in small] == [6]
    assert all("/small/" in exact(f) for f in small[0]["files"])
    sized = json.loads(dupes(cli, db_url, "-f", "json", "--min-size", "4k").out)["groups"]
    assert sorted(g["size"] for g in sized) == [5000, 300_000]
    by_count = json.loads(dupes(cli, db_url, "-f", "json", "--sort", "count").out)["groups"]
    assert [len(g["files"]) for g in by_count] == sorted(
        (len(g["files"]) for g in by_count), reverse=True)
    by_size = json.loads(dupes(cli, db_url, "-f", "json", "--sort", "size").out)["groups"]
    assert [g["size"] for g in by_size] == [300_000, 5000, 6]


def test_groups_stream_in_order_without_loading_everything(db: Database, tmp_path: Path
                                                           ) -> None:
    for i in range(30):
        data = blob(100 + i, 1000 + i * 10)
        write(tmp_path / f"a/{i}", data)
        write(tmp_path / f"b/{i}", data)
    scan(db, tmp_path)
    with db.session() as s:
        it = iter_groups(s)
        first = next(it)  # a generator: groups come one by one
        rest = list(it)
    sizes = [first.size] + [g.size for g in rest]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 30
    assert [g.number for g in [first, *rest]] == list(range(1, 31))


def test_stats(cli, db: Database, db_url: str, tree: Path) -> None:
    scan(db, tree)
    res = cli("stats", "--db-url", db_url)
    assert res.code == 0, res.err
    out = res.out
    assert "files:            10" in out
    assert "duplicate groups: 3 (9 files)" in out
    # one extra 300000-byte copy, one of 5000, three of 6 bytes (the hard link is free)
    assert f"({300_000 + 5000 + 18} bytes)" in out
    ext_lines = out.split("top extensions by wasted bytes:")[1].split("top folders")[0]
    assert ext_lines.strip().splitlines()[0].endswith(".bin")
    assert "latest scans:" in out and "complete" in out


def test_report_command_and_scan_report_option(cli, db_url: str, tree: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = cli("scan", str(tree), "--db-url", db_url, "--report", str(out))
    assert res.code == 0, res.err
    html = out.read_text()
    assert "<script src" not in html and "http://" not in html and "https://" not in html
    res = cli("report", "-o", str(tmp_path / "r2.html"), "--db-url", db_url, str(tree / "big"))
    assert res.code == 0, res.err
    assert "1 duplicate group," in res.err
    bad = cli("report", "-o", str(tmp_path), "--db-url", db_url)
    assert bad.code == 2 and "is a folder" in bad.err
    missing = cli("report", "-o", str(tmp_path / "no/such/dir/r.html"), "--db-url", db_url)
    assert missing.code == 2 and "does not exist" in missing.err
