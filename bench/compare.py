"""Time dupfinder against jdupes, rdfind, fdupes, rmlint and the floor.py yardstick on one
tree.

Usage (from the repository root)::

    python -m bench.compare TREE [--runs 3] [--skip-pg]

The whole tree is read once first (untimed), so every tool runs with a warm page cache.
Each run then times, in an order rotated from run to run:

* ``jdupes -r -q TREE``, ``rdfind -dryrun true -outputname TMP/results.txt TREE``,
  ``fdupes -r -q TREE`` and ``rmlint -o FMT:TMP/FILE ... TREE`` (stdout to /dev/null;
  every file a tool writes goes to a fresh temporary folder; nothing is deleted or linked;
  /dev/null is checked to still be a character device after every tool);
* ``floor.py``: ``python ../shared/yardstick/floor.py TREE TMP/floor_*.db`` (the path
  relative to the repository root; run with this Python, the venv's, which has xxhash),
  what plain Python and SQLite do on this machine with none of the catalogue's rules. Its
  database is a new file in a fresh temporary folder, removed with its -wal and -shm after
  every run; its own stage times come from its ``total Xs  walk ...`` line. It is timed
  like the C tools but is not one of them: it is never "the fastest C tool". Where the
  file is missing it is skipped, and its targets are "n/a";
* ``dupfinder scan TREE -q`` cold (fresh empty database) then warm (the same command
  again on the unchanged tree), on SQLite and on PostgreSQL (``$DUPFINDER_BENCH_PG_URL``
  or a throw-away server; ``--skip-pg`` leaves it out).

It prints the median of ``--runs`` per tool, its ratio to the fastest C tool, the stage
times of dupfinder (from ``scan_metadata``) and of floor.py, and the targets of issue 19:
cold scan <= 1.0x the fastest C tool on SQLite and <= 1.2x on PostgreSQL, warm rescan
<= 0.3x the fastest C tool on both, cold scan <= 1.2x floor.py on both; each is printed as
met or MISSED (a missed target does not change the exit status). Once, it checks that
dupfinder and jdupes find the same duplicate files (and, when ``TREE.expected.json`` from
``bench.gen_tree`` is there, the generator's counts); a mismatch is printed loudly and the
exit status is 1. The tree is fingerprinted before and after: a tool that changed it is an
error too.

Page cache: the tree is read again (untimed) before every run, not only the first. Some
machines reclaim page cache that was not touched for a while (the 2-core VM these scripts
were written on runs a DAMON ``pageout`` scheme that pages out anything idle for ~60 s),
and files of a unique size are read by no duplicate finder, only by the warm-up. The page
cache size is printed after each run; figures taken minutes apart, outside one invocation
of this script, are not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from bench.common import (
    REPO_ROOT,
    CommandFailed,
    PgDatabases,
    clean_env,
    code_version,
    drop_pg_database,
    format_table,
    fresh_name,
    human_bytes,
    median,
    missing_tools,
    pg_version,
    postgres,
    run_command,
    say,
    sqlite_url,
    timed,
    tree_folder,
    tree_parser,
    url_string,
)
from dupfinder.db.models import ScanMetadata

C_TOOLS = ("jdupes", "rdfind", "fdupes", "rmlint")
APT_HINT = "apt-get install jdupes rdfind fdupes rmlint"
# the yardstick: ../shared/yardstick/floor.py relative to the repository root
FLOOR = REPO_ROOT.parent / "shared" / "yardstick" / "floor.py"
FLOOR_NAME = "floor.py"
# issue 19: x the fastest C tool (cold per backend, warm on both) and x floor.py (cold)
COLD_TARGET = {"sqlite": 1.0, "postgresql": 1.2}
WARM_TARGET = 0.3
FLOOR_TARGET = 1.2
FLOOR_RE = re.compile(r"^total ([0-9.]+)s\s+(.*)$", re.MULTILINE)
SUMMARY_RE = re.compile(r"^duplicates: (\d+) groups, (\d+) files", re.MULTILINE)


# --------------------------------------------------------------------------- the tree


def warm_cache(tree: Path) -> tuple[int, int]:
    """Read every file of ``tree`` once (untimed warm-up); returns (files, bytes)."""
    buf = bytearray(1 << 20)
    files = total = 0
    for folder, _dirs, names in os.walk(tree):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    total += n
            files += 1
    return files, total


def fingerprint(tree: Path) -> str:
    """A digest of every entry's path, type, size, mtime and inode under ``tree``."""
    h = hashlib.sha256()
    for folder, dirs, names in os.walk(tree):
        dirs.sort()
        for name in sorted(names + dirs):
            st = os.lstat(os.path.join(folder, name))
            h.update(f"{folder}/{name}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0"
                     f"{st.st_ino}\n".encode(errors="surrogateescape"))
    return h.hexdigest()


