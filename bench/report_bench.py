"""Report at scale: generating the HTML report for a 100k-file catalogue, and the time until
the page is interactive in headless Chromium.

Usage (from the repository root)::

    python -m bench.report_bench [--files 100000] [--groups 30000]

The catalogue is synthetic, written with the catalogue's own functions into a fresh SQLite
file: the rows by ``dupfinder.db.file_rows.upsert_files``, their hashes appended to the pending
table by ``dupfinder.db.pending.append`` and moved into the rows (with their contents and
counts) by ``dupfinder.db.pending.merge``, as a scan does. ``--groups`` duplicate groups
hold ``--files`` * 0.7 files, the rest unique. Prints seconds to build the report, its size,
and the milliseconds from navigation to the page's ``window.__reportReady`` flag (first
render done), median of 3 loads.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select

from dupfinder.config import load_settings
from dupfinder.db import pending
from dupfinder.db.engine import open_database
from dupfinder.db.file_rows import upsert_files
from dupfinder.db.models import FileHash, utcnow
from dupfinder.db.report_source import report_source
from dupfinder.output.report import write_report

T = TypeVar("T")
BATCH = 5000
SCAN_ID = 1
ALGO = "xxh3-128"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def batched(items: list[T], n: int) -> Iterator[list[T]]:
    """``items`` in lists of ``n``."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def build_catalogue(url: str, files: int, groups: int, seed: int = 1) -> None:
    """Write ``files`` rows: ~70% in ``groups`` duplicate groups, the rest unique."""
    rnd = random.Random(seed)
    db = open_database(load_settings(db_url=url), no_fallback=True)
    now = utcnow()
    in_groups = int(files * 0.7)
    rows, hashes = [], []
    for i in range(files):
        g = i % groups if i < in_groups else None
        size = 1000 + (g if g is not None else groups + i) * 7
        folder = f"/data/{['photos', 'music', 'docs', 'backup'][i % 4]}/{rnd.randrange(500)}"
        name = f"file-{i}{['.jpg', '.mp3', '.pdf', '.txt', ''][i % 5]}"
        rows.append({"host": "bench", "path": f"{folder}/{name}", "name": name, "size": size,
                     "mtime_ns": 1_700_000_000_000_000_000 + i, "device": 1, "inode": i + 1,
                     "nlink": 1, "scan_id": 1, "first_seen": now, "last_seen": now})
        hashes.append(f"{g:032x}" if g is not None else f"u{i:031x}")
    with db.session() as s:
        for batch in batched(rows, BATCH):
            upsert_files(s, batch)
        s.commit()
        # the stored paths are the filesystem ones here (plain ASCII)
        ids = dict(s.execute(select(FileHash.path, FileHash.id)).all())
        results = [(ids[r["path"]], r["size"], r["mtime_ns"], r["inode"], h, h, ALGO)
                   for r, h in zip(rows, hashes, strict=True)]
        for batch in batched(results, BATCH):
            pending.append(s, SCAN_ID, batch)
        s.commit()
    pending.merge(db, SCAN_ID)
    db.dispose()


def time_to_interactive(report: Path, loads: int = 3) -> list[float]:
    """Milliseconds from navigation start until ``window.__reportReady``, per load."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(loads):
            context = browser.new_context(bypass_csp=True)
            page = context.new_page()
            start = time.perf_counter()
            page.goto(report.as_uri())
            page.wait_for_function("window.__reportReady === true", timeout=120_000)
            times.append((time.perf_counter() - start) * 1000)
            context.close()
        browser.close()
    return times


def main() -> None:
    """Build the catalogue, write the report, load it in Chromium, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=30_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dupfinder-report-bench-") as tmp:
        url = f"sqlite:///{tmp}/catalogue.db"
        t = time.perf_counter()
        build_catalogue(url, args.files, args.groups)
        print(f"catalogue: {args.files} files, {args.groups} groups "
              f"(built in {time.perf_counter() - t:.1f}s)")
        db = open_database(load_settings(db_url=url), no_fallback=True)
        out = Path(tmp) / "report.html"
        t = time.perf_counter()
        info = write_report(report_source(db), str(out))
        gen = time.perf_counter() - t
        db.dispose()
        print(f"report generated in {gen:.2f}s: {info.groups} groups, "
              f"{out.stat().st_size / 1e6:.1f} MB")
        times = time_to_interactive(out)
        print("time to interactive in Chromium: median "
              f"{statistics.median(times):.0f} ms (loads: {', '.join(f'{x:.0f}' for x in times)})")


if __name__ == "__main__":
    main()
