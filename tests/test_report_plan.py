"""From the HTML report to a plan: files ticked in headless Chromium are downloaded as a plan
file, which the real `dupfinder apply` carries out and `dupfinder undo` reverses, on both
database backends."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from dupfinder import Catalogue
from dupfinder.paths import display
from tests.helpers import HOST, blob, tree_checksums, write

BAD = os.fsdecode(b"caf\xe9 \xff.dat")  # not UTF-8: the page shows it as caf\xe9 \xff.dat
ACCENT = "Fotos été/bild ü.jpg"  # a space and accents
# exact nanoseconds beyond 2**53: a JavaScript number would round them, and `apply` would
# then skip every file as changed since the scan
NS = 1_600_000_000_123_456_789


def build(root: Path) -> dict[str, Path]:
    """Three duplicate groups; in each the oldest copy (the first named) is kept."""
    bad, acc, words = blob(1, 3000), blob(2, 5000), "plain words\n"
    files = {
        "bad_kept": (root / "a" / BAD, bad), "bad_dupe": (root / "b" / BAD, bad),
        "bad_other": (root / "c/other.dat", bad),
        "acc_kept": (root / "x" / ACCENT, acc), "acc_dupe": (root / "y" / ACCENT, acc),
        "acc_copy": (root / "z/bild ü copy.jpg", acc),
        "words_kept": (root / "u/one.txt", words), "words_dupe": (root / "u/two.txt", words),
    }
    out = {}
    for i, (key, (path, data)) in enumerate(files.items()):
        write(path, data)
        ns = NS + (0 if key.endswith("_kept") else 1_000_000_000_007 * (i + 1))
        os.utime(path, ns=(ns, ns))
        out[key] = path
    out["words_link"] = root / "u/zz-link.txt"  # a hard link of the kept one.txt
    os.link(out["words_kept"], out["words_link"])
    return out


def open_page(browser, report: Path, csp: bool = True):  # type: ignore[no-untyped-def]
    """The report with its own CSP enforced (unless ``csp`` is false), collecting errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=not csp,
                                  accept_downloads=True)
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.goto(report.as_uri())
    pg.wait_for_selector("#results tr.group")
    return pg


def item(pg, path: Path):  # type: ignore[no-untyped-def]
    """The list item of the file at ``path`` in the duplicates view."""
    shown = pg.eval_on_selector_all("#results li.file .path",
                                    "els => els.map(e => e.dataset.path)")
    return pg.locator("#results li.file").nth(shown.index(display(str(path))))


def group_row(pg, path: Path):  # type: ignore[no-untyped-def]
    """The group row that holds the file at ``path``."""
    rows = pg.eval_on_selector_all(
        "#results tr.group",
        "trs => trs.map(t => Array.from(t.querySelectorAll('.path'), e => e.dataset.path))")
    index = next(i for i, paths in enumerate(rows) if display(str(path)) in paths)
    return pg.locator("#results tr.group").nth(index)


def selected(pg) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    sel = pg.locator("#sel")
    return int(sel.get_attribute("data-files")), int(sel.get_attribute("data-bytes"))


def b64(path: Path) -> str:
    return base64.b64encode(os.fsencode(path)).decode("ascii")


