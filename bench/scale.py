"""Time and size dupfinder's commands on one (large) tree, against ``jdupes -r -q`` and the
floor.py yardstick.

Usage (from the repository root)::

    python -m bench.scale TREE [--backend sqlite|postgresql|both] [--skip-c] [--skip-floor]
                               [--work DIR] [--json FILE]

In one run, on one tree (e.g. ``python -m bench.gen_tree TREE --scale million``):

* ``jdupes -r -q TREE`` (``--skip-c`` leaves it out; the ratios are then "-");
* ``floor.py`` once, after jdupes, with the page cache warmed again:
  ``python ../shared/yardstick/floor.py TREE TMP/floor.db`` (the path relative to the
  repository root; a new database file in a fresh folder, removed with its -wal and -shm
  afterwards; its stage times parsed from its ``total Xs  walk ...`` line). ``--skip-floor``
  leaves it out; so does a missing file (its target is then "n/a");
* per backend, into a fresh empty catalogue: ``dupfinder scan TREE -q --no-fallback`` cold,
  the same command again (warm), then the questions of issue 20, each run 3 times (the
  median seconds and the peak over the 3 runs are reported): ``dupfinder stats``,
  ``dupfinder unique FILE``, ``dupfinder unique FOLDER``, ``dupfinder dupes FOLDER2``,
  ``dupfinder dupes --format json`` (also the seconds until the first group's bytes, the
  first ``"files":``, reach its stdout pipe, read incrementally and copied to a file),
  ``dupfinder folders`` and ``dupfinder report -o TMP/report.html``.

FOLDER is the folder of the tree whose recursive count of regular files is closest to
1,000, FOLDER2 the one closest to 100 (ties: the first path in sorted order; the tree
root counts too), FILE the first regular file, in sorted path order, directly in FOLDER2
(else in the tree). They are chosen by an untimed walk before anything runs.

Every command's stdout goes to a new file in a fresh folder under the temporary work
folder (no tool is ever given an existing file to write to). For each: wall seconds and the
peaks, over samples every 50 ms, of the summed VmRSS and the summed PSS of the process and
all its descendants (found through the ppid field of /proc/*/stat; the target is judged on
PSS, which counts a page shared by the forked workers once); on SQLite also the largest
size of the catalogue's ``-wal`` file seen at those samples, and the catalogue's size
afterwards. The scans' own stage times come from the catalogue
(``scan_metadata.stage_seconds``).

The tree is read once (untimed) before jdupes, before floor.py and before each backend's
cold scan, because some machines page out idle page cache after about a minute (see
``bench.compare``). The catalogue URL travels in ``$DUPFINDER_DB_URL``; PostgreSQL is
``$DUPFINDER_BENCH_PG_URL`` or a throw-away server. The work folder and every database are
removed at the end.

Targets, per backend, each printed as met or MISSED (n/a when its baseline was not run):
issue 19 for a million files: cold scan <= 1.5x jdupes, warm scan <= 0.3x jdupes, cold
scan <= 1.2x floor.py, WAL <= 256 MiB, peak PSS of the process tree <= 300 MB
(300,000,000 bytes) for every dupfinder command; issue 20: stats <= 1 s, unique FILE
<= 0.7 s, unique FOLDER <= 1 s, dupes FOLDER2 <= 0.7 s, dupes json <= 8 s and its first
group <= 0.5 s, folders <= 5 s, report <= 15 s (medians of 3 runs). ``--json FILE``
writes every figure, the runs, the chosen FILE/FOLDER/FOLDER2 and the targets to a new
file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
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
from bench.compare import (
    FLOOR,
    FLOOR_NAME,
    dupfinder_bin,
    floor_command,
    last_stages,
    load_expected,
    new_floor_db,
    parse_floor,
    remove_floor_db,
    remove_sqlite,
    warm_cache,
)

MIB = 1 << 20
SAMPLE_SECONDS = 0.05
# issue 19, for a million files
COLD_LIMIT, WARM_LIMIT = 1.5, 0.3  # x jdupes
FLOOR_LIMIT = 1.2  # cold scan, x floor.py
WAL_LIMIT = 256 * MIB
RSS_LIMIT = 300 * 10**6  # 300 MB, every dupfinder command
SCANS = ("scan cold", "scan warm")
# issue 20: the questions after the warm scan, median seconds of QUESTION_RUNS runs
QUESTION_RUNS = 3
QUESTIONS = (("stats", 1.0), ("unique file", 0.7), ("unique folder", 1.0),
             ("dupes folder", 0.7), ("dupes json", 8.0), ("folders", 5.0), ("report", 15.0))
FIRST_GROUP = b'"files":'  # the first group's bytes in ``dupes --format json``
FIRST_GROUP_LIMIT = 0.5  # seconds
FOLDER_FILES, FOLDER2_FILES = 1000, 100  # unique FOLDER, dupes FOLDER2


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
    runs: list[float] = field(default_factory=list)  # seconds of each run (the median above)
    first_group: float | None = None  # dupes json: seconds to the first group on stdout
    first_group_runs: list[float] = field(default_factory=list)
    timed_out: bool = False  # killed after measure's timeout (seconds: until then)
    stdout_bytes: int = 0

    @property
    def label(self) -> str:
        """The row name, e.g. ``sqlite scan cold``."""
        return f"{self.backend} {self.name}" if self.backend else self.name


def measure(name: str, backend: str, cmd: Sequence[str], *, out: Path, env: dict[str, str],
            wal: Path | None = None, watch: bytes | None = None,
            timeout: float | None = None) -> Result:
    """Run ``cmd`` once in ``out`` (a fresh folder: its stdout goes to ``out/stdout``),
    sampling the process tree's RSS and ``wal``'s size every 50 ms. With ``watch`` the
    child's stdout is a pipe read here as it comes (and copied to ``out/stdout``), and
    ``first_group`` is the seconds until ``watch`` first appeared in it. With ``timeout``
    the command (its own session) is killed after that many seconds: ``timed_out``."""
    peak, peak_pss, wal_peak, samples = 0, 0, 0, 0
    stop = threading.Event()
    started = threading.Event()
    proc: subprocess.Popen[bytes] | None = None
    first: float | None = None
    killed = threading.Event()

    def kill() -> None:
        if proc is not None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's session only

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
                                    stdout=subprocess.PIPE if watch else stdout,
                                    stderr=stderr, start_new_session=timeout is not None)
            started.set()
            timer = threading.Timer(timeout, kill) if timeout is not None else None
            if timer is not None:
                timer.start()
            if watch:
                assert proc.stdout is not None
                fd, tail = proc.stdout.fileno(), b""
                while chunk := os.read(fd, 1 << 16):
                    if first is None:
                        if watch in tail + chunk:
                            first = time.perf_counter() - start
                        tail = (tail + chunk)[-(len(watch) - 1):]
                    stdout.write(chunk)
                proc.stdout.close()
            code = proc.wait()
            seconds = time.perf_counter() - start
            if timer is not None:
                timer.cancel()
        finally:
            stop.set()
            started.set()
            thread.join()
    wal_peak = max(wal_peak, file_size(wal))
    if killed.is_set():
        say(f"  {f'{backend} {name}'.strip():<24} timed out after {seconds:.0f}s")
        return Result(name, backend, seconds, peak, samples, peak_pss=peak_pss,
                      runs=[seconds], timed_out=True, stdout_bytes=file_size(out / "stdout"))
    if code != 0:
        err = (out / "stderr").read_text(errors="replace").strip()[-2000:]
        raise CommandFailed(f"{name} ({backend or cmd[0]}) exited with {code}: {err}")
    say(f"  {f'{backend} {name}'.strip():<24} {seconds:8.2f}s  "
        f"peak RSS {peak / MIB:7.1f} MiB  PSS {peak_pss / MIB:7.1f} MiB"
        + (f"  WAL max {wal_peak / MIB:.1f} MiB" if wal is not None else "")
        + (f"  first group {first:.2f}s" if first is not None else
           ("  (no group)" if watch else "")))
    return Result(name, backend, seconds, peak, samples, peak_pss=peak_pss,
                  max_wal=wal_peak if wal is not None else None, runs=[seconds],
                  first_group=first, first_group_runs=[] if first is None else [first],
                  stdout_bytes=file_size(out / "stdout"))


def combine(runs: list[Result]) -> Result:
    """Several runs of one command as one result: the median seconds (and first-group
    seconds), the peaks over all runs, the catalogue's size after the last."""
    last = runs[-1]
    firsts = [r.first_group for r in runs if r.first_group is not None]
    wals = [r.max_wal for r in runs if r.max_wal is not None]
    return Result(last.name, last.backend, statistics.median(r.seconds for r in runs),
                  max(r.peak_rss for r in runs), sum(r.samples for r in runs),
                  peak_pss=max(r.peak_pss for r in runs),
                  max_wal=max(wals) if wals else None, db_bytes=last.db_bytes,
                  runs=[r.seconds for r in runs],
                  first_group=statistics.median(firsts) if firsts else None,
                  first_group_runs=firsts, timed_out=any(r.timed_out for r in runs),
                  stdout_bytes=last.stdout_bytes)


