"""Time and size dupfinder's commands on one (large) tree, against ``jdupes -r -q``.

Usage (from the repository root)::

    python -m bench.scale TREE [--backend sqlite|postgresql|both] [--skip-c] [--work DIR]
                               [--json FILE]

In one run, on one tree (e.g. ``python -m bench.gen_tree TREE --scale million``):

* ``jdupes -r -q TREE`` (``--skip-c`` leaves it out; the ratios are then "-");
* per backend, into a fresh empty catalogue: ``dupfinder scan TREE -q --no-fallback`` cold,
  the same command again (warm), ``dupfinder dupes --format json``, ``dupfinder stats`` and
  ``dupfinder report -o TMP/report.html``.

Every command runs once. Its stdout goes to a new file in a fresh folder under the temporary
work folder (no tool is ever given an existing file to write to). For each: wall seconds
and the peaks, over samples every 50 ms, of the summed VmRSS and the summed PSS of the
process and all its descendants (found through the ppid field of /proc/*/stat; the target is
judged on PSS, which counts a page shared by the forked workers once); on SQLite also the
largest size of the catalogue's ``-wal`` file seen at those samples, and the catalogue's
size afterwards.
The scans' own stage times come from the catalogue (``scan_metadata.stage_seconds``).

The tree is read once (untimed) before jdupes and before each backend's cold scan, because
some machines page out idle page cache after about a minute (see ``bench.compare``).
The catalogue URL travels in ``$DUPFINDER_DB_URL``; PostgreSQL is ``$DUPFINDER_BENCH_PG_URL``
or a throw-away server. The work folder and every database are removed at the end.

Targets: cold scan <= 2x jdupes, warm scan <= 0.4x jdupes, WAL <= 256 MiB, peak PSS of
the process tree <= 300 MB (300,000,000 bytes) for scan cold/warm, dupes json, stats and
report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PgDatabases,
    clean_env,
    code_version,
    drop_pg_database,
    format_table,
    human_bytes,
    missing_tools,
    pg_version,
    postgres,
    say,
    sqlite_url,
    tree_folder,
    tree_parser,
    url_string,
)
from bench.compare import dupfinder_bin, last_stages, load_expected, remove_sqlite, warm_cache

MIB = 1 << 20
SAMPLE_SECONDS = 0.05
COLD_LIMIT, WARM_LIMIT = 2.0, 0.4  # x jdupes
WAL_LIMIT = 256 * MIB
RSS_LIMIT = 300 * 10**6  # 300 MB
RSS_COMMANDS = ("scan cold", "scan warm", "dupes json", "stats", "report")


class CommandFailed(RuntimeError):
    """A measured command ended with a non-zero status."""


# --------------------------------------------------------------------------- sampling


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from the ppid field of /proc/*/stat."""
    kids: dict[int, list[int]] = defaultdict(list)
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    data = f.read()
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                kids[int(data.rpartition(b")")[2].split()[1])].append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
    return kids


def _status_kib(path: str, key: bytes) -> int:
    """The ``key:`` line of a /proc file, in bytes (0 for a process that ended)."""
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int]:
    """(summed VmRSS, summed PSS) of ``root`` and all its descendants. RSS counts a page
    shared by several processes (the forked workers share the scan's) once for each of
    them; PSS divides it among them, so its sum is what the tree really holds."""
    kids = children_by_parent()
    rss = pss = 0
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            rss += _status_kib(f"/proc/{pid}/status", b"VmRSS:")
            pss += _status_kib(f"/proc/{pid}/smaps_rollup", b"Pss:")
            todo.extend(kids.get(pid, ()))
    return rss, pss


