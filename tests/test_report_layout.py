"""The HTML report's layout and views in headless Chromium: narrow screens, summary cards that
follow the filters, both pagers and the n/p keys, the kept copy, the folder view and the
file:// links; plus the data the page is given (which copy stays, hard links)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest

from dupfinder.actions.plan import keeper
from dupfinder.db.engine import Database
from dupfinder.db.queries import iter_groups
from dupfinder.db.report_source import report_source
from dupfinder.output.report import render_report, report_data
from dupfinder.paths import display
from dupfinder.states import KeepPolicy
from tests.helpers import blob, scan, write
from tests.pages import FOTOS, big_data, no_sideways_scroll, open_report

NARROW = (420, 360)


def card(pg, name: str) -> str:  # type: ignore[no-untyped-def]
    return pg.locator(f"#card-{name} b").inner_text()


def folder_rows(pg) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    rows = pg.eval_on_selector_all(
        "#results tr.folder-row",
        "rows => rows.map(r => [r.querySelector('.fpath').textContent, Number(r.dataset.wasted)])")
    return [(name, wasted) for name, wasted in rows]


# narrow screens -----------------------------------------------------------------------------


@pytest.mark.parametrize("width", NARROW)
def test_narrow_screens_do_not_scroll_sideways(browser, report: Path, width: int) -> None:
    pg = open_report(browser, report, width)
    try:
        assert pg.evaluate("window.innerWidth") == width
        assert no_sideways_scroll(pg)
        # filters start collapsed, groups are cards (no table header, rows as blocks)
        assert pg.evaluate("document.getElementById('filters').open") is False
        assert not pg.locator("#q").is_visible()
        assert pg.locator("#results thead").is_hidden()
        display_of = "e => getComputedStyle(e).display"
        assert pg.eval_on_selector("#results tr.group", display_of) == "block"
        # the paths get the card's width, not a squeezed column
        widths = pg.eval_on_selector_all("#results tr.group .path",
                                          "els => els.map(e => e.getBoundingClientRect().width)")
        assert min(widths) > width * 0.55, widths
        # the toolbar does not stick over the rows
        assert pg.eval_on_selector("#toolbar", "e => getComputedStyle(e).position") == "static"
        pg.click("#filters summary")
        assert pg.locator("#q").is_visible()
        assert no_sideways_scroll(pg)
        pg.click("details:not(#filters) summary")  # the scans table scrolls inside its box
        assert no_sideways_scroll(pg)
        for mode, row in (("folders", "folder-row"), ("all", "file-row")):
            pg.check(f"input[name=mode][value={mode}]")
            pg.wait_for_selector(f"#results tr.{row}")
            assert no_sideways_scroll(pg), mode
        pg.keyboard.press("End")
        assert no_sideways_scroll(pg)
        assert pg.problems == []
    finally:
        pg.context.close()


def test_wide_screen_keeps_the_table_and_open_sticky_filters(browser, report: Path) -> None:
    pg = open_report(browser, report, 1400)
    try:
        assert pg.evaluate("document.getElementById('filters').open") is True
        assert pg.locator("#results thead th").count() == 4
        assert pg.eval_on_selector("#toolbar", "e => getComputedStyle(e).position") == "sticky"
        assert pg.locator("#results th", has_text="Hash").count() == 0  # no hash column
        prefix = pg.locator("#results tr.group .hash").first
        assert re.fullmatch(r"#[0-9a-f]{8}", prefix.inner_text())
        assert no_sideways_scroll(pg)
        assert pg.problems == []
    finally:
        pg.context.close()


# summary, pagers, keys ------------------------------------------------------------------


def test_summary_cards_follow_the_filters(page) -> None:  # type: ignore[no-untyped-def]
    assert (card(page, "groups"), card(page, "dupe-files")) == ("135", "270")
    everything = card(page, "wasted")
    page.fill("#q", "photos")
    page.wait_for_function("document.querySelector('#card-groups b').textContent === '1'")
    assert card(page, "dupe-files") == "2"
    assert card(page, "wasted") == "87.9 KiB"
    assert "of 135" in page.locator("#card-groups").inner_text()
    assert page.locator("#card-groups.filtered").count() == 1
    assert page.locator("#active").inner_text() == "(1 active)"
    page.fill("#q", "")
    page.select_option("#ext", ".txt")  # the notes and the hostile twins
    page.wait_for_function("document.querySelector('#card-groups b').textContent === '2'")
    assert (card(page, "dupe-files"), card(page, "wasted")) == ("4", "23 B")
    page.check("input[name=mode][value=all]")  # the cards still count the matching groups
    assert card(page, "groups") == "2"
    page.select_option("#ext", "")
    page.wait_for_function("document.querySelector('#card-groups b').textContent === '135'")
    assert card(page, "wasted") == everything
    assert page.locator("#card-groups.filtered").count() == 0
    assert page.problems == []


def test_bottom_pager_and_n_p_keys(page) -> None:  # type: ignore[no-untyped-def]
    def at() -> tuple[str, str]:
        return page.locator("#page").inner_text(), page.locator("#page-bottom").inner_text()

    assert at() == ("page 1 of 2", "page 1 of 2")
    assert page.locator("#prev-bottom").is_disabled()
    page.click("#next-bottom")
    assert at() == ("page 2 of 2", "page 2 of 2")
    assert page.locator("#results tr.group").count() == 35
    assert page.locator("#next-bottom").is_disabled()
    page.keyboard.press("p")
    assert at()[0] == "page 1 of 2"
    assert page.locator("#results tr.group").count() == 100
    page.keyboard.press("p")  # no page before the first
    assert at()[0] == "page 1 of 2"
    page.keyboard.press("n")
    assert at()[0] == "page 2 of 2"
    page.keyboard.press("p")
    page.focus("#minsize")  # typing in a field is typing, not paging
    page.keyboard.press("n")
    assert at()[0] == "page 1 of 2"
    assert page.input_value("#minsize") == "n"
    page.fill("#minsize", "")
    page.focus("#ext")
    page.keyboard.press("n")
    assert at()[0] == "page 1 of 2"
    page.locator("h1").click()  # out of the fields: the keys page again
    page.keyboard.press("n")
    assert at()[0] == "page 2 of 2"
    page.keyboard.press("Control+n")  # a browser shortcut, not ours
    assert at()[0] == "page 2 of 2"
    assert page.problems == []


# what a group shows ---------------------------------------------------------------------


def test_kept_copy_dates_and_relative_paths(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", "a.jpg")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    files = page.eval_on_selector_all(
        "#results tr.group li.file",
        """els => els.map(e => ({cls: e.className, badge: e.querySelector('.badge').textContent,
                                 shown: e.querySelector('.path').textContent,
                                 path: e.querySelector('.path').dataset.path,
                                 title: e.querySelector('.path').title,
                                 date: e.querySelector('.date').textContent}))""")
    root = str(report.parent / "tree")
    # oldest is kept although it is not first by path
    assert [(f["cls"], f["badge"], f["shown"], f["date"]) for f in files] == [
        ("file dupe", "copy", "…/backup/a.jpg", "2023-11-14"),
        ("file kept", "keep", "…/photos/a.jpg", "2020-09-13"),
    ]
    assert [f["path"] for f in files] == [f"{root}/backup/a.jpg", f"{root}/photos/a.jpg"]
    assert all(f["title"].startswith(f["path"]) for f in files)  # the full path on hover
    assert page.locator("#results tr.group .gmeta .folder").inner_text() == f"in {root}/"
    # the copy is of the full path
    page.locator("#results li.kept .path").click()
    page.wait_for_selector("#toast.show")
    assert page.evaluate("navigator.clipboard.readText()") == f"{root}/photos/a.jpg"
    assert page.problems == []


def test_open_folder_links_are_percent_encoded_file_urls(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", "bild")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    links = page.eval_on_selector_all("#results li.file",
                                      "els => els.map(e => [e.querySelector('.path').textContent, "
                                      "e.querySelector('a.open').getAttribute('href')])")
    fotos = report.parent / "tree" / FOTOS
    assert links == [["…/bild ü.jpg", fotos.as_uri() + "/"],
                     ["…/copies/bild ü.jpg", (fotos / "copies").as_uri() + "/"]]
    assert "%20" in links[0][1] and "%C3%A9" in links[0][1]  # space, é as UTF-8 bytes
    assert page.locator("#results li.kept .path").inner_text() == "…/bild ü.jpg"
    page.check("input[name=mode][value=all]")  # the all-files view links as well
    page.wait_for_function("document.querySelectorAll('#results tr.file-row').length === 2")
    assert page.locator("#results tr.file-row a.open").first.get_attribute("href") == \
        fotos.as_uri() + "/"
    assert page.problems == []


def test_file_url_decodes_the_display_form(browser, tmp_path: Path) -> None:
    # names reach the page in display form: \xNN is one undecodable byte, \\ a backslash,
    # \n a newline, \uNNNN a control; the link must name the real bytes
    raw = [b"/t/a\xff\\b\nc\xe2\x80\xae d~'!()*%", b"/t/plain"]
    shown = [display(os.fsdecode(r)) for r in raw]
    assert shown[0] == "/t/a\\xff\\\\b\\nc\\u202e d~'!()*%"
    data = big_data(1)
    data["groups"][0][4] = [[f"{p}/x.bin", "h", 0] for p in shown]
    out = tmp_path / "names.html"
    out.write_text(render_report(data, "synthetic", "synthetic"), "utf-8")
    pg = open_report(browser, out, 1400)
    try:
        hrefs = pg.eval_on_selector_all("#results a.open",
                                        "els => els.map(e => e.getAttribute('href'))")
        assert hrefs == ["file://" + quote_from_bytes(r) + "/" for r in raw]
        assert hrefs[0] == "file:///t/a%FF%5Cb%0Ac%E2%80%AE%20d~%27%21%28%29%2A%25/"
        assert pg.problems == []
    finally:
        pg.context.close()


# the folder view --------------------------------------------------------------------------


def test_folder_view_rolls_waste_up_and_sorts(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    root = str(report.parent / "tree")
    page.check("input[name=mode][value=folders]")
    page.wait_for_function("document.querySelector('#results tr.folder-row') !== null")
    many = sum(2000 + i for i in range(130))
    total = many + 90_000 + 5000 + 24 + 11
    by_waste = [(root, total), ("many", many), ("backup", 90_000),
                (f"{FOTOS}/copies", 5000), ("evil", 24), ("old", 11)]
    assert folder_rows(page) == by_waste  # root first, then its folders by waste
    wasted = page.evaluate("Number(document.querySelector('#card-wasted').title.split(' ')[0])")
    assert wasted == total  # the root holds every redundant byte
    page.click("th[data-key=name]")  # by name, A to Z (case-insensitive)
    assert folder_rows(page) == [by_waste[0]] + sorted(by_waste[1:], key=lambda r: r[0].lower())
    page.click("th[data-key=name]")
    assert [r[0] for r in folder_rows(page)][1:] == ["old", "many", f"{FOTOS}/copies", "evil",
                                                      "backup"]
    page.select_option("#sort", "wasted:-1")
    assert folder_rows(page) == by_waste
    # the root collapses and expands; a filter rolls up only what matches
    page.locator("#results tr.folder-row .twisty").first.click()
    assert folder_rows(page) == [(root, total)]
    page.locator("#results tr.folder-row .fpath").first.click()
    assert len(folder_rows(page)) == 6
    page.fill("#q", "jpg")
    page.wait_for_function("document.querySelectorAll('#results tr.folder-row').length === 3")
    assert folder_rows(page) == [(root, 95_000), ("backup", 90_000), (f"{FOTOS}/copies", 5000)]
    # "groups >" shows the duplicate groups under a folder
    page.locator("#results tr.folder-row", has_text="backup").locator(".show").click()
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    assert page.input_value("#q") == f"{root}/backup/"
    assert page.is_checked("input[name=mode][value=dupes]")
    assert page.problems == []


def test_everything_runs_under_the_strict_csp(browser, report: Path) -> None:
    html = report.read_text("utf-8")
    nonce = re.search(r"script-src 'nonce-([\w-]+)'", html)
    assert nonce and html.count(f'nonce="{nonce.group(1)}"') == 1
    assert "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing external
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    for width in (1400, 420):
        pg = open_report(browser, report, width, csp=True)
        try:
            pg.check("input[name=mode][value=folders]")
            pg.locator("#results tr.folder-row .twisty").first.click()
            pg.check("input[name=mode][value=all]")
            pg.check("input[name=mode][value=dupes]")
            pg.locator("#next-bottom").click()
            assert pg.locator("#page").inner_text() == "page 2 of 2"
            assert pg.problems == []
        finally:
            pg.context.close()


# paging stays fast --------------------------------------------------------------------------


def test_a_100k_file_report_stays_quick(browser, tmp_path: Path) -> None:
    out = tmp_path / "big.html"
    out.write_text(render_report(big_data(50_000), "synthetic", "synthetic"), "utf-8")
    context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900})
    try:
        pg = context.new_page()
        started = time.monotonic()
        pg.goto(out.as_uri())
        pg.wait_for_function("window.__reportReady === true")
        opened = time.monotonic() - started
        assert opened < 8, opened
        assert pg.locator("#results tr.group").count() == 100  # one page, not every row
        started = time.monotonic()
        pg.keyboard.press("n")
        pg.check("input[name=mode][value=folders]")
        pg.wait_for_function("document.querySelector('#results tr.folder-row') !== null")
        rolled = time.monotonic() - started
        assert rolled < 4, rolled
        print(f"100k files: open {opened:.2f}s, next page + folder view {rolled:.2f}s")
        # the copies all lie under /backup/dNN: one row for "/backup", then its 89 folders
        assert pg.locator("#results tr.folder-row").count() == 90
        first = pg.locator("#results tr.folder-row").first
        assert first.locator(".fpath").inner_text() == "/backup"
        assert first.get_attribute("data-wasted") == str(sum(1000 + i for i in range(50_000)))
    finally:
        context.close()


# the data the page is given -----------------------------------------------------------------


def test_report_data_marks_the_kept_copy_and_hard_links(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "t"
    data = blob(7, 4000)
    os.utime(write(root / "z/old.bin", data), (1_000_000_000, 1_000_000_000))
    os.utime(write(root / "a/new.bin", data), (2_000_000_000, 2_000_000_000))
    (root / "b").mkdir()
    os.link(root / "a/new.bin", root / "b/link.bin")
    os.utime(write(root / "c/same1.bin", "tie"), (1_500_000_000, 1_500_000_000))
    os.utime(write(root / "c/same2.bin", "tie"), (1_500_000_000, 1_500_000_000))
    scan(db, root)
    got = json.loads(json.dumps(report_data(report_source(db))))
    assert got["keep_policy"] == "oldest"
    by_name = {g[4][0][0].rsplit("/", 1)[1]: g for g in got["groups"]}
    big = by_name["new.bin"]  # files by path: a/new.bin, b/link.bin, z/old.bin
    assert [f[0].rsplit("/", 2)[1] for f in big[4]] == ["a", "b", "z"]
    assert big[5] == 2 and big[6] == [0, 0, 1]  # z/old.bin kept; a and b are one inode
    assert big[3] == 4000
    tie = by_name["same1.bin"]
    assert tie[5] == 0 and tie[6] is None  # equal times: the first by path bytes
    with db.session() as s:  # the same choice as a dedupe's
        for g in iter_groups(s):
            kept = keeper(g.files, KeepPolicy.OLDEST)
            shown = by_name[g.files[0].path.rsplit("/", 1)[1]]
            assert shown[4][shown[5]][0] == kept.path
    newest = json.loads(json.dumps(report_data(report_source(db), keep=KeepPolicy.NEWEST)))
    # newest: a/new.bin and its link b/link.bin tie on time; the first by path bytes stays
    assert {g[4][g[5]][0].rsplit("/", 2)[1] for g in newest["groups"]} == {"a", "c"}


# the treemap --------------------------------------------------------------------------------


def tiles(pg) -> list[dict]:  # type: ignore[no-untyped-def]
    return pg.eval_on_selector_all("#tiles .tile", """els => els.map(e => {
        const r = e.getBoundingClientRect();
        return {name: (e.querySelector('b') || {}).textContent || '', key: e.dataset.key || '',
                x: r.x, y: r.y, w: r.width, h: r.height};
    })""")


@pytest.mark.parametrize("width", (1400, 420))
def test_the_treemap_shows_where_the_waste_is_and_narrows_to_a_folder(
        browser, report: Path, width: int) -> None:
    pg = open_report(browser, report, width)
    try:
        assert pg.locator("#map").is_hidden()  # only with the folders
        pg.locator("label:has(input[value=folders])").click()
        pg.wait_for_selector("#tiles .tile")
        box = pg.eval_on_selector("#tiles", "e => {const r = e.getBoundingClientRect(); "
                                            "return {x: r.x + e.clientLeft, y: r.y + e.clientTop,"
                                            " w: e.clientWidth, h: e.clientHeight}}")
        all_groups = card(pg, "groups")
        shown = tiles(pg)
        # the five folders holding redundant copies, biggest first, filling the map
        assert [t["name"] for t in shown][:2] == ["many", "backup"]
        assert len(shown) == 5
        area = sum(t["w"] * t["h"] for t in shown)
        assert area == pytest.approx(box["w"] * box["h"], rel=0.02)
        for t in shown:
            assert box["x"] - 0.5 <= t["x"] and t["x"] + t["w"] <= box["x"] + box["w"] + 0.5
            assert box["y"] - 0.5 <= t["y"] and t["y"] + t["h"] <= box["y"] + box["h"] + 0.5
        many = next(t for t in shown if t["name"] == "many")
        assert many["w"] * many["h"] > 0.5 * area  # 272 KiB of 367 KiB wasted
        assert no_sideways_scroll(pg)
        # a click narrows every view to the folder; the crumbs lead back up
        pg.locator("#tiles .tile", has_text="backup").click()
        pg.wait_for_function("document.querySelector('#crumbs [aria-current]')"
                             ".textContent === 'backup'")
        assert card(pg, "groups") == "1"
        pg.locator("label:has(input[value=dupes])").click()
        paths = pg.eval_on_selector_all("#results .path", "els => els.map(e => e.dataset.path)")
        assert sorted(os.path.basename(os.path.dirname(p)) for p in paths) == ["backup",
                                                                               "photos"]
        pg.locator("label:has(input[value=folders])").click()
        pg.locator("#crumbs button").first.click()
        pg.wait_for_function("document.querySelectorAll('#tiles .tile').length === 5")
        assert card(pg, "groups") == all_groups
        assert pg.locator("#crumbs [aria-current]").inner_text() == str(report.parent / "tree")
        pg.screenshot(path=str(report.parent / f"treemap-{width}.png"))
        assert pg.problems == []
    finally:
        pg.context.close()