# --------------------------------------------------------------------------- the paths


@dataclass
class Picks:
    """What the questions ask about: FILE, FOLDER (~1,000 files), FOLDER2 (~100)."""

    file: str
    folder: str
    folder_files: int
    folder2: str
    folder2_files: int


def pick_paths(tree: Path) -> Picks:
    """Choose FILE, FOLDER and FOLDER2 from the tree, deterministically: the folders whose
    recursive count of regular files is closest to 1,000 and to 100 (ties: the first path
    in sorted order), the first regular file directly in FOLDER2 (else the first of the
    tree, in sorted path order)."""
    direct: dict[str, int] = {}
    first_file: dict[str, str] = {}
    for folder, dirs, _names in os.walk(tree):
        dirs.sort()
        n, first = 0, None
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for e in entries:
                if e.is_file(follow_symlinks=False):
                    n += 1
                    first = e.name if first is None or e.name < first else first
        direct[folder] = n
        if first is not None:
            first_file[folder] = os.path.join(folder, first)
    if not first_file:
        raise SystemExit(f"no regular file under {tree}")
    total: dict[str, int] = dict.fromkeys(direct, 0)
    root = str(tree)
    for folder, n in direct.items():
        while True:
            total[folder] = total.get(folder, 0) + n
            if folder == root:
                break
            folder = os.path.dirname(folder)

    def closest(want: int) -> str:
        return min(sorted(total), key=lambda f: abs(total[f] - want))

    folder, folder2 = closest(FOLDER_FILES), closest(FOLDER2_FILES)
    file = first_file.get(folder2) or first_file[min(first_file)]
    return Picks(file, folder, total[folder], folder2, total[folder2])


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

    def floor(self) -> Result:
        """floor.py into a new database in a fresh folder (removed with its -wal and -shm
        afterwards), the page cache warmed first; its stage times from its stdout."""
        self.warm()
        out = self.fresh_dir("floor")
        db = new_floor_db(out)
        try:
            r = measure(FLOOR_NAME, "", floor_command(self.tree, db), out=out, env=clean_env())
        finally:
            remove_floor_db(db)
        r.stages = parse_floor((out / "stdout").read_text(errors="replace"))
        return r

    @staticmethod
    def question(name: str, picks: Picks, out: Path) -> tuple[list[str], bytes | None]:
        """The arguments of one question (after the executable), and what to watch for
        on its stdout."""
        return {
            "stats": (["stats"], None),
            "unique file": (["unique", picks.file], None),
            "unique folder": (["unique", picks.folder], None),
            "dupes folder": (["dupes", picks.folder2], None),
            "dupes json": (["dupes", "--format", "json"], FIRST_GROUP),
            "folders": (["folders"], None),
            "report": (["report", "-o", str(out / "report.html")], None),
        }[name]

    def dupfinder(self, backend: str, picks: Picks) -> list[Result]:
        """Cold and warm scan, then each question 3 times, into one fresh catalogue."""
        exe = dupfinder_bin()
        scan = [*exe, "scan", str(self.tree), "-q", "--no-fallback"]
        results = []
        with self.catalogue(backend) as (url, wal):
            env = {**self.env, "DUPFINDER_DB_URL": url}
            db = wal.with_name(wal.name.removesuffix("-wal")) if wal else None
            self.warm()
            for name in SCANS:
                out = self.fresh_dir(f"{backend}-{name}")
                r = measure(name, backend, scan, out=out, env=env, wal=wal)
                r.stages = last_stages(url)
                r.db_bytes = file_size(db) if db is not None else None
                results.append(r)
            for name, _limit in QUESTIONS:
                runs = []
                for _ in range(QUESTION_RUNS):
                    out = self.fresh_dir(f"{backend}-{name}")
                    args, watch = self.question(name, picks, out)
                    r = measure(name, backend, [*exe, *args, "--no-fallback"], out=out,
                                env=env, wal=wal, watch=watch)
                    r.db_bytes = file_size(db) if db is not None else None
                    runs.append(r)
                results.append(combine(runs))
        return results