def check_dev_null(after: str) -> None:
    """Stop at once if /dev/null is no longer the null device."""
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        loud([f"/dev/null IS NO LONGER A CHARACTER DEVICE (after {after}); restore it as "
              "root: mknod -m 666 /dev/null.new c 1 3 && mv -f /dev/null.new /dev/null"])
        raise SystemExit(3)


def cached_bytes() -> int | None:
    """The page cache size from /proc/meminfo (None where there is none)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Cached:"):
                return int(line.split()[1]) * 1024
    return None


# --------------------------------------------------------------------------- commands


def c_tool_command(tool: str, tree: Path, out: Path) -> list[str]:
    """The command line for a C tool; anything it writes goes to ``out``."""
    t = str(tree)
    if tool == "jdupes":
        return ["jdupes", "-r", "-q", t]
    if tool == "rdfind":
        return ["rdfind", "-dryrun", "true", "-outputname", str(out / "results.txt"), t]
    if tool == "fdupes":
        return ["fdupes", "-r", "-q", t]
    if tool == "rmlint":
        # rmlint's default outputs, every one into ``out``. Never name an existing file
        # such as /dev/null here: rmlint 2.9 renames it to NAME.<timestamp> and writes a
        # new regular file in its place (it replaced /dev/null on this machine once)
        return ["rmlint", "-o", f"pretty:{out / 'rmlint.txt'}",
                "-o", f"summary:{out / 'summary.txt'}", "-o", f"sh:{out / 'rmlint.sh'}",
                "-o", f"json:{out / 'rmlint.json'}", t]
    raise ValueError(tool)


def floor_command(tree: Path, db: Path) -> list[str]:
    """The command line of the floor.py yardstick, writing its catalogue to ``db``."""
    return [sys.executable, str(FLOOR), str(tree), str(db)]


def new_floor_db(folder: Path) -> Path:
    """A path for floor.py's database in ``folder`` that names no file yet (floor.py
    deletes whatever its path and the -wal/-shm beside it name)."""
    db = folder / (fresh_name("floor") + ".db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.lexists(f"{db}{suffix}"):
            raise RuntimeError(f"{db}{suffix} exists; floor.py would delete it")
    return db


def remove_floor_db(db: Path) -> None:
    """Delete floor.py's database with its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{db}{suffix}")


def parse_floor(stdout: str) -> dict[str, float]:
    """floor.py's stage seconds from its ``total 1.23s  walk 0.10  insert 0.20 ...`` line
    (the stages after ``total``; its own total is not a stage); empty when it is missing."""
    m = FLOOR_RE.search(stdout)
    if not m:
        return {}
    return {k: float(v) for k, v in re.findall(r"(\S+) ([0-9.]+)", m.group(2))}


def dupfinder_bin() -> list[str]:
    """The ``dupfinder`` console script next to this Python (the venv's), or on PATH."""
    local = Path(sys.executable).with_name("dupfinder")
    if local.exists():
        return [str(local)]
    found = shutil.which("dupfinder")
    if found:
        return [found]
    return [sys.executable, "-m", "dupfinder"]


class Dupfinder:
    """Runs ``dupfinder scan`` isolated from the developer's config and catalogue."""

    def __init__(self, tree: Path, work: Path) -> None:
        self.tree = tree
        self.work = work
        home = work / "home"
        self.env = clean_env(XDG_CONFIG_HOME=str(home / "config"),
                             XDG_DATA_HOME=str(home / "data"), HOME=str(home))

    def scan(self, url: str, quiet: bool = True) -> tuple[float, str]:
        """Time one scan into ``url``; returns (seconds, stdout when not quiet).

        The URL travels in ``$DUPFINDER_DB_URL`` (a password stays out of ``ps``); the
        working folder holds no config.json; ``--no-fallback`` so PostgreSQL never
        silently becomes SQLite."""
        cmd = [*dupfinder_bin(), "scan", str(self.tree), "--no-fallback"]
        if quiet:
            cmd.append("-q")
        return run_command(cmd, cwd=self.work, env={**self.env, "DUPFINDER_DB_URL": url},
                           capture=not quiet)