def file_size(path: Path | None) -> int:
    """The size of ``path`` (0 when it is missing or None)."""
    if path is None:
        return 0
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class Result:
    """One measured command."""

    name: str
    backend: str  # "" for jdupes
    seconds: float
    peak_rss: int  # bytes, summed over the process tree
    samples: int
    peak_pss: int = 0  # bytes, summed over the process tree
    max_wal: int | None = None  # bytes, SQLite only
    db_bytes: int | None = None  # catalogue file after the command, SQLite only
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The row name, e.g. ``sqlite scan cold``."""
        return f"{self.backend} {self.name}" if self.backend else self.name


def measure(name: str, backend: str, cmd: Sequence[str], *, out: Path, env: dict[str, str],
            wal: Path | None = None) -> Result:
    """Run ``cmd`` once in ``out`` (a fresh folder: its stdout goes to ``out/stdout``),
    sampling the process tree's RSS and ``wal``'s size every 50 ms."""
    peak, peak_pss, wal_peak, samples = 0, 0, 0, 0
    stop = threading.Event()
    started = threading.Event()
    proc: subprocess.Popen[bytes] | None = None

    def sampler() -> None:
        nonlocal peak, peak_pss, wal_peak, samples
        started.wait()
        while proc is not None:
            rss, pss = tree_memory(proc.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            wal_peak = max(wal_peak, file_size(wal))
            samples += 1
            if stop.wait(SAMPLE_SECONDS):
                return

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    with open(out / "stdout", "xb") as stdout, open(out / "stderr", "xb") as stderr:
        try:
            start = time.perf_counter()
            proc = subprocess.Popen(list(cmd), cwd=out, env=env, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr)
            started.set()
            code = proc.wait()
            seconds = time.perf_counter() - start
        finally:
            stop.set()
            started.set()
            thread.join()
    wal_peak = max(wal_peak, file_size(wal))
    if code != 0:
        err = (out / "stderr").read_text(errors="replace").strip()[-2000:]
        raise CommandFailed(f"{name} ({backend or cmd[0]}) exited with {code}: {err}")
    say(f"  {f'{backend} {name}'.strip():<24} {seconds:8.2f}s  "
        f"peak RSS {peak / MIB:7.1f} MiB  PSS {peak_pss / MIB:7.1f} MiB"
        + (f"  WAL max {wal_peak / MIB:.1f} MiB" if wal is not None else ""))
    return Result(name, backend, seconds, peak, samples, peak_pss=peak_pss,
                  max_wal=wal_peak if wal is not None else None)


# --------------------------------------------------------------------------- the runs


class Runner:
    """Runs the commands with outputs in fresh folders under ``work``."""

    def __init__(self, tree: Path, work: Path, pg: PgDatabases | None) -> None:
        self.tree, self.work, self.pg = tree, work, pg
        home = work / "home"
        self.env = clean_env(XDG_CONFIG_HOME=str(home / "config"),
                             XDG_DATA_HOME=str(home / "data"), HOME=str(home))

    def fresh_dir(self, name: str) -> Path:
        """A new empty folder for one command's outputs."""
        return Path(tempfile.mkdtemp(prefix=f"{name.replace(' ', '-')}-", dir=self.work))

    def warm(self) -> None:
        """Read the whole tree once, untimed."""
        start = time.perf_counter()
        files, nbytes = warm_cache(self.tree)
        say(f"(read {files} files, {human_bytes(nbytes)} untimed in "
            f"{time.perf_counter() - start:.1f}s to warm the page cache)")

    def jdupes(self) -> Result:
        """``jdupes -r -q TREE``, stdout to a file."""
        self.warm()
        return measure("jdupes -r -q", "", ["jdupes", "-r", "-q", str(self.tree)],
                       out=self.fresh_dir("jdupes"), env=clean_env())

    @contextlib.contextmanager
    def catalogue(self, backend: str) -> Iterator[tuple[str, Path | None]]:
        """A fresh empty catalogue: (URL, its -wal file on SQLite); removed afterwards."""
        if backend == "sqlite":
            url = sqlite_url(self.work, "scale")
            try:
                yield url, Path(url.removeprefix("sqlite:///") + "-wal")
            finally:
                remove_sqlite(url)
            return
        assert self.pg is not None
        pg_url = self.pg.fresh("bench_scale")
        try:
            yield url_string(pg_url), None
        finally:
            drop_pg_database(pg_url)
            self.pg.created.remove(pg_url)

    def dupfinder(self, backend: str) -> list[Result]:
        """Cold and warm scan, dupes json, stats and report into one fresh catalogue."""
        exe = dupfinder_bin()
        scan = [*exe, "scan", str(self.tree), "-q", "--no-fallback"]
        results = []
        with self.catalogue(backend) as (url, wal):
            env = {**self.env, "DUPFINDER_DB_URL": url}
            db = wal.with_name(wal.name.removesuffix("-wal")) if wal else None
            self.warm()
            for name in RSS_COMMANDS:
                out = self.fresh_dir(f"{backend}-{name}")
                cmd = {"scan cold": scan, "scan warm": scan,
                       "dupes json": [*exe, "dupes", "--format", "json", "--no-fallback"],
                       "stats": [*exe, "stats", "--no-fallback"],
                       "report": [*exe, "report", "-o", str(out / "report.html"),
                                  "--no-fallback"]}[name]
                r = measure(name, backend, cmd, out=out, env=env, wal=wal)
                if name.startswith("scan"):
                    r.stages = last_stages(url)
                if db is not None:
                    r.db_bytes = file_size(db)
                results.append(r)
        return results


