"""Duplicate folders in the HTML report: the data the page is given (topmost matches only,
the reclaimable total counting each byte once) and the "Duplicate folders" view in headless
Chromium on both database backends: the groups listed, relative paths with the full path on
hover and copy, the summary card, narrow screens, paging, inert names and the strict CSP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dupfinder import Catalogue
from dupfinder.db.folders import FolderGroup, FolderRef
from dupfinder.db.report_source import report_source
from dupfinder.output.report import folder_reclaimable, render_report, report_data
from tests.helpers import blob, write
from tests.pages import HOSTILE, big_data, no_sideways_scroll, open_report

ALBUM = {"s1.bin": blob(10, 3000), "s2.bin": blob(11, 4000),
         "disc 2/t1.bin": blob(12, 5000), "disc 2/t2.bin": blob(13, 1500)}
ALBUM_SIZE = 3000 + 4000 + 5000 + 1500
DOCS = {"r1.bin": blob(20, 700), "r2.txt": "hello\n"}
DOCS_SIZE = 700 + 6


def build(root: Path) -> None:
    """Two identical album folders (their "disc 2" subfolders are an identical pair too,
    inside them, so not listed), two identical sibling doc folders and a near copy of
    them (one file differs: not listed)."""
    for top in ("music", "backup"):
        for name, data in ALBUM.items():
            write(root / top / "Album é" / name, data)
    write(root / "music/readme.txt", "only in music")  # music and backup differ
    write(root / "backup/backup.log", "a log of the backup run")
    for folder in ("a", "b"):
        for name, data in DOCS.items():
            write(root / "docs" / folder / name, data)
    write(root / "docs/c/r1.bin", DOCS["r1.bin"])
    write(root / "docs/c/r2.txt", "hello!\n")  # a near copy


def expected(root: Path) -> list[list[object]]:
    return [[ALBUM_SIZE, 4, ALBUM_SIZE, [[f"{root}/backup/Album é", "testhost"],
                                          [f"{root}/music/Album é", "testhost"]]],
            [DOCS_SIZE, 2, DOCS_SIZE, [[f"{root}/docs/a", "testhost"],
                                       [f"{root}/docs/b", "testhost"]]]]


@pytest.fixture
def tree(cat: Catalogue, tmp_path: Path) -> Path:
    root = tmp_path / "t"
    build(root)
    cat.scan([root])
    return root


def view_rows(pg) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return pg.eval_on_selector_all(
        "#results tr.fgroup",
        """rows => rows.map(r => ({
             nums: [...r.querySelectorAll('td.num')].map(t => [t.textContent, t.title]),
             wasted: Number(r.dataset.wasted),
             meta: r.querySelector('.gmeta').textContent,
             shown: [...r.querySelectorAll('.path')].map(p => p.textContent),
             paths: [...r.querySelectorAll('.path')].map(p => p.dataset.path),
             titles: [...r.querySelectorAll('.path')].map(p => p.title),
             links: [...r.querySelectorAll('a.open')].map(a => a.getAttribute('href'))}))""")


# the data -------------------------------------------------------------------------------


def test_report_data_lists_only_the_topmost_duplicate_folders(cat: Catalogue, tree: Path) -> None:
    data = json.loads(json.dumps(report_data(report_source(cat.db))))
    assert data["folder_groups"] == expected(tree)  # most wasted first; no disc 2, no docs/c
    assert data["summary"]["folder_groups"] == 2
    assert data["summary"]["folder_wasted"] == ALBUM_SIZE + DOCS_SIZE
    assert data["summary"]["groups"] > 0 and "groups" in data and "files" in data  # kept


def test_reclaimable_total_counts_each_byte_once(cat: Catalogue, tmp_path: Path) -> None:
    # x and y are equal; z equals x/sub and y/sub, so that group is listed too (z lies in no
    # listed folder) and its wasted bytes overlap x and y's: removing y frees y, then of
    # x/sub and z one can go
    root = tmp_path / "o"
    sub = {"f1.bin": blob(30, 2500), "f2.bin": blob(31, 1200)}
    for folder in ("x/sub", "y/sub", "z"):
        for name, data in sub.items():
            write(root / folder / name, data)
    for folder in ("x", "y"):
        write(root / folder / "g.bin", blob(32, 900))
    cat.scan([root])
    data = report_data(report_source(cat.db))
    got = [(g.size, g.wasted, [f[0].removeprefix(f"{root}/") for f in g.folders])
           for g in data["folder_groups"]]
    assert got == [(3700, 7400, ["x/sub", "y/sub", "z"]), (4600, 4600, ["x", "y"])]
    assert data["summary"]["folder_wasted"] == 4600 + 3700  # not 4600 + 7400


def test_reclaimable_total_keeps_the_folder_holding_other_listed_folders() -> None:
    def g(size: int, files: int, *folders: tuple[str, str]) -> FolderGroup:
        refs = [FolderRef(p, h) for p, h in folders]
        return FolderGroup(refs, files, size, size * (len(refs) - 1))

    # keeping /b (not /a, first by path) leaves /b/s and /c for the inner group to free
    outer = g(100, 5, ("/a", "h1"), ("/b", "h1"))
    inner = g(40, 2, ("/b/s", "h1"), ("/c", "h1"))
    assert folder_reclaimable([inner, outer]) == 140
    # the same paths on another host are other folders: removing /b of h1 leaves /b/s of h2
    other = g(40, 2, ("/b/s", "h2"), ("/c", "h2"))
    assert folder_reclaimable([outer, other]) == 140
    # one folder of the inner group is left once the outer copies are gone: nothing more
    both = g(100, 5, ("/a", "h1"), ("/b", "h1"), ("/d", "h1"))
    gone = g(40, 2, ("/b/s", "h1"), ("/d/s", "h1"))
    assert folder_reclaimable([both, gone]) == 200
    assert folder_reclaimable([]) == 0


# the view -------------------------------------------------------------------------------


def test_duplicate_folders_view_lists_the_groups(browser, cat: Catalogue, tree: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    cat.report(out)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True,
                                  permissions=["clipboard-read", "clipboard-write"])
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    try:
        pg.goto(out.as_uri())
        pg.wait_for_function("window.__reportReady === true")
        total = ALBUM_SIZE + DOCS_SIZE
        assert pg.locator("#card-folder-wasted b").inner_text() == "13.9 KiB"
        assert pg.locator("#card-folder-wasted small").inner_text() == "2 groups, reclaimable"
        assert pg.get_attribute("#card-folder-wasted", "title").startswith(f"{total} bytes")
        pg.check("input[name=mode][value=fgroups]")
        pg.wait_for_selector("#results tr.fgroup")
        assert pg.locator("#count").inner_text() == "2 folder groups match"
        assert pg.locator("#results thead th").all_inner_texts()[:3] == \
            ["Size", "Files", "Reclaimable"]
        rows = view_rows(pg)
        want = expected(tree)
        assert [r["paths"] for r in rows] == [[f[0] for f in g[3]] for g in want]
        assert [r["wasted"] for r in rows] == [ALBUM_SIZE, DOCS_SIZE]  # biggest waste first
        assert [[n[0] for n in r["nums"]] for r in rows] == [["13.2 KiB", "4", "13.2 KiB"],
                                                             ["706 B", "2", "706 B"]]
        assert rows[0]["nums"][0][1] == f"{ALBUM_SIZE} bytes in each folder"
        assert rows[0]["nums"][2][1] == f"{ALBUM_SIZE} bytes in all folders but one"
        # relative to the common parent, the full path on hover
        assert rows[0]["meta"] == f"2 folders in {tree}/"
        assert rows[0]["shown"] == ["…/backup/Album é/", "…/music/Album é/"]
        assert rows[1]["meta"] == f"2 folders in {tree}/docs/"
        assert rows[1]["shown"] == ["…/a/", "…/b/"]
        for r in rows:
            assert all(t.startswith(p + "\n") for t, p in zip(r["titles"], r["paths"],
                                                                 strict=True))
        assert rows[0]["links"][0] == (tree / "backup/Album é").as_uri() + "/"
        # a click copies the full path
        pg.locator("#results tr.fgroup .path").nth(1).click()
        pg.wait_for_selector("#toast.show")
        assert pg.evaluate("navigator.clipboard.readText()") == f"{tree}/music/Album é"
        # filters: path text and minimum size
        pg.fill("#q", "docs/b")
        pg.wait_for_function("document.querySelectorAll('#results tr.fgroup').length === 1")
        assert view_rows(pg)[0]["shown"] == ["…/a/", "…/b/"]
        pg.fill("#q", "")
        pg.fill("#minsize", "1k")
        pg.wait_for_function("document.querySelectorAll('#results tr.fgroup').length === 1")
        assert view_rows(pg)[0]["wasted"] == ALBUM_SIZE
        pg.fill("#minsize", "")
        pg.click("th[data-key=wasted]")  # ascending
        assert [r["wasted"] for r in view_rows(pg)] == [DOCS_SIZE, ALBUM_SIZE]
        # the other views are still there
        pg.check("input[name=mode][value=folders]")
        pg.wait_for_selector("#results tr.folder-row")
        assert problems == []
    finally:
        context.close()


def test_duplicate_folders_on_a_narrow_screen(browser, cat: Catalogue, tree: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    cat.report(out)
    pg = open_report(browser, out, 420)
    try:
        assert no_sideways_scroll(pg)
        pg.check("input[name=mode][value=fgroups]")
        pg.wait_for_selector("#results tr.fgroup")
        assert pg.locator("#results tr.fgroup").count() == 2
        assert no_sideways_scroll(pg)
        assert pg.locator("#results thead").is_hidden()  # cards, not a table
        assert pg.eval_on_selector("#results tr.fgroup", "e => getComputedStyle(e).display") \
            == "block"
        widths = pg.eval_on_selector_all("#results tr.fgroup .path",
                                          "els => els.map(e => e.getBoundingClientRect().width)")
        assert min(widths) > 420 * 0.6, widths  # a path gets the card's width
        labels = pg.eval_on_selector_all(
            "#results tr.fgroup:first-child td.num",
            "els => els.map(e => getComputedStyle(e, '::before').content)")
        assert labels == ['"Size "', '"Files "', '"Reclaimable "']
        # every mode button is on screen
        right = pg.eval_on_selector_all(".modes label",
                                         "els => els.map(e => e.getBoundingClientRect().right)")
        assert max(right) <= 420
        pg.click("#filters summary")
        assert no_sideways_scroll(pg)
        pg.click("#filters summary")
        pg.screenshot(path="/tmp/report-folders-420.png", full_page=True)
        assert pg.problems == []
    finally:
        pg.context.close()


def test_duplicate_folders_view_runs_under_the_strict_csp(browser, cat: Catalogue,
                                                          tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    cat.report(out)
    html = out.read_text("utf-8")
    assert "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-" in html
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    for width in (1400, 420):
        pg = open_report(browser, out, width, csp=True)
        try:
            pg.check("input[name=mode][value=fgroups]")
            pg.wait_for_selector("#results tr.fgroup")
            assert pg.locator("#results tr.fgroup").count() == 2
            assert pg.locator("#results tr.fgroup .path").first.inner_text() == \
                "…/backup/Album é/"
            pg.check("input[name=mode][value=dupes]")
            pg.wait_for_selector("#results tr.group")
            assert pg.problems == []
        finally:
            pg.context.close()


# many groups, hostile names, none ----------------------------------------------------------


def many_folder_groups(n: int) -> list[list[object]]:
    out: list[list[object]] = []
    for i in range(n):
        size = 10_000 + i
        out.append([size, 3, size * 2, [[f"/data/set{i}", "h"], [f"/backup/set{i}", "h"],
                                        [f"/old/set{i}", "h"]]])
    out.sort(key=lambda g: -g[2])  # type: ignore[operator]
    return out


def test_many_duplicate_folders_page_and_names_stay_text(browser, tmp_path: Path) -> None:
    data = big_data(3)
    groups = many_folder_groups(249)
    groups.append([5, 1, 5, [[f"/x/{HOSTILE}", "h"], ["/y/</script><!--", "h"]]])
    data["folder_groups"] = groups
    data["summary"].update(folder_groups=250, folder_wasted=123_456)
    out = tmp_path / "many.html"
    out.write_text(render_report(data, "synthetic", "synthetic"), "utf-8")
    pg = open_report(browser, out, 1400)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        assert pg.locator("#card-folder-wasted b").inner_text() == "120.6 KiB"
        pg.check("input[name=mode][value=fgroups]")
        pg.wait_for_selector("#results tr.fgroup")
        assert pg.locator("#count").inner_text() == "250 folder groups match"
        assert pg.locator("#page").inner_text() == "page 1 of 3"
        assert pg.locator("#results tr.fgroup").count() == 100
        first = view_rows(pg)[0]
        assert first["wasted"] == 2 * 10_248  # biggest waste first
        # no common parent
        assert first["shown"] == ["/data/set248/", "/backup/set248/", "/old/set248/"]
        assert first["meta"] == "3 folders"
        pg.click("#next-bottom")
        pg.keyboard.press("n")
        assert pg.locator("#page").inner_text() == "page 3 of 3"
        assert pg.locator("#results tr.fgroup").count() == 50
        last = view_rows(pg)[-1]
        assert last["paths"] == [f"/x/{HOSTILE}", "/y/</script><!--"]
        assert last["shown"] == [f"/x/{HOSTILE}/", "/y/</script><!--/"]
        assert pg.locator("#results img").count() == 0  # text, never markup
        assert pg.evaluate("document.querySelectorAll('script').length") == 2
        pg.fill("#q", "set7")  # set7, set70-79
        pg.wait_for_function("document.querySelectorAll('#results tr.fgroup').length === 11")
        assert pg.locator("#page").inner_text() == "page 1 of 1"
        assert dialogs == [] and pg.problems == []
    finally:
        pg.context.close()


def test_a_report_without_duplicate_folders_says_so(browser, tmp_path: Path) -> None:
    out = tmp_path / "none.html"
    out.write_text(render_report(big_data(2), "synthetic", "synthetic"), "utf-8")  # no key
    pg = open_report(browser, out, 420)
    try:
        assert pg.locator("#card-folder-wasted b").inner_text() == "0 B"
        pg.check("input[name=mode][value=fgroups]")
        pg.wait_for_selector("#results td.empty")
        assert re.match(r"No duplicate folders", pg.locator("#results td.empty").inner_text())
        assert pg.locator("#count").inner_text() == "0 folder groups match"
        assert no_sideways_scroll(pg)
        assert pg.problems == []
    finally:
        pg.context.close()
