"""The HTML report opened in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

from dupfinder.output.report import script_safe_json
from tests.pages import HOSTILE


def visible_paths(pg) -> list[str]:  # type: ignore[no-untyped-def]
    return pg.eval_on_selector_all("#results .path", "els => els.map(e => e.dataset.path)")


def test_opens_without_errors_and_pages(page) -> None:  # type: ignore[no-untyped-def]
    assert page.problems == []
    assert page.locator("#count").inner_text().startswith("135 groups")
    assert page.locator("#results tr.group").count() == 100  # one page of 100
    page.click("#next")
    assert page.locator("#results tr.group").count() == 35
    assert page.locator("#page").inner_text() == "page 2 of 2"


def test_filters_change_the_visible_rows(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", "photos")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    assert any(p.endswith("/photos/a.jpg") for p in visible_paths(page))
    page.fill("#q", "")
    page.fill("#minsize", "50k")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    page.fill("#minsize", "")
    page.select_option("#ext", ".txt")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 2")
    page.select_option("#ext", "")
    page.check("input[name=mode][value=all]")
    page.wait_for_function("document.querySelectorAll('#results tr.file-row').length === 100")
    page.fill("#q", "lonely")
    page.wait_for_function("document.querySelectorAll('#results tr.file-row').length === 1")
    assert visible_paths(page)[0].endswith("/lonely.log")  # all files: non-duplicates too
    assert page.problems == []


def test_sortable_columns(page) -> None:  # type: ignore[no-untyped-def]
    def sizes() -> list[str]:
        return page.eval_on_selector_all("#results tr.group td:first-child",
                                          "els => els.map(e => e.textContent)")

    assert sizes()[0] == "87.9 KiB"  # default: most wasted first
    page.click("th[data-key=size]")  # first click: descending
    assert sizes()[0] == "87.9 KiB"
    page.click("th[data-key=size]")  # again: ascending
    assert sizes()[0] == "11 B"
    assert page.locator("th.sorted-asc").inner_text().startswith("Size")


def test_click_copies_the_path_and_shows_a_toast(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", "photos")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 1")
    target = page.locator("#results .path", has_text="photos/a.jpg")
    target.click()
    page.wait_for_selector("#toast.show")
    assert "photos/a.jpg" in page.locator("#toast").inner_text()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith("/photos/a.jpg")
    assert page.problems == []


def test_hostile_names_stay_inert_text(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#q", "evil")
    page.wait_for_function("document.querySelectorAll('#results tr.group').length === 2")
    paths = visible_paths(page)
    assert any(p.endswith("/evil/" + HOSTILE) for p in paths)
    assert any(p.endswith("/evil/</script>.md") for p in paths)
    assert page.locator("#results img").count() == 0  # shown as text, not as an element
    assert page.dialogs == [] and page.problems == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2


def test_embedded_json_cannot_close_its_script() -> None:
    text = script_safe_json({"p": "</script><script>alert(1)</script><!--", "q": "a&b\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    import json

    assert json.loads(text) == {"p": "</script><script>alert(1)</script><!--", "q": "a&b\u2028"}


def test_report_script_runs_under_its_own_csp(browser, report: Path) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()  # CSP enforced: only the nonce'd report script may run
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.goto(report.as_uri())
    pg.wait_for_selector("#results tr.group")
    assert pg.locator("#results tr.group").count() == 100
    assert problems == []
    context.close()