# --------------------------------------------------------------------------- report


def mib(n: int | None) -> str:
    """Bytes as MiB with one decimal, or "-"."""
    return "-" if n is None else f"{n / MIB:.1f}"


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Every target with its value, limit and whether it was met (None: not measurable)."""
    by = {r.label: r for r in results}
    base = by.get("jdupes -r -q")
    out: list[dict[str, Any]] = []
    for backend in dict.fromkeys(r.backend for r in results if r.backend):
        for kind, limit in (("cold", COLD_LIMIT), ("warm", WARM_LIMIT)):
            r = by[f"{backend} scan {kind}"]
            ratio = r.seconds / base.seconds if base else None
            out.append({"target": f"{r.label} <= {limit}x jdupes", "value": ratio,
                        "text": f"{ratio:.2f}x" if ratio is not None else "no jdupes run",
                        "met": None if ratio is None else ratio <= limit})
        wals = [r.max_wal for r in results if r.backend == backend and r.max_wal is not None]
        if wals:
            out.append({"target": f"{backend} WAL <= {WAL_LIMIT // MIB} MiB",
                        "value": max(wals), "text": f"{max(wals) / MIB:.1f} MiB",
                        "met": max(wals) <= WAL_LIMIT})
        for name in RSS_COMMANDS:
            r = by[f"{backend} {name}"]
            out.append({"target": f"{r.label} peak PSS <= 300 MB", "value": r.peak_pss,
                        "text": f"{r.peak_pss / 1e6:.0f} MB ({r.peak_pss / MIB:.1f} MiB)",
                        "met": r.peak_pss <= RSS_LIMIT})
    return out


def report(results: list[Result]) -> list[dict[str, Any]]:
    """Print the tables and the targets; returns the targets."""
    base = next((r for r in results if not r.backend), None)
    say()
    say(format_table(
        ["command", "seconds", "vs jdupes", "peak RSS MiB", "peak PSS MiB", "max WAL MiB",
         "db MiB"],
        [[r.label, f"{r.seconds:.2f}", f"{r.seconds / base.seconds:.2f}x" if base else "-",
          mib(r.peak_rss), mib(r.peak_pss), mib(r.max_wal), mib(r.db_bytes)]
         for r in results]))
    scans = [r for r in results if r.stages]
    if scans:
        keys = list(dict.fromkeys(k for r in scans for k in r.stages))
        say()
        say("dupfinder stage seconds (from the catalogue):")
        say(format_table(["scan", *keys, "sum"], [
            [r.label, *(f"{r.stages.get(k, 0.0):.2f}" for k in keys),
             f"{sum(r.stages.values()):.2f}"] for r in scans]))
    goals = targets(results)
    say()
    say("targets" + (f" (jdupes {base.seconds:.2f}s):" if base else ":"))
    width = max(len(t["target"]) for t in goals)
    for t in goals:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        say(f"  {t['target']:<{width}}  {t['text']:>22}  {verdict}")
    return goals


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = tree_parser("scale", __doc__)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--skip-c", action="store_true", help="do not run jdupes")
    p.add_argument("--json", type=Path, help="also write the results to this new file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, report, optionally write JSON."""
    args = parse_args(argv)
    tree = tree_folder(args.tree)
    if args.json is not None and (args.json.exists() or args.json.is_symlink()):
        raise SystemExit(f"{args.json} exists; give a new path for --json")
    if not args.skip_c and missing_tools(["jdupes"]):
        raise SystemExit("jdupes is not installed (apt-get install jdupes), or use --skip-c")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    version = code_version()
    say(f"dupfinder {version}, {os.cpu_count()} CPUs, tree {tree}")
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        if args.work is not None:
            args.work.mkdir(parents=True, exist_ok=True)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="dupfinder-scale-", dir=args.work))).resolve()
        pg = stack.enter_context(postgres()) if "postgresql" in backends else None
        if pg is not None:
            say(f"PostgreSQL {pg_version(pg.base)}: {pg.origin}")
        runner = Runner(tree, work, pg)
        try:
            if not args.skip_c:
                results.append(runner.jdupes())
            for backend in backends:
                say(f"{backend}:")
                results.extend(runner.dupfinder(backend))
        except CommandFailed as exc:
            say(f"!!! a measured command failed: {exc}")
            return 2
    goals = report(results)
    if args.json is not None:
        data = {"code": version, "tree": str(tree), "cpus": os.cpu_count(),
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "expected": load_expected(tree),
                "sample_seconds": SAMPLE_SECONDS,
                "results": [{"label": r.label, **asdict(r)} for r in results],
                "targets": goals}
        with open(args.json, "x") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        say(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