def last_stages(url: str) -> dict[str, float]:
    """``stage_seconds`` of the latest scan recorded in the catalogue at ``url``."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(ScanMetadata.stage_seconds)
                               .order_by(ScanMetadata.id.desc()).limit(1)).first()
        return dict(row[0]) if row and row[0] else {}
    finally:
        engine.dispose()


def remove_sqlite(url: str) -> None:
    """Delete a SQLite catalogue file with its -wal and -shm files."""
    path = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


# --------------------------------------------------------------------------- the check


def jdupes_groups(tree: Path, hard_links: bool) -> list[list[str]]:
    """jdupes' duplicate groups (``-H``: hard links listed as duplicates too)."""
    cmd = ["jdupes", "-r", "-q", *(["-H"] if hard_links else []), str(tree)]
    _, out = run_command(cmd, capture=True)
    groups, current = [], []
    for line in out.splitlines():
        if line:
            current.append(line)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def multi_inode(groups: list[list[str]]) -> list[list[str]]:
    """The groups holding at least two distinct inodes (dupfinder's definition)."""
    kept = []
    for g in groups:
        inodes = {(st.st_dev, st.st_ino) for st in map(os.stat, g)}
        if len(inodes) > 1:
            kept.append(g)
    return kept


def parse_summary(stdout: str) -> tuple[int, int]:
    """(groups, files) from dupfinder's ``duplicates: N groups, M files`` line."""
    m = SUMMARY_RE.search(stdout)
    if not m:
        raise RuntimeError(f"no 'duplicates:' line in dupfinder's output:\n{stdout}")
    return int(m.group(1)), int(m.group(2))


def loud(lines: Sequence[str]) -> None:
    """Print a mismatch so that nobody can miss it (stdout and stderr)."""
    bar = "!" * 78
    for stream in (sys.stdout, sys.stderr):
        print(bar, *(f"!!! {line}" for line in lines), bar, sep="\n", file=stream, flush=True)


def check_counts(tree: Path, dupfinder_counts: dict[str, tuple[int, int]]) -> bool:
    """Compare dupfinder's (groups, files) per backend with jdupes and the generator's
    expected counts; prints everything, returns whether all agree."""
    plain = jdupes_groups(tree, hard_links=False)
    with_links = multi_inode(jdupes_groups(tree, hard_links=True))
    j_groups, j_files = len(with_links), sum(map(len, with_links))
    say("duplicate-count check (groups of identical content held by >= 2 inodes):")
    rows = [[f"dupfinder ({b})", g, f] for b, (g, f) in dupfinder_counts.items()]
    rows.append(["jdupes -r -q -H (groups with >= 2 inodes)", j_groups, j_files])
    rows.append(["jdupes -r -q (one path per inode)", len(plain), sum(map(len, plain))])
    expected = load_expected(tree)
    if expected:
        rows.append(["gen_tree expected", expected["duplicate_groups"],
                     expected["duplicate_files"]])
        rows.append(["gen_tree expected, one path per inode", expected["duplicate_groups"],
                     expected["duplicate_inodes"]])
    say(format_table(["source", "groups", "files"], rows))
    say("(without -H jdupes usually drops the extra hard links of an inode, but not always:"
        " its own 'one path per inode' count is shown for information, not checked)")
    problems = [f"dupfinder ({b}) reports {g} groups / {f} files but jdupes {j_groups} / "
                f"{j_files}" for b, (g, f) in dupfinder_counts.items()
                if (g, f) != (j_groups, j_files)]
    if expected:
        want = (expected["duplicate_groups"], expected["duplicate_files"])
        if (j_groups, j_files) != want:
            problems.append(f"jdupes -H finds {j_groups} / {j_files}, generator expects {want}")
    if problems:
        loud(["DUPLICATE COUNT MISMATCH", *problems])
    else:
        say("counts agree.")
    return not problems


def load_expected(tree: Path) -> dict[str, Any] | None:
    """The generator's expected counts for ``tree``, if it made it."""
    path = tree.parent / (tree.name + ".expected.json")
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if data.get("root") == str(tree):
            return dict(data)
    return None


# --------------------------------------------------------------------------- main


