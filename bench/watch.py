"""What ``dupfinder watch`` costs: latency from a file's close to its group in the catalogue,
CPU while idle, memory, and the rename of a 100k-file folder.

Usage (from the repository root)::

    python -m bench.watch [--files 100000] [--million TREE] [--backend sqlite|postgresql|both]
                          [--work DIR] [--json FILE]

For each backend, a tree of ``--files`` small files (100 to a folder, one folder ``big``
holding them all below it) is made in a temporary folder and ``dupfinder watch -f json``
started on it (``--settle 1``, the default). Then, each measured against the JSON lines the
watch prints, timestamped as they arrive:

1. idle: the watch's CPU time (utime + stime of its process tree) over 20 s of no change;
2. stream: 100 files a second for 20 s, each a copy of a file of the tree, so that each
   one's ``new_copy`` line says that its row and its group are in the catalogue; the
   latency is from the file's close to that line (median, p99);
3. burst: 10,000 such copies written as fast as they can be, latency as above;
4. rename: ``big`` renamed; from the rename to the ``updated`` line that moved its rows
   (and the rows moved, and the paths scanned: 0 means nothing was hashed);
5. memory: the peak PSS of the watch's process tree, sampled every 50 ms throughout.

``--million TREE`` also watches a ``gen_tree --scale million`` tree (1M files, 10k folders)
on SQLite: the initial scan's time and peak PSS, then the PSS while watching, idle. The
targets: median latency ≤ 1 s, idle CPU ≈ 0, PSS ≤ 300 MB at 1M files, rename ≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    code_version,
    format_table,
    postgres,
    say,
    sqlite_url,
    url_string,
)
from bench.scale import children_by_parent, mib, remove_sqlite, tree_memory

DUPFINDER = [sys.executable, "-m", "dupfinder"]
DUPFINDER_RUN = DUPFINDER
PSS_LIMIT = 300_000_000


def make_tree(root: Path, files: int) -> list[Path]:
    """``files`` files of 1-4 KiB under ``root/big``, 100 to a folder, all different."""
    made = []
    for i in range(files):
        folder = root / "big" / f"d{i // 10000:03d}" / f"e{i // 100 % 100:02d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"f{i:07d}"
        body = f"file {i} ".encode()
        p.write_bytes(body + b"." * (1024 + i % 3072 - len(body)))
        made.append(p)
    return made


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its children that are alive."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo, kids = 0.0, [pid], children_by_parent()
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(kids.get(p, ()))
    return total


class Watch:
    """``dupfinder watch`` with its JSON lines timestamped on arrival and its memory
    sampled."""

    def __init__(self, tree: Path, url: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*DUPFINDER_RUN, "watch", str(tree), "-f", "json", "-v", "-q", "--db-url", url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.peak_pss = 0
        self.started = time.monotonic()
        self.done = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append((time.monotonic(), json.loads(raw)))

    def _sample(self) -> None:
        while not self.done and self.proc.poll() is None:
            self.peak_pss = max(self.peak_pss, tree_memory(self.proc.pid)[1])
            time.sleep(0.05)

    def wait(self, event: str, after: int = 0, timeout: float = 3600) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, e in self.lines[after:]:
                if e["event"] == event:
                    return at, e
            if self.proc.poll() is not None:
                raise RuntimeError(f"watch ended with {self.proc.returncode}")
            time.sleep(0.01)
        raise RuntimeError(f"no {event} in {timeout}s")

    def copies_seen(self, after: int) -> dict[str, float]:
        return {e["path"]: at for at, e in self.lines[after:] if e["event"] == "new_copy"}

    def stop(self) -> None:
        self.done = True
        self.proc.terminate()
        self.proc.wait(timeout=600)


def latencies(w: Watch, closed: dict[str, float], timeout: float = 600) -> list[float]:
    """Seconds from each file's close to its ``new_copy`` line."""
    mark = 0
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while len(seen) < len(closed) and time.monotonic() < deadline:
        seen.update((p, at) for p, at in w.copies_seen(mark).items() if p in closed)
        time.sleep(0.05)
    missing = len(closed) - len(seen)
    if missing:
        raise RuntimeError(f"{missing} copies never reported")
    return sorted(seen[p] - t for p, t in closed.items())


