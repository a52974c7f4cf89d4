"""How names are shown: one escaping (:func:`dupfinder.paths.display`) in text, the HTML
report and messages, so no name can pass for another, drive the terminal or reorder what is
shown; JSON and CSV carry the exact names (tests/test_exact_names.py); fdupes stays raw
bytes."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from dupfinder.paths import display, for_message
from tests.pages import report_of

BYTE = b"a\xff.txt"  # an undecodable byte
LITERAL = b"a\\xff.txt"  # a backslash, x, f, f in the name: what BYTE used to show as
BIDI = ["\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
        "\u2066", "\u2067", "\u2068", "\u2069"]


def make(folder: Path, name: bytes, data: bytes) -> str:
    """Create ``folder/name`` (name as raw bytes); returns the path as Python sees it."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.path.join(os.fsencode(folder), name)
    with open(raw, "wb") as f:
        f.write(data)
    return os.fsdecode(raw)


def report_json(html: str) -> dict:  # type: ignore[type-arg]
    """The data the report embeds, as the page's script reads it."""
    m = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html,
                  re.S)
    assert m is not None
    return json.loads(m.group(1))


# display ----------------------------------------------------------------------------------


def test_display_keeps_an_undecodable_byte_apart_from_a_backslash_in_the_name() -> None:
    assert len(LITERAL) == 9 and LITERAL.count(b"\\") == 1
    byte, literal = os.fsdecode(BYTE), os.fsdecode(LITERAL)
    assert display(byte) == "a\\xff.txt"
    assert display(literal) == "a\\\\xff.txt"
    assert display("back\\slash") == "back\\\\slash"
    assert display("café and spaces.txt") == "café and spaces.txt"  # ordinary names stay