class Bench:
    """The runs, their timings and dupfinder's stage times."""

    def __init__(self, tree: Path, work: Path, tools: list[str],
                 pg: PgDatabases | None, floor: bool = True) -> None:
        self.tree, self.work, self.tools, self.pg = tree, work, tools, pg
        self.floor = floor
        self.dupfinder = Dupfinder(tree, work)
        self.times: dict[str, list[float]] = {}
        self.stages: dict[str, list[dict[str, float]]] = {}
        self.counts: dict[str, tuple[int, int]] = {}
        self.backends = ["sqlite"] + (["postgresql"] if pg else [])

    def units(self) -> list[str]:
        """The timed steps of one run."""
        return [*self.tools, *([FLOOR_NAME] if self.floor else []),
                *(f"dupfinder:{b}" for b in self.backends)]

    def run(self, index: int, last: bool) -> None:
        """One run of every unit, starting at a rotated position."""
        units = self.units()
        shift = index % len(units)
        for unit in units[shift:] + units[:shift]:
            if unit.startswith("dupfinder:"):
                self.dupfinder_pair(unit.partition(":")[2], last)
            elif unit == FLOOR_NAME:
                self.floor_run(last)
            else:
                self.c_tool(unit)

    def record(self, name: str, seconds: float) -> None:
        """Store and print one timing."""
        self.times.setdefault(name, []).append(seconds)
        say(f"  {name:<28} {seconds:8.2f}s")

    def c_tool(self, tool: str) -> None:
        """Time one C tool, its outputs in a fresh temporary folder."""
        with tempfile.TemporaryDirectory(dir=self.work) as out:
            seconds, _ = run_command(c_tool_command(tool, self.tree, Path(out)), cwd=out)
        check_dev_null(tool)
        self.record(tool, seconds)

    def floor_run(self, last: bool) -> None:
        """Time floor.py into a new database in a fresh temporary folder (removed with its
        -wal and -shm afterwards); its stage times come from its stdout."""
        with tempfile.TemporaryDirectory(dir=self.work) as out:
            db = new_floor_db(Path(out))
            try:
                seconds, stdout = run_command(floor_command(self.tree, db), cwd=out,
                                              capture=True)
            finally:
                remove_floor_db(db)
        check_dev_null(FLOOR_NAME)
        self.record(FLOOR_NAME, seconds)
        stages = parse_floor(stdout)
        if not stages:
            say(f"  (no 'total Xs ...' line in floor.py's output: {stdout.strip()[-300:]!r})")
        self.stages.setdefault(FLOOR_NAME, []).append(stages)
        if last and stdout.strip():
            say(f"    floor.py: {stdout.strip().splitlines()[0]}")

    @contextlib.contextmanager
    def fresh_catalogue(self, backend: str) -> Iterator[str]:
        """A new empty catalogue (created untimed) and its URL; removed afterwards."""
        if backend == "sqlite":
            url = sqlite_url(self.work, "scan")
            try:
                yield url
            finally:
                remove_sqlite(url)
            return
        assert self.pg is not None
        pg_url = self.pg.fresh("bench_scan")
        try:
            yield url_string(pg_url)
        finally:
            drop_pg_database(pg_url)
            self.pg.created.remove(pg_url)

    def dupfinder_pair(self, backend: str, last: bool) -> None:
        """Cold scan into a fresh catalogue, then the warm rescan; on the last run one
        more (untimed, not quiet) rescan gives the duplicate counts."""
        with self.fresh_catalogue(backend) as url:
            for kind in ("cold", "warm"):
                name = f"dupfinder {backend} {kind}"
                seconds, _ = self.dupfinder.scan(url)
                self.record(name, seconds)
                self.stages.setdefault(name, []).append(last_stages(url))
            if last:
                _, out = self.dupfinder.scan(url, quiet=False)
                self.counts[backend] = parse_summary(out)

    def fastest_c(self) -> tuple[str, float] | None:
        """The C tool with the lowest median (floor.py is not a C tool)."""
        meds = [(t, median(self.times[t])) for t in self.tools if t in self.times]
        return min(meds, key=lambda x: x[1]) if meds else None

    def stage_table(self) -> str:
        """dupfinder's and floor.py's stage seconds, median over runs ("-": a stage that
        tool does not have)."""
        keys: list[str] = []
        for runs in self.stages.values():
            for r in runs:
                keys.extend(k for k in r if k not in keys)

        def cell(runs: list[dict[str, float]], k: str) -> str:
            if not any(k in r for r in runs):
                return "-"
            return f"{median([r.get(k, 0.0) for r in runs]):.2f}"

        return format_table(["scan", *keys, "sum"], [
            [name, *(cell(runs, k) for k in keys),
             f"{median([sum(r.values()) for r in runs]):.2f}"]
            for name, runs in self.stages.items()])

    def targets(self) -> list[tuple[str, float, str, float | None]]:
        """Issue 19's targets: (dupfinder run, limit, baseline's name, baseline's median
        seconds or None when it was not run)."""
        fastest = self.fastest_c()
        c_name, c_sec = (f"fastest C tool ({fastest[0]})", fastest[1]) if fastest else \
            ("fastest C tool", None)
        floor = median(self.times[FLOOR_NAME]) if self.times.get(FLOOR_NAME) else None
        out: list[tuple[str, float, str, float | None]] = []
        for backend in self.backends:
            cold, warm = f"dupfinder {backend} cold", f"dupfinder {backend} warm"
            out.append((cold, COLD_TARGET[backend], c_name, c_sec))
            out.append((warm, WARM_TARGET, c_name, c_sec))
            out.append((cold, FLOOR_TARGET, FLOOR_NAME, floor))
        return out

    def report(self) -> bool:
        """Print the tables and targets; returns whether every target was met."""
        fastest = self.fastest_c()
        rows = []
        for name, values in self.times.items():
            med = median(values)
            ratio = f"{med / fastest[1]:.2f}x" if fastest else "-"
            rows.append([name, f"{med:.2f}", ratio, " ".join(f"{v:.2f}" for v in values)])
        say()
        base = f"fastest C tool: {fastest[0]}, {fastest[1]:.2f}s" if fastest else "no C tool"
        say(f"median of {len(next(iter(self.times.values())))} runs; {base}")
        say(format_table(["tool", "median s", "vs fastest C", "runs (s)"], rows))
        say()
        say("stage seconds of dupfinder (from scan_metadata) and floor.py (from its output), "
            "median over runs:")
        say(self.stage_table())
        say()
        say("targets (issue 19):")
        ok = True
        for name, limit, base, base_sec in self.targets():
            if not base_sec:
                say(f"  {name:<28}     -  target <= {limit}x {base}  n/a (not run)")
                continue
            ratio = median(self.times[name]) / base_sec
            met = ratio <= limit
            ok &= met
            say(f"  {name:<28} {ratio:5.2f}x  target <= {limit}x {base} "
                f"({limit * base_sec:.2f}s)  {'met' if met else 'MISSED'}")
        return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = tree_parser("compare", __doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--skip-pg", action="store_true", help="leave PostgreSQL out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Warm up, check, time, report."""
    args = parse_args(argv)
    tree = tree_folder(args.tree)
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    absent = missing_tools(C_TOOLS)
    tools = [t for t in C_TOOLS if t not in absent]
    for tool in absent:
        say(f"{tool} is not installed: skipped ({APT_HINT})")
    has_floor = FLOOR.is_file()
    if not has_floor:
        say(f"{FLOOR} is missing: floor.py skipped (its targets are n/a)")
    check_dev_null("nothing yet")
    say(f"dupfinder {code_version()}, {os.cpu_count()} CPUs, tree {tree}")
    say(f"warming the page cache: reading {tree} ...")
    files, nbytes = warm_cache(tree)
    cache = cached_bytes()
    say(f"read {files} files, {human_bytes(nbytes)}; page cache now "
        f"{human_bytes(cache) if cache is not None else '?'}"
        + ("  (SMALLER THAN THE TREE: runs will hit the disk)"
           if cache is not None and cache < nbytes else ""))
    before = fingerprint(tree)
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="dupfinder-bench-")))
        work = work.resolve()
        work.mkdir(parents=True, exist_ok=True)
        pg = None if args.skip_pg else stack.enter_context(postgres())
        if pg:
            say(f"PostgreSQL {pg_version(pg.base)}: {pg.origin}")
        bench = Bench(tree, work, tools, pg, floor=has_floor)
        try:
            for i in range(args.runs):
                if i:  # see "page cache" in the module docstring
                    seconds, _ = timed(lambda: warm_cache(tree))
                    say(f"(re-read the tree untimed in {seconds:.1f}s)")
                say(f"run {i + 1}/{args.runs}:")
                bench.run(i, last=i == args.runs - 1)
                cache = cached_bytes()
                if cache is not None:
                    say(f"  (page cache {human_bytes(cache)}"
                        + (", smaller than the tree: some reads hit the disk)"
                           if cache < nbytes else ")"))
        except CommandFailed as exc:
            loud([f"a benchmarked command failed: {exc}"])
            return 2
        targets_met = bench.report()
        say()
        agree = True
        if "jdupes" in tools:
            agree = check_counts(tree, bench.counts)
        else:
            say(f"jdupes missing: duplicate-count check skipped ({APT_HINT})")
    if fingerprint(tree) != before:
        loud(["THE TREE CHANGED DURING THE BENCHMARK (a tool modified it)"])
        return 1
    say("tree unchanged by every tool.")
    if not targets_met:
        say("some targets were missed (see above).")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