def copy_files(sources: list[Path], target: Path, rate: float | None) -> dict[str, float]:
    """Copy ``sources`` into ``target`` (``rate`` files a second, or at once); returns
    each copy's close time."""
    target.mkdir(parents=True, exist_ok=True)
    closed: dict[str, float] = {}
    start = time.monotonic()
    for i, src in enumerate(sources):
        if rate is not None:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        dest = target / f"c{i:06d}"
        dest.write_bytes(src.read_bytes())
        closed[str(dest)] = time.monotonic()
    return closed


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def run_backend(backend: str, url: str, files: int, work: Path, env: dict[str, str]
                ) -> dict[str, Any]:
    tree = work / f"tree-{backend}"
    say(f"{backend}: making {files} files")
    made = make_tree(tree, files)
    w = Watch(tree, url, env)
    try:
        return measure_watch(w, tree, made, files, backend)
    finally:
        if w.proc.poll() is None:
            w.stop()
        shutil.rmtree(tree)


def measure_watch(w: Watch, tree: Path, made: list[Path], files: int, backend: str
                  ) -> dict[str, Any]:
    at, _ = w.wait("watching")
    out: dict[str, Any] = {"backend": backend, "files": files,
                           "initial scan s": round(at - w.started, 2)}
    say(f"  watching after {at - w.started:.1f}s")
    time.sleep(2)
    before, t = cpu_seconds(w.proc.pid), time.monotonic()
    time.sleep(20)
    out["idle CPU %"] = round(100 * (cpu_seconds(w.proc.pid) - before)
                              / (time.monotonic() - t), 3)
    say(f"  idle CPU {out['idle CPU %']}%")
    stream = latencies(w, copy_files(made[:2000], tree / "stream", rate=100))
    out["stream median s"] = round(statistics.median(stream), 3)
    out["stream p99 s"] = round(quantile(stream, 0.99), 3)
    say(f"  100 files/s: median {out['stream median s']}s, p99 {out['stream p99 s']}s")
    burst = latencies(w, copy_files(made[2000:12000], tree / "burst", rate=None))
    out["burst median s"] = round(statistics.median(burst), 3)
    out["burst p99 s"] = round(quantile(burst, 0.99), 3)
    say(f"  burst of 10k: median {out['burst median s']}s, p99 {out['burst p99 s']}s")
    mark = len(w.lines)
    t = time.monotonic()
    os.rename(tree / "big", tree / "big-renamed")
    while True:
        at, e = w.wait("updated", after=mark)
        if e.get("moved"):
            break
        mark = w.lines.index((at, e)) + 1
    out["rename s"] = round(at - t, 3)
    out["rename rows"] = e["moved"]
    out["rename paths scanned"] = e["count"]
    say(f"  rename of {e['moved']} rows: {at - t:.2f}s, {e['count']} paths scanned")
    w.stop()
    out["peak PSS"] = w.peak_pss
    say(f"  peak PSS {mib(w.peak_pss)}")
    return out


def run_million(tree: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    url = sqlite_url(work, "million")
    try:
        subprocess.run(["find", str(tree), "-type", "f", "-size", "-1"], capture_output=True)
        w = Watch(tree, url, env)
        at, e = w.wait("watching")
        scan_peak = w.peak_pss
        time.sleep(10)
        idle = tree_memory(w.proc.pid)[1]
        w.stop()
        return {"backend": "sqlite", "files": "1M", "folders watched": e["count"],
                "initial scan s": round(at - w.started, 1), "scan peak PSS": scan_peak,
                "watching PSS": idle}
    finally:
        remove_sqlite(url)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--million", type=Path, default=None)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.json is not None and args.json.exists():
        say(f"bench.watch: {args.json} exists; give a new file")
        return 2
    say(f"dupfinder {code_version()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-watch-", dir=args.work) as tmp, \
            postgres() as pg:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
            url = sqlite_url(work, "watch") if backend == "sqlite" else url_string(
                pg.fresh("bench_watch"))
            try:
                results.append(run_backend(backend, url, args.files, work, env))
            finally:
                if backend == "sqlite":
                    remove_sqlite(url)
        million = run_million(args.million, work, env) if args.million else None
    keys = [k for k in results[0] if k != "backend"]
    say()
    say(format_table(["figure", *[r["backend"] for r in results]],
                     [[k, *[mib(r[k]) if "PSS" in k else r[k] for r in results]]
                      for k in keys]))
    if million:
        say()
        say(format_table(list(million), [[mib(v) if "PSS" in k else v
                                          for k, v in million.items()]]))
        worst = max(million["scan peak PSS"], million["watching PSS"])
        say(f"target PSS <= 300 MB at 1M files: {mib(worst)} "
            f"{'met' if worst <= PSS_LIMIT else 'MISSED'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": results, "million": million}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
