"""The HTML report as the browser tests open it: a scanned tree's report, a page of it in
headless Chromium, and the page helpers the report's test modules share (the ``browser``
fixture itself is in conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from dupfinder.db.report_source import report_source
from dupfinder.output.report import write_report
from tests.helpers import blob, scan, write

HOSTILE = "<img src=x onerror=alert(1)>.txt"
FOTOS = "Fotos été 2024"  # a folder name with spaces and a non-ASCII character


@pytest.fixture
def report(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    # modification times fix which copy the default policy ("oldest") keeps: photos/a.jpg,
    # although backup/a.jpg comes first by path
    for name, mtime in (("photos/a.jpg", 1_600_000_000), ("backup/a.jpg", 1_700_000_000)):
        os.utime(write(root / name, blob(1, 90_000)), (mtime, mtime))
    for name, mtime in (("docs/notes.txt", 1_500_000_000), ("old/notes.txt", 1_500_000_001)):
        os.utime(write(root / name, "same words\n"), (mtime, mtime))
    for name, mtime in ((f"{FOTOS}/bild ü.jpg", 1_400_000_000),
                        (f"{FOTOS}/copies/bild ü.jpg", 1_700_000_000)):
        os.utime(write(root / name, blob(2, 5000)), (mtime, mtime))
    write(root / "evil" / HOSTILE, "hostile twin")
    write(root / "evil" / "twin.txt", "hostile twin")
    (root / "evil/<").mkdir()
    write(root / "evil/</script>.md", "script twin!")  # the path holds "</script>"
    write(root / "evil/script.md", "script twin!")
    write(root / "lonely.log", "nobody like me")
    for i in range(130):  # enough groups for two pages
        data = blob(500 + i, 2000 + i)
        write(root / f"many/{i}.bin", data)
        write(root / f"many/copy-{i}.bin", data)
    return report_of(root, tmp_path)


def report_of(root: Path, tmp_path: Path) -> Path:
    """``root`` scanned into a new SQLite catalogue in ``tmp_path``, and the report of it
    written there."""
    db = open_database(load_settings(db_url=f"sqlite:///{tmp_path / 'c.db'}"))
    try:
        scan(db, root)
        out = tmp_path / "report.html"
        write_report(report_source(db), str(out))
    finally:
        db.dispose()
    return out


@pytest.fixture
def page(browser, report: Path):  # type: ignore[no-untyped-def]
    # Playwright's waits evaluate strings, which the report's CSP forbids: bypass it here
    # (the names are inert because the page writes them as text; the CSP is a second wall)
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  bypass_csp=True)
    pg = context.new_page()
    pg.problems = []
    pg.dialogs = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(report.as_uri())
    pg.wait_for_function("window.__reportReady === true")
    yield pg
    context.close()


def open_report(browser, report: Path, width: int, height: int = 860,
                csp: bool = False):  # type: ignore[no-untyped-def]
    """A page of ``report`` at ``width`` CSS pixels, collecting console errors."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  bypass_csp=not csp, is_mobile=width < 700, has_touch=width < 700)
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.goto(report.as_uri())
    if csp:
        pg.wait_for_selector("#results tr.group")
    else:
        pg.wait_for_function("window.__reportReady === true")
    return pg


def no_sideways_scroll(pg) -> bool:  # type: ignore[no-untyped-def]
    return pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def big_data(groups: int) -> dict:  # type: ignore[type-arg]
    data_groups = []
    for i in range(groups):
        folder = f"/data/d{i % 97}/sub{i % 13}"
        files = [[f"{folder}/f{i}.bin", "h", 1_600_000_000 + i],
                 [f"/backup/d{i % 89}/f{i} copy.bin", "h", 1_700_000_000]]
        data_groups.append([1000 + i, f"{i:064x}", "blake3", 1000 + i, files, 0, None])
    return {"summary": {"files": groups * 2, "bytes": 0, "groups": groups,
                        "files_in_groups": groups * 2, "wasted": 0},
            "hosts": 1, "keep_policy": "oldest", "groups": data_groups, "files": [],
            "files_truncated": False, "extensions": [".bin"], "scans": []}
