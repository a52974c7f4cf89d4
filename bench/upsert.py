"""Bulk-upsert throughput of the catalogue: ``catalogue.upsert_files`` on SQLite and PostgreSQL.

Usage (from the repository root)::

    python -m bench.upsert [--rows 100000] [--batch 1000] [--commit-every 1]
                           [--values realistic|simple] [--skip-pg] [--skip-sqlite]

Each backend gets a fresh database. Pass 1 upserts ``--rows`` new file records in batches
of ``--batch`` through one session, committing after every batch (all inserts); pass 2
sends the same rows again (all conflict updates, hashes kept). A third pass writes hash
results for every row with ``catalogue.save_hashes`` (the scanner's other bulk write), in
the scanner's order (device, inode), i.e. scattered over the table. Rows per second are
printed for each pass; the targets are 50k rows/s on SQLite and 25k rows/s on PostgreSQL
for the upserts. ``--commit-every N`` commits after every N batches instead, to show what
the commits cost.

PostgreSQL is ``$DUPFINDER_BENCH_PG_URL`` if set, else a throw-away local server.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from collections.abc import Callable
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
from dupfinder.db import catalogue
from dupfinder.db.engine import Database, open_database
from dupfinder.db.models import FileHash, utcnow

TARGETS = {"sqlite": 50_000, "postgresql": 25_000}
WORDS = ("src", "docs", "Photos 2021", "backup", "music", "build", "data", "archive")


def make_rows(n: int, values: str = "realistic", host: str = "bench",
              seed: int = 1) -> list[dict[str, Any]]:
    """``n`` file records shaped like ``rows()`` in tests/test_db.py.

    ``simple`` values follow the test helper (sizes 100 + i % 5000 in step with the ids,
    short paths): index updates then stay clustered and look cheaper than they are.
    ``realistic`` values (default) have log-uniform random sizes from 512 B to 360 KiB
    (like bench.gen_tree's tree, where most sizes are distinct), nested paths of ~60
    characters and scattered inode numbers."""
    now = utcnow()
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
        rows.append({"host": host, "path": path, "name": path.rpartition("/")[2],
                     "size": size, "mtime_ns": 1_700_000_000_000_000_000 + i, "device": 1,
                     "inode": inode, "nlink": 1, "scan_id": 1, "first_seen": now,
                     "last_seen": now})
    return rows


def batches(rows: list[Any], size: int) -> list[list[Any]]:
    """``rows`` cut into lists of ``size`` (built before the clock starts)."""
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def timed_batches(db: Database, chunks: list[list[dict[str, Any]]],
                  write: Callable[[Any, list[dict[str, Any]]], None],
                  commit_every: int = 1) -> float:
    """Seconds to ``write`` every chunk through one session, committing after every
    ``commit_every`` chunks (and after the last)."""
    def work() -> None:
        with db.session() as session:
            for n, chunk in enumerate(chunks, 1):
                write(session, chunk)
                if n % commit_every == 0 or n == len(chunks):
                    session.commit()

    seconds, _ = timed(work)
    return seconds


def run_backend(url: str, rows: list[dict[str, Any]], batch: int,
                commit_every: int = 1) -> dict[str, float]:
    """Open ``url`` (schema created outside the timing) and time the three passes;
    returns rows per second for ``insert``, ``update`` and ``hashes``."""
    with tempfile.TemporaryDirectory(prefix="dupfinder-bench-") as cwd:
        # cwd: never read a ./config.json; db_url overrides any other configuration
        db = open_database(load_settings(db_url=url, cwd=Path(cwd)), no_fallback=True)
    try:
        chunks = batches(rows, batch)
        rates = {}
        for name in ("insert", "update"):
            seconds = timed_batches(db, chunks, catalogue.upsert_files, commit_every)
            rates[name] = len(rows) / seconds
        with db.session() as session:
            stored = session.execute(select(func.count()).select_from(FileHash)).scalar()
            # the order the scanner hashes in (device, inode), so that the updates land
            # on scattered rows as they do in a scan
            ids = list(session.execute(select(FileHash.id)
                                       .order_by(FileHash.device, FileHash.inode)).scalars())
        if stored != len(rows):
            raise RuntimeError(f"expected {len(rows)} rows after the upserts, found {stored}")
        rng = random.Random(2)  # hashes land at random places in the two hash indexes
        updates = [{"id": i, "prefix_hash": rng.randbytes(16).hex(),
                    "full_hash": rng.randbytes(16).hex(), "hash_algo": "xxh3-128"}
                   for i in ids]
        seconds = timed_batches(db, batches(updates, batch), catalogue.save_hashes,
                                commit_every)
        rates["hashes"] = len(rows) / seconds
        return rates
    finally:
        db.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.upsert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--skip-pg", action="store_true", help="SQLite only")
    p.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    p.add_argument("--commit-every", type=int, default=1, metavar="N",
                   help="commit after every N batches (default 1: after each batch)")
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
        ok = min(r["insert"], r["update"]) >= target
        table.append([backend, f"{r['insert']:,.0f}", f"{r['update']:,.0f}",
                      f"{r['hashes']:,.0f}", f">= {target:,}", "met" if ok else "MISSED"])
    say()
    every = "batch" if args.commit_every == 1 else f"{args.commit_every} batches"
    say(f"{args.rows:,} rows ({args.values} values), batches of {args.batch}, commit per "
        f"{every} (rows/second)")
    say(format_table(["backend", "insert", "conflict update", "save_hashes",
                      "upsert target", "verdict"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