def test_ticked_files_become_a_plan_that_apply_carries_out_and_undo_reverses(
        browser, cat: Catalogue, cli, db_url: str, tmp_path: Path,
        isolated_env: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    f = build(root)
    cat.scan([root])
    report = tmp_path / "report.html"
    cat.report(report)
    before = tree_checksums(root)

    pg = open_page(browser, report)  # the report's strict CSP is enforced throughout
    try:
        assert pg.locator("#results tr.group").count() == 3
        assert pg.is_disabled("#download-plan")
        item(pg, f["bad_dupe"]).locator("input.pick").check()  # one file by its checkbox
        assert selected(pg) == (1, 3000)
        group_row(pg, f["acc_kept"]).locator(".allbut").click()  # all but the kept copy
        assert selected(pg) == (3, 3000 + 2 * 5000)
        assert pg.locator("#sel").inner_text() == "3 files ticked, 12.7 KiB"
        assert item(pg, f["acc_dupe"]).locator("input.pick").is_checked()
        assert item(pg, f["acc_copy"]).locator("input.pick").is_checked()
        assert not item(pg, f["acc_kept"]).locator("input.pick").is_checked()
        assert not item(pg, f["bad_other"]).locator("input.pick").is_checked()
        assert pg.input_value("#plan-action") == "trash"  # the default
        pg.select_option("#plan-action", "trash")
        with pg.expect_download() as info:
            pg.click("#download-plan")
        download = info.value
        assert download.suggested_filename == "dupfinder-plan.json"
        plan_file = tmp_path / "dupfinder-plan.json"
        download.save_as(plan_file)
        assert pg.locator("#plan-msg").inner_text() == ""
        assert pg.problems == []
    finally:
        pg.context.close()

    text = plan_file.read_text("utf-8")
    doc = json.loads(text)
    assert (doc["format"], doc["version"], doc["host"]) == ("dupfinder-plan", 1, HOST)
    assert doc["options"] == {"action": "trash", "keep": "oldest", "prefer": [], "roots": [],
                              "to": None, "min_size": 0}
    ticked = [f["bad_dupe"], f["acc_dupe"], f["acc_copy"]]
    entries = sorted(doc["entries"], key=lambda e: e["path_b64"])
    expected = sorted(
        ({"action": "trash", "path": display(str(p)), "path_b64": b64(p),
          "keep": display(str(kept)), "keep_b64": b64(kept), "size": p.stat().st_size,
          "host": HOST, "mtime_ns": p.stat().st_mtime_ns,
          "keep_mtime_ns": kept.stat().st_mtime_ns}
         for p, kept in ((f["bad_dupe"], f["bad_kept"]), (f["acc_dupe"], f["acc_kept"]),
                         (f["acc_copy"], f["acc_kept"]))),
        key=lambda e: e["path_b64"])
    hashes = {g.hash for g in cat.groups()}
    for got, want in zip(entries, expected, strict=True):
        assert got.pop("hash") in hashes
        assert got == want
    assert "\\u0000" not in text and f'"mtime_ns": {f["bad_dupe"].stat().st_mtime_ns}' in text
    assert any(e["path"].endswith("/b/caf\\xe9 \\xff.dat") for e in entries)  # readable

    result = cli("apply", plan_file, "-y", "--db-url", db_url, "--host-label", HOST)
    assert result.code == 0, result.out + result.err
    assert "3 done, 0 skipped, 0 failed" in result.out
    for p in ticked:
        assert not os.path.lexists(p)
    after = tree_checksums(root)
    assert after == {k: v for k, v in before.items() if Path(k) not in ticked}
    trashed = sorted(os.listdir(isolated_env / "data" / "Trash" / "files"))
    assert len(trashed) == 3

    result = cli("undo", "--db-url", db_url, "--host-label", HOST)
    assert result.code == 0, result.out + result.err
    assert "3 restored, 0 could not be restored" in result.out
    assert tree_checksums(root) == before


def test_kept_copies_cannot_be_ticked_and_the_selection_adds_up(
        browser, cat: Catalogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    f = build(root)
    cat.scan([root])
    report = tmp_path / "report.html"
    cat.report(report)
    pg = open_page(browser, report)
    try:
        # the kept copies and the kept copy's hard link have no usable checkbox
        kept = pg.locator("#results li.kept input.pick")
        assert kept.count() == 3
        assert all(kept.nth(i).is_disabled() for i in range(3))
        assert item(pg, f["words_link"]).locator("input.pick").is_disabled()
        assert pg.locator("#results li.file input.pick:not(:disabled)").count() == 5
        # even a checkbox forced back on does not put a kept copy in the plan
        pg.eval_on_selector("#results li.kept input.pick",
                            "b => { b.disabled = false; b.click(); }")
        assert selected(pg) == (0, 0)
        assert not pg.locator("#results li.kept input.pick").first.is_checked()
        # all but the kept copy: the hard link is left alone (one file already)
        group_row(pg, f["words_kept"]).locator(".allbut").click()
        assert selected(pg) == (1, 12)
        assert item(pg, f["words_dupe"]).locator("input.pick").is_checked()
        assert group_row(pg, f["words_kept"]).locator(".allbut").inner_text() == \
            "untick this group"
        group_row(pg, f["words_kept"]).locator(".allbut").click()  # again: unticks
        assert selected(pg) == (0, 0)
        # every matching group at once, with a filter, then all
        pg.select_option("#ext", ".dat")
        assert pg.locator("#results tr.group").count() == 1
        assert pg.inner_text("#tick-matching") == \
            "Tick all but the kept copy in the 1 matching group"
        pg.click("#tick-matching")
        assert selected(pg) == (2, 2 * 3000)
        pg.select_option("#ext", "")
        assert pg.inner_text("#tick-matching") == "Tick all but the kept copy in all 3 groups"
        pg.click("#tick-matching")
        assert selected(pg) == (5, 2 * 3000 + 2 * 5000 + 12)
        assert pg.locator("#sel").inner_text() == "5 files ticked, 15.6 KiB"
        assert pg.locator("#results li.picked").count() == 5
        assert pg.locator("#results li.kept.picked").count() == 0
        # ticks survive another view and paging back
        pg.check("input[name=mode][value=all]")
        pg.check("input[name=mode][value=dupes]")
        assert pg.locator("#results li.file input.pick:checked").count() == 5
        pg.select_option("#plan-action", "delete")
        assert "cannot be brought back" in pg.inner_text("#plan-note")
        pg.click("#untick-all")
        assert selected(pg) == (0, 0) and pg.is_disabled("#download-plan")
        assert pg.locator("#results li.file input.pick:checked").count() == 0
        assert pg.problems == []
    finally:
        pg.context.close()


def test_a_plan_takes_the_files_of_one_host_only(
        browser, cat: Catalogue, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    f = build(root)
    cat.scan([root])
    other = tmp_path / "other"
    write(other / "p/one.bin", blob(9, 700))
    write(other / "q/one.bin", blob(9, 700))
    late = NS + 9_000_000_000_000_000
    os.utime(write(other / "r/late.txt", "plain words\n"), ns=(late, late))  # words group
    with Catalogue.open(db_url, host="otherhost", fallback=False) as there:
        there.scan([other])
    report = tmp_path / "report.html"
    cat.report(report)
    pg = open_page(browser, report)
    try:
        # a copy whose kept copy is on another host cannot be ticked
        box = item(pg, other / "r/late.txt").locator("input.pick")
        assert box.is_disabled() and "on host testhost" in box.get_attribute("title")
        item(pg, f["bad_dupe"]).locator("input.pick").check()
        item(pg, other / "q/one.bin").locator("input.pick").check()
        assert selected(pg) == (2, 3700)
        downloads: list[object] = []
        pg.on("download", lambda d: downloads.append(d))
        pg.click("#download-plan")
        message = pg.inner_text("#plan-msg")
        assert "2 hosts" in message and "otherhost" in message and "testhost" in message
        pg.wait_for_timeout(500)
        assert downloads == []  # refused
        item(pg, other / "q/one.bin").locator("input.pick").uncheck()
        assert pg.inner_text("#plan-msg") == ""
        with pg.expect_download() as info:
            pg.click("#download-plan")
        plan_file = tmp_path / "plan.json"
        info.value.save_as(plan_file)
        doc = json.loads(plan_file.read_text("utf-8"))
        assert doc["host"] == HOST and [e["host"] for e in doc["entries"]] == [HOST]
        assert pg.problems == []
    finally:
        pg.context.close()