# --------------------------------------------------------------------------- report


def mib(n: int | None) -> str:
    """Bytes as MiB with one decimal, or "-"."""
    return "-" if n is None else f"{n / MIB:.1f}"


def _goal(target: str, value: float | None, text: str, met: bool | None) -> dict[str, Any]:
    return {"target": target, "value": value, "text": text, "met": met}


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Every target with its value, limit and whether it was met (None: not measurable)."""
    by = {r.label: r for r in results}
    out: list[dict[str, Any]] = []
    for backend in dict.fromkeys(r.backend for r in results if r.backend):
        for kind, limit, base_name in (("cold", COLD_LIMIT, "jdupes -r -q"),
                                       ("warm", WARM_LIMIT, "jdupes -r -q"),
                                       ("cold", FLOOR_LIMIT, FLOOR_NAME)):
            r = by[f"{backend} scan {kind}"]
            base = by.get(base_name)
            shown = "jdupes" if base_name.startswith("jdupes") else base_name
            ratio = r.seconds / base.seconds if base else None
            out.append(_goal(f"{r.label} <= {limit}x {shown}", ratio,
                             f"{ratio:.2f}x" if ratio is not None else f"no {shown} run",
                             None if ratio is None else ratio <= limit))
        wals = [r.max_wal for r in results if r.backend == backend and r.max_wal is not None]
        if wals:
            out.append(_goal(f"{backend} WAL <= {WAL_LIMIT // MIB} MiB", max(wals),
                             f"{max(wals) / MIB:.1f} MiB", max(wals) <= WAL_LIMIT))
        for name in (*SCANS, *(q for q, _ in QUESTIONS)):
            r = by[f"{backend} {name}"]
            out.append(_goal(f"{r.label} peak PSS <= 300 MB", r.peak_pss,
                             f"{r.peak_pss / 1e6:.0f} MB ({r.peak_pss / MIB:.1f} MiB)",
                             r.peak_pss <= RSS_LIMIT))
        for name, limit in QUESTIONS:
            r = by[f"{backend} {name}"]
            out.append(_goal(f"{r.label} <= {limit:g} s (median of {len(r.runs)})",
                             r.seconds, f"{r.seconds:.2f}s", r.seconds <= limit))
            if name == "dupes json":
                first = r.first_group
                out.append(_goal(
                    f"{r.label} first group <= {FIRST_GROUP_LIMIT:g} s", first,
                    f"{first:.2f}s" if first is not None else "no group written",
                    None if first is None else first <= FIRST_GROUP_LIMIT))
    return out


def report(results: list[Result]) -> list[dict[str, Any]]:
    """Print the tables and the targets; returns the targets."""
    base = next((r for r in results if r.label == "jdupes -r -q"), None)
    floor = next((r for r in results if r.label == FLOOR_NAME), None)
    say()
    say(format_table(
        ["command", "seconds", "vs jdupes", "runs (s)", "peak RSS MiB", "peak PSS MiB",
         "max WAL MiB", "db MiB"],
        [[r.label, f"{r.seconds:.2f}", f"{r.seconds / base.seconds:.2f}x" if base else "-",
          " ".join(f"{v:.2f}" for v in r.runs), mib(r.peak_rss), mib(r.peak_pss),
          mib(r.max_wal), mib(r.db_bytes)]
         for r in results]))
    for r in results:
        if r.first_group is not None:
            say(f"{r.label}: first group on stdout after {r.first_group:.2f}s (median; runs "
                + " ".join(f"{v:.2f}" for v in r.first_group_runs) + ")")
    scans = [r for r in results if r.stages]
    if scans:
        keys = list(dict.fromkeys(k for r in scans for k in r.stages))
        say()
        say("stage seconds of dupfinder (from the catalogue) and floor.py (from its output):")
        say(format_table(["scan", *keys, "sum"], [
            [r.label, *(f"{r.stages[k]:.2f}" if k in r.stages else "-" for k in keys),
             f"{sum(r.stages.values()):.2f}"] for r in scans]))
    goals = targets(results)
    say()
    say("targets (issues 19 and 20)" + (f"; jdupes {base.seconds:.2f}s" if base else "")
        + (f"; floor.py {floor.seconds:.2f}s" if floor else "") + ":")
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
    p.add_argument("--skip-floor", action="store_true", help="do not run floor.py")
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
    run_floor = not args.skip_floor and FLOOR.is_file()
    version = code_version()
    say(f"dupfinder {version}, {os.cpu_count()} CPUs, tree {tree}")
    if not args.skip_floor and not run_floor:
        say(f"{FLOOR} is missing: floor.py skipped (its targets are n/a)")
    picks = pick_paths(tree)
    say(f"questions ask about FILE {picks.file}, FOLDER {picks.folder} "
        f"({picks.folder_files} files), FOLDER2 {picks.folder2} ({picks.folder2_files} files)")
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
            if run_floor:
                results.append(runner.floor())
            for backend in backends:
                say(f"{backend}:")
                results.extend(runner.dupfinder(backend, picks))
        except CommandFailed as exc:
            say(f"!!! a measured command failed: {exc}")
            return 2
    goals = report(results)
    if args.json is not None:
        data = {"code": version, "tree": str(tree), "cpus": os.cpu_count(),
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "expected": load_expected(tree),
                "sample_seconds": SAMPLE_SECONDS, "question_runs": QUESTION_RUNS,
                "picks": asdict(picks),
                "results": [{"label": r.label, **asdict(r)} for r in results],
                "targets": goals}
        with open(args.json, "x") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        say(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
