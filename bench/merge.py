"""What ``dupfinder merge`` costs: a scanned catalogue merged into empty and full ones.

Usage (from the repository root)::

    python -m bench.merge TREE [--work DIR] [--json FILE]

TREE is scanned once, untimed, into a fresh SQLite catalogue as host ``laptop`` (the
fallback of the story). Then, each a whole CLI command measured like ``bench.scale``'s
(seconds, peak PSS and RSS of the process tree, sampled every 50 ms):

1. ``merge`` of that file into a fresh, empty PostgreSQL catalogue (bring the fallback home);
2. the same command again (nothing changes: every row compared, none written);
3. ``merge`` of the PostgreSQL catalogue into a new SQLite file (take it offline);
4. ``merge`` of the SQLite file into a fresh SQLite catalogue.

The catalogues are removed at the end. The target is PSS ≤ 300 MB for every merge.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    code_version,
    format_table,
    postgres,
    say,
    sqlite_url,
    url_string,
)
from bench.scale import Result, Runner, measure, mib, remove_sqlite

PSS_LIMIT = 300_000_000
DUPFINDER = [sys.executable, "-m", "dupfinder"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.merge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tree", type=Path)
    p.add_argument("--work", type=Path, default=None, help="parent of the work folder")
    p.add_argument("--json", type=Path, default=None, help="also write the figures (new file)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json is not None and args.json.exists():
        say(f"bench.merge: {args.json} exists; give a new file")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-merge-", dir=args.work) as tmp, \
            postgres() as pg:
        work = Path(tmp)
        runner = Runner(args.tree, work, pg)
        env = {**runner.env, "PYTHONPATH": str(REPO_ROOT)}
        say(f"dupfinder {code_version()}, tree {args.tree}")
        laptop = sqlite_url(work, "laptop")
        offline = sqlite_url(work, "offline")
        copy = sqlite_url(work, "copy")
        home = url_string(pg.fresh("bench_merge"))
        results: list[Result] = []
        try:
            runner.warm()
            scan = measure("scan (untimed setup)", "sqlite",
                           [*DUPFINDER, "scan", str(args.tree), "-q", "--host-label", "laptop"],
                           out=runner.fresh_dir("scan"), env={**env, "DUPFINDER_DB_URL": laptop})
            say(f"source: {args.tree} scanned into SQLite in {scan.seconds:.1f}s")
            for name, backend, source, target in (
                    ("merge into empty", "sqlite -> postgresql", laptop, home),
                    ("merge again (no change)", "sqlite -> postgresql", laptop, home),
                    ("merge into new file", "postgresql -> sqlite", home, offline),
                    ("merge into new file", "sqlite -> sqlite", laptop, copy)):
                r = measure(name, backend, [*DUPFINDER, "merge", source, "-q"],
                            out=runner.fresh_dir("merge"),
                            env={**env, "DUPFINDER_DB_URL": target})
                say(f"  {backend:22} {name:24} {r.seconds:7.2f}s  PSS {mib(r.peak_pss)}  "
                    f"RSS {mib(r.peak_rss)}")
                results.append(r)
        finally:
            for url in (laptop, offline, copy):
                remove_sqlite(url)
    say()
    say(format_table(["backends", "command", "seconds", "peak PSS", "peak RSS"],
                     [[r.backend, r.name, f"{r.seconds:.2f}", mib(r.peak_pss), mib(r.peak_rss)]
                      for r in results]))
    worst = max(r.peak_pss for r in results)
    say(f"target PSS <= 300 MB for every merge: {mib(worst)} "
        f"{'met' if worst <= PSS_LIMIT else 'MISSED'}")
    if args.json is not None:
        args.json.write_text(json.dumps([vars(r) for r in results], indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