def test_display_escapes_c0_del_and_c1_controls() -> None:
    assert display("e\x1b[2Jx") == "e\\x1b[2Jx"
    assert display("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert display("nul\x00del\x7f") == "nul\\x00del\\x7f"
    # C1 (CSI is U+009B) as \u: \x9b would be the undecodable byte 0x9b
    assert display("c1\x9b2J\x85") == "c1\\u009b2J\\u0085"
    assert display(os.fsdecode(b"\x9b")) == "\\x9b"
    shown = display("".join(chr(c) for c in [*range(0x20), *range(0x7f, 0xa0)]))
    assert all(" " <= ch <= "~" for ch in shown)  # nothing but printable ASCII is left


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_display_escapes_bidi_controls(char: str) -> None:
    assert display(f"evil{char}txt.exe") == f"evil\\u{ord(char):04x}txt.exe"
    assert for_message(f"evil{char}txt.exe") == f"evil\\u{ord(char):04x}txt.exe"


def test_for_message_is_display_and_one_line() -> None:
    name = os.fsdecode(b"x\xff\n\x1b\\\xe2\x80\xae")
    assert for_message(name) == display(name) == "x\\xff\\n\\x1b\\\\\\u202e"


# outputs ----------------------------------------------------------------------------------


def test_outputs_tell_an_undecodable_byte_from_a_backslash(cli, db_url: str, tmp_path: Path
                                                           ) -> None:
    root = tmp_path / "t"
    byte = make(root, BYTE, b"twins")
    literal = make(root, LITERAL, b"twins")
    res = cli("scan", root, "--db-url", db_url, "-p", "1")
    assert res.code == 0, res.err

    text = cli("dupes", "--db-url", db_url).out
    assert f"  {root}/a\\xff.txt\n" in text
    assert f"  {root}/a\\\\xff.txt\n" in text

    # JSON and CSV: the exact names; the undecodable one has no path, only its bytes
    js = json.loads(cli("dupes", "--db-url", db_url, "-f", "json").out)
    files = {f["path"]: f for f in js["groups"][0]["files"]}
    assert set(files) == {None, literal}
    assert literal == f"{root}/a\\xff.txt"  # one backslash: the exact name
    assert base64.b64decode(files[None]["path_b64"]) == os.fsencode(byte)
    assert files[None]["path_display"] == display(byte) == f"{root}/a\\xff.txt"
    assert "path_b64" not in files[literal]  # valid UTF-8: no bytes needed
    assert "path_display" not in files[literal]

    rows = list(csv.DictReader(io.StringIO(cli("dupes", "--db-url", db_url, "-f", "csv").out)))
    assert {(r["path"], r["path_b64"]) for r in rows} == {
        ("", base64.b64encode(os.fsencode(byte)).decode()), (literal, "")}

    fdupes = cli("dupes", "--db-url", db_url, "-f", "fdupes")
    assert fdupes.code == 0

    out = tmp_path / "r.html"
    assert cli("report", "--db-url", db_url, "-o", out).code == 0
    shown = {f[0] for f in report_json(out.read_text("utf-8"))["groups"][0][4]}
    assert shown == {f"{root}/a\\xff.txt", f"{root}/a\\\\xff.txt"}


def test_fdupes_stays_raw_bytes(db_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "t"
    make(root, BYTE, b"twins")
    make(root, LITERAL, b"twins")
    make(root, b"e\x1b[31m\n\xe2\x80\xae.txt", b"twins")
    subprocess.run([sys.executable, "-m", "dupfinder", "scan", str(root), "--db-url", db_url,
                    "-q", "-p", "1"], check=True)
    out = subprocess.run([sys.executable, "-m", "dupfinder", "dupes", "-f", "fdupes",
                          "--db-url", db_url], check=True, capture_output=True).stdout
    base = os.fsencode(root)
    for name in (BYTE, LITERAL, b"e\x1b[31m\n\xe2\x80\xae.txt"):
        assert base + b"/" + name + b"\n" in out


def test_text_output_escapes_controls_and_bidi(cli, db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "t"
    names = {b"e\x1b[31mred\n.txt": "e\\x1b[31mred\\n.txt",
             "c1\x9b2J.txt".encode(): "c1\\u009b2J.txt",
             b"del\x7f.txt": "del\\x7f.txt",
             "evil\u202etxt.exe".encode(): "evil\\u202etxt.exe",
             "iso\u2066late\u2069.txt".encode(): "iso\\u2066late\\u2069.txt"}
    for name in names:
        make(root, name, b"same bytes")
    assert cli("scan", root, "--db-url", db_url, "-p", "1").code == 0
    res = cli("dupes", "--db-url", db_url)
    assert res.code == 0, res.err
    for shown in names.values():
        assert f"  {root}/{shown}\n" in res.out
    lines = res.out.splitlines()
    assert len(lines) == 1 + len(names) + 1  # header, one line per file, blank
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                         "\u2066-\u2069]", res.out)
    # JSON and CSV carry the exact names; JSON's escapes still keep controls off the terminal
    exact = {f"{root}/{name.decode()}" for name in names}
    out = cli("dupes", "--db-url", db_url, "-f", "json").out
    assert {f["path"] for f in json.loads(out)["groups"][0]["files"]} == exact
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                         "\u2066-\u2069]", out)
    out = cli("dupes", "--db-url", db_url, "-f", "csv").out
    assert {r["path"] for r in csv.DictReader(io.StringIO(out, newline=""))} == exact


def test_messages_escape_controls_and_bidi(cli, tmp_path: Path) -> None:
    missing = str(tmp_path / "gone\x1b]0;pwned\x07\u202etxt.exe\x9b")
    res = cli("scan", missing, "--db-url", f"sqlite:///{tmp_path / 'c.db'}")
    assert res.code != 0
    assert "gone\\x1b]0;pwned\\x07\\u202etxt.exe\\u009b" in res.err
    assert not re.search("[\x1b\x07\x9b\u202e]", res.err)


# the report -------------------------------------------------------------------------------


@pytest.fixture
def bidi_report(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    make(root, "evil\u202etxt.exe".encode(), b"same")
    make(root, b"plain.txt", b"same")
    make(root, "ctl\x1b\n\x85.txt".encode(), b"same")  # \x85: the C1 NEL
    return report_of(root, tmp_path)


def test_report_shows_bidi_and_controls_as_visible_escapes(bidi_report: Path) -> None:
    html = bidi_report.read_text("utf-8")
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", html)
    names = {f[0].rsplit("/", 1)[1] for f in report_json(html)["groups"][0][4]}
    assert names == {"evil\\u202etxt.exe", "plain.txt", "ctl\\x1b\\n\\u0085.txt"}
    # still a strict page: nothing runs but the report's own nonce'd script
    assert "default-src 'none'" in html and "script-src 'nonce-" in html


def test_report_page_renders_bidi_visibly(browser, bidi_report: Path) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(bypass_csp=True)  # Playwright's waits evaluate strings
    try:
        page = context.new_page()
        page.goto(bidi_report.as_uri())
        page.wait_for_function("window.__reportReady === true")
        shown = page.locator("#results .path").all_text_contents()
        assert any(s.endswith("/evil\\u202etxt.exe") for s in shown), shown
        assert any(s.endswith("/ctl\\x1b\\n\\u0085.txt") for s in shown), shown
        assert not any(re.search("[\u202a-\u202e\x1b\n\x85]", s) for s in shown)
    finally:
        context.close()


# a scan root that is not UTF-8 ------------------------------------------------------------


def test_scan_report_of_a_non_utf8_root(cli, db_url: str, tmp_path: Path) -> None:
    root = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"r\xe9"))
    make(Path(root), b"a", b"dup")
    make(Path(root), b"b", b"dup")
    out = tmp_path / "out.html"
    res = cli("scan", root, "--db-url", db_url, "-p", "1", "--report", out)
    assert res.code == 0, res.err
    assert "duplicates: 1 group, 2 files" in res.out
    html = out.read_text("utf-8")
    shown = display(root)
    assert shown.endswith("/r\\xe9")
    assert f"<title>dupfinder report – {shown}</title>" in html
    data = report_json(html)
    assert data["scans"][0]["roots"] == [shown]
    assert {f[0] for f in data["groups"][0][4]} == {f"{shown}/a", f"{shown}/b"}

    again = tmp_path / "again.html"
    res = cli("report", root, "--db-url", db_url, "-o", again)
    assert res.code == 0, res.err
    assert f"<title>dupfinder report – {shown}</title>" in again.read_text("utf-8")
    js = json.loads(cli("dupes", root, "--db-url", db_url, "-f", "json").out)
    assert js["roots"] == [None]  # not UTF-8: no name, but its bytes and its display form
    assert js["roots_b64"] == [base64.b64encode(os.fsencode(root)).decode()]
    assert js["roots_display"] == [shown]
