"""Write throughput of the catalogue, as a scan writes it, on SQLite and PostgreSQL.

Usage (from the repository root)::

    python -m bench.upsert [--rows 100000] [--batch 1000] [--commit-every 1]
                           [--values realistic|simple] [--skip-pg] [--skip-sqlite]

Each backend gets a fresh database (schema created untimed). The passes, each timed alone:

1. ``insert``: ``--rows`` new files through ``dupfinder.db.rows.RowWriter.add`` in the
   catalogue's key order (the order of the scan's walk), then ``flush``, on one
   connection, as a scan's sync writes the files it finds; the writer commits every
   ``FLUSH_ROWS`` rows or second, and hands the new ids to its ``on_ids`` callback;
2. ``change``: every row again through ``RowWriter.change`` with a new mtime (a rescan's
   changed files: new metadata, hashes and content cleared);
3. ``append``: a hash result (prefix and full hash) per row through
   ``dupfinder.db.pending.append``, ``--batch`` results per call, a commit after every
   ``--commit-every`` calls, in the scanner's hashing order (device, inode), which is
   scattered over the table;
4. ``merge``: ``dupfinder.db.pending.merge`` moving those results into the rows, making
   the contents and recounting them (a rescan's merge; a cold load into an empty catalogue
   suspends the indexes and recounts once instead).

Rows per second are printed for each pass; the targets are 50k rows/s on SQLite and 25k
rows/s on PostgreSQL for the row writes (insert and change).

PostgreSQL is ``$DUPFINDER_BENCH_PG_URL`` if set, else a throw-away local server.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import (
    code_version,
    format_table,
    pg_version,
    postgres,
    say,
    sqlite_url,
    timed,
    url_string,
)
from dupfinder.config import load_settings
from dupfinder.db import pending
from dupfinder.db.engine import Database, open_database
from dupfinder.db.models import FileHash, utcnow
from dupfinder.db.rows import NewRow, RowWriter
from dupfinder.db.stored_paths import order_key

TARGETS = {"sqlite": 50_000, "postgresql": 25_000}
WORDS = ("src", "docs", "Photos 2021", "backup", "music", "build", "data", "archive")
HOST = "bench"
SCAN_ID = 1
ALGO = "xxh3-128"


def make_rows(n: int, values: str = "realistic", seed: int = 1) -> list[NewRow]:
    """``n`` new files as the walk hands them to the writer, in key order.

    ``simple`` values follow tests/test_db.py's rows() (sizes 100 + i % 5000 in step with
    the ids, short paths): index updates then stay clustered and look cheaper than they
    are. ``realistic`` values (default) have log-uniform random sizes from 512 B to 360 KiB
    (like bench.gen_tree's tree, where most sizes are distinct), nested paths of ~60
    characters and scattered inode numbers."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if values == "simple":
            path, size, inode = f"/data/f{i}", 100 + i % 5000, 10_000 + i
        else:
            folder = f"/srv/bench-tree/{rng.choice(WORDS)}_{i // 97 % 1000:04d}/" \
                     f"{rng.choice(WORDS)}_{i // 7 % 50:02d}"
            path = f"{folder}/file_{i:07d}.dat"
            size = int(math.exp(rng.uniform(math.log(512), math.log(360 << 10))))
            inode = rng.randrange(1 << 32)
        rows.append(NewRow(path, order_key(path), path.rpartition("/")[2], size,
                           1_700_000_000_000_000_000 + i, 1, inode, 1))
    rows.sort(key=lambda r: r.key)
    return rows


def write_rows(db: Database, rows: list[NewRow], ids: list[int] | None = None) -> tuple[
        float, list[int]]:
    """Seconds to send ``rows`` through one :class:`RowWriter` on one connection: added
    when ``ids`` is None, else the rows of those ids changed. Returns the seconds and the
    ids the writer reported."""
    reported: list[int] = []

    def on_ids(pairs: list[tuple[int, NewRow]]) -> None:
        reported.extend(rid for rid, _ in pairs)

    def work() -> None:
        with db.engine.connect() as conn:
            writer = RowWriter(conn, HOST, SCAN_ID, utcnow(), on_ids)
            if ids is None:
                for row in rows:
                    writer.add(row)
            else:
                for rid, row in zip(ids, rows, strict=True):
                    writer.change(rid, row, None)
            writer.flush()

    seconds, _ = timed(work)
    return seconds, reported


def run_backend(url: str, rows: list[NewRow], batch: int,
                commit_every: int = 1) -> dict[str, float]:
    """Open ``url`` (schema created outside the timing) and time the four passes;
    returns rows per second for ``insert``, ``change``, ``append`` and ``merge``."""
    with tempfile.TemporaryDirectory(prefix="dupfinder-bench-") as cwd:
        # cwd: never read a ./config.json; db_url overrides any other configuration
        db = open_database(load_settings(db_url=url, cwd=Path(cwd)), no_fallback=True)
    try:
        rates = {}
        seconds, ids = write_rows(db, rows)
        rates["insert"] = len(rows) / seconds
        if len(ids) != len(rows):
            raise RuntimeError(f"the writer reported {len(ids)} ids for {len(rows)} rows")
        changed = [r._replace(mtime_ns=r.mtime_ns + 1) for r in rows]
        seconds, _ = write_rows(db, changed, ids)
        rates["change"] = len(rows) / seconds
        with db.session() as session:
            stored = session.execute(select(func.count()).select_from(FileHash)).scalar()
            # the order the scanner hashes in (device, inode), so that the results name
            # scattered rows as they do in a scan
            found = session.execute(select(FileHash.id, FileHash.size, FileHash.mtime_ns,
                                           FileHash.inode)
                                    .order_by(FileHash.device, FileHash.inode)).all()
        if stored != len(rows):
            raise RuntimeError(f"expected {len(rows)} rows after the writes, found {stored}")
        rng = random.Random(2)  # hashes land at random places in the hash indexes
        results: list[tuple[Any, ...]] = []
        for rid, size, mtime, inode in found:
            digest = rng.randbytes(16).hex()
            results.append((rid, size, mtime, inode, digest, digest, ALGO))
        chunks = [results[i:i + batch] for i in range(0, len(results), batch)]

        def append_all() -> None:
            with db.session() as session:
                for n, chunk in enumerate(chunks, 1):
                    pending.append(session, SCAN_ID, chunk)
                    if n % commit_every == 0 or n == len(chunks):
                        session.commit()

        seconds, _ = timed(append_all)
        rates["append"] = len(rows) / seconds
        seconds, merged = timed(lambda: pending.merge(db, SCAN_ID))
        rates["merge"] = len(rows) / seconds
        if merged != len(rows):
            raise RuntimeError(f"merge gave {merged} of {len(rows)} rows their hashes")
        return rates
    finally:
        db.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.upsert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000,
                   help="hash results per pending append (default 1000)")
    p.add_argument("--skip-pg", action="store_true", help="SQLite only")
    p.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    p.add_argument("--commit-every", type=int, default=1, metavar="N",
                   help="pending append: commit after every N batches (default 1: after each)")
    p.add_argument("--values", choices=("realistic", "simple"), default="realistic",
                   help="row values: realistic (random sizes, default) or simple "
                        "(tests/test_db.py's rows(): sizes in step with ids)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the passes on each backend and print rows/s against the targets."""
    args = parse_args(argv)
    rows = make_rows(args.rows, args.values)
    say(f"dupfinder {code_version()}")
    results: dict[str, dict[str, float]] = {}
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="dupfinder-bench-") as folder:
            say(f"SQLite: fresh file in {folder} ...")
            results["sqlite"] = run_backend(sqlite_url(folder, "upsert"), rows, args.batch,
                                            args.commit_every)
    if not args.skip_pg:
        with postgres() as dbs:
            url = dbs.fresh("bench_upsert")
            say(f"PostgreSQL {pg_version(url)}: {dbs.origin}, fresh database ...")
            results["postgresql"] = run_backend(url_string(url), rows, args.batch,
                                                args.commit_every)
    table = []
    for backend, r in results.items():
        target = TARGETS[backend]
        ok = min(r["insert"], r["change"]) >= target
        table.append([backend, f"{r['insert']:,.0f}", f"{r['change']:,.0f}",
                      f"{r['append']:,.0f}", f"{r['merge']:,.0f}", f">= {target:,}",
                      "met" if ok else "MISSED"])
    say()
    every = "batch" if args.commit_every == 1 else f"{args.commit_every} batches"
    say(f"{args.rows:,} rows ({args.values} values); RowWriter insert and change; pending "
        f"append in batches of {args.batch}, commit per {every}; merge (rows/second)")
    say(format_table(["backend", "insert", "change", "append", "merge",
                      "row write target", "verdict"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
