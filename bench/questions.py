"""Time the catalogue questions: unique files (``unique_files`` / ``unique_totals``) and
duplicate folders (``duplicate_folders``), on a synthetic catalogue.

Usage (from the repository root)::

    python -m bench.questions [--files 100000] [--backend sqlite|postgresql|both] [--seed 1]

The catalogue is built straight through the database layer (``upsert_files`` with hashes,
plus one ``scan_metadata`` row per host for its scanned root); no file is written to disk.
Layout, for ``--files N``:

* host ``pc``, root ``/home/u``: ~0.80 N files in 10 top folders ``t0`` .. ``t9``, about one
  folder per 100 files in a random recursive tree. Of these files 25% copy the content of
  an earlier file (half of them under the same name), 1% are empty, 2% have the size of an
  earlier file but other content, 1% its size and prefix but another tail, 0.1% are hard
  links; the rest are new contents with log-uniform sizes from 64 B to 256 MiB (so most
  large sizes are unique).
* ~0.05 N files in whole-subtree copies under ``/home/u/t9/copy K NAME`` (one in four with
  one file changed, a near-duplicate that must not be reported);
* host ``nas``, root ``/backup/pc``: a copy of all of ``t0`` (~0.08 N) and ~0.07 N of
  subtree copies from ``t1`` .. ``t8`` (again one in four with one file changed).

Hashes are what a scan leaves: a file whose size no other inode has gets none, one whose
size collides gets a prefix hash, and one whose size and prefix collide a full hash too.
PostgreSQL gets ``VACUUM ANALYZE`` after the load (autovacuum would do it within a minute);
SQLite nothing (dupfinder does not run ANALYZE).

Each question then runs once, in its own child process (``resource.getrusage`` peak RSS is
per process, so each figure is that question's own peak, the child's imports included):

* ``cat.unique(["/home/u/t1"])`` streamed to the end, and ``cat.unique_totals`` of it;
* the same for ``["/home/u"]``, everything ``pc`` has (copies then count on ``nas``);
* ``cat.folders()`` (every host's scanned roots) and ``cat.folders(same_names=True)``.

PostgreSQL: ``$DUPFINDER_BENCH_PG_URL`` or a throw-away server (see ``bench/common.py``).
SQLite: a file in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from typing import Any

from bench.common import (
    clean_env,
    code_version,
    format_table,
    pg_version,
    postgres,
    say,
    sqlite_url,
    url_string,
)

ENV_URL = "DUPFINDER_BENCH_QUESTIONS_URL"  # the URL goes to children here, never in argv
PC, NAS = "pc", "nas"
PC_ROOT, NAS_ROOT = "/home/u", "/backup/pc"
TOP = f"{PC_ROOT}/t1"  # t0 is all on the nas; t1 only partly
BATCH = 5000

QUESTIONS = (
    ("unique_files", "unique_files t1 (streamed)"),
    ("unique_totals", "unique_totals t1"),
    ("unique_files_all", "unique_files /home/u (streamed)"),
    ("unique_totals_all", "unique_totals /home/u"),
    ("folders", "duplicate_folders"),
    ("folders_names", "duplicate_folders same_names"),
)


def max_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the catalogue


class _Gen:
    """The synthetic file tree, as folders of (name, content id, inode) tuples."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.sizes: list[int] = []  # content id -> size
        self.prefix: list[int] = []  # content id -> prefix class
        self.empty = self.content(0)
        # host -> folder path -> [(name, cid, inode)]
        self.folders: dict[str, dict[str, list[tuple[str, int, int]]]] = {PC: {}, NAS: {}}
        self.inodes = {PC: 0, NAS: 0}

    def content(self, size: int | None = None, prefix: int | None = None) -> int:
        cid = len(self.sizes)
        if size is None:
            size = int(math.exp(self.rnd.uniform(math.log(64), math.log(256 << 20))))
        self.sizes.append(size)
        self.prefix.append(cid if prefix is None else prefix)
        return cid

    def inode(self, host: str) -> int:
        self.inodes[host] += 1
        return self.inodes[host]

    def base_tree(self, files: int) -> None:
        """The pc's own files: 10 top folders, a random recursive tree below them."""
        rnd = self.rnd
        n_folders = max(10, files // 100)
        paths = [f"{PC_ROOT}/t{i}" for i in range(10)]
        for i in range(10, n_folders):
            parent = paths[rnd.randrange(len(paths))]
            name = f"dir {i}" if i % 7 == 0 else f"d{i}"
            paths.append(f"{parent}/{name}")
        tree = self.folders[PC]
        for p in paths:
            tree[p] = []
        earlier: list[tuple[str, int, int]] = []
        taken: set[tuple[str, str]] = set()
        exts = ("jpg", "txt", "pdf", "mp3", "py", "dat", "mkv", "json")
        for j in range(files):
            r = rnd.random()
            name = f"file{j}.{exts[j % len(exts)]}"
            inode = 0
            if r < 0.01:
                cid = self.empty
            elif r < 0.26 and earlier:
                ename, cid, _ = earlier[rnd.randrange(len(earlier))]
                if rnd.random() < 0.5:
                    name = ename
            elif r < 0.28 and earlier:  # same size, other content
                cid = self.content(self.sizes[earlier[rnd.randrange(len(earlier))][1]])
            elif r < 0.29 and earlier:  # same size and prefix, other tail
                c = earlier[rnd.randrange(len(earlier))][1]
                cid = self.content(self.sizes[c], self.prefix[c])
            elif r < 0.291 and earlier:  # hard link
                _, cid, inode = earlier[rnd.randrange(len(earlier))]
            else:
                cid = self.content()
            folder = paths[rnd.randrange(len(paths))]
            if (folder, name) in taken:  # a copy under the same name in the same folder
                name = f"file{j}.{exts[j % len(exts)]}"
            taken.add((folder, name))
            entry = (name, cid, inode or self.inode(PC))
            tree[folder].append(entry)
            earlier.append(entry)

    def copy_subtree(self, src_host: str, src: str, dst_host: str, dst: str,
                     change_one: bool) -> int:
        """Copy every folder at or below ``src`` to ``dst`` (new inodes, same names and
        contents; ``change_one``: one file gets new content of the same size)."""
        copied = 0
        changed = not change_one
        for path, files in list(self.folders[src_host].items()):
            if path != src and not path.startswith(src + "/"):
                continue
            out = []
            for name, cid, _ in files:
                if not changed and self.sizes[cid]:
                    cid = self.content(self.sizes[cid])
                    changed = True
                out.append((name, cid, self.inode(dst_host)))
            self.folders[dst_host][dst + path[len(src):]] = out
            copied += len(out)
        return copied

    def subtree_files(self, host: str) -> dict[str, int]:
        """Files at or below each folder."""
        counts: dict[str, int] = defaultdict(int)
        for path, files in self.folders[host].items():
            p = path
            while True:
                counts[p] += len(files)
                if p == PC_ROOT or "/" not in p:
                    break
                p = p.rpartition("/")[0]
        return counts

    def copies(self, budget: int, tops: tuple[int, ...], dst_host: str, dst: str) -> None:
        """Copy random subtrees of the pc's top folders ``tops`` until ``budget`` files."""
        rnd = self.rnd
        counts = self.subtree_files(PC)
        prefixes = tuple(f"{PC_ROOT}/t{i}/" for i in tops)
        candidates = [p for p in self.folders[PC] if p.startswith(prefixes)]
        k = 0
        for _ in range(20000):
            if budget <= 0 or not candidates:
                break
            src = candidates[rnd.randrange(len(candidates))]
            n = counts[src]
            if n == 0 or n > budget:
                continue
            name = src.rpartition("/")[2]
            budget -= self.copy_subtree(PC, src, dst_host, f"{dst}/copy {k} {name}",
                                        change_one=k % 4 == 3)
            k += 1


def build(url: str, files: int, seed: int) -> dict[str, Any]:
    """Fill the empty catalogue at ``url``; returns counts."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from dupfinder import Catalogue
    from dupfinder.db.file_rows import upsert_files
    from dupfinder.db.models import ScanMetadata
    from dupfinder.scan.hashing import DEFAULT_ALGORITHM, DEFAULT_PREFIX_SIZE, algorithm_tag
    from dupfinder.states import ScanStatus

    start = time.perf_counter()
    g = _Gen(seed)
    g.base_tree(int(files * 0.80))
    g.copies(int(files * 0.05), tuple(range(9)), PC, f"{PC_ROOT}/t9")
    g.copy_subtree(PC, f"{PC_ROOT}/t0", NAS, f"{NAS_ROOT}/t0", change_one=False)
    have = sum(len(f) for h in g.folders.values() for f in h.values())
    g.copies(max(0, files - have), tuple(range(1, 9)), NAS, f"{NAS_ROOT}/old")

    # what a scan would have hashed: sizes shared by inodes, then (size, prefix) too
    inode_cid = {(h, ino): cid for h, tree in g.folders.items()
                 for fs in tree.values() for _, cid, ino in fs}
    links = Counter((h, ino) for h, tree in g.folders.items()
                    for fs in tree.values() for _, _, ino in fs)
    by_size = Counter(g.sizes[c] for c in inode_cid.values())
    by_prefix = Counter((g.sizes[c], g.prefix[c]) for c in inode_cid.values())
    del inode_cid
    generated = time.perf_counter() - start

    def hx(tag: bytes, n: int) -> str:
        return hashlib.blake2b(tag + n.to_bytes(8, "big"), digest_size=16).hexdigest()

    algo = algorithm_tag(DEFAULT_ALGORITHM, DEFAULT_PREFIX_SIZE)
    now = datetime.now(UTC)
    rows_total = hashed = 0
    start = time.perf_counter()
    with Catalogue.open(url, host=PC, fallback=False) as cat:
        with cat.db.session() as s:
            scan_ids = {}
            for h, root in ((PC, PC_ROOT), (NAS, NAS_ROOT)):
                meta = ScanMetadata(host=h, roots=[root], options={}, algorithm=DEFAULT_ALGORITHM,
                                    status=ScanStatus.COMPLETE, started_at=now, finished_at=now)
                s.add(meta)
                s.flush()
                scan_ids[h] = meta.id
            s.commit()
            batch: list[dict[str, Any]] = []
            device = {PC: 2049, NAS: 2065}
            for h, tree in g.folders.items():
                for folder, fs in tree.items():
                    for name, cid, ino in fs:
                        size = g.sizes[cid]
                        pfx = full = None
                        if size and by_size[size] > 1:
                            pfx = hx(b"p", g.prefix[cid])
                            if by_prefix[(size, g.prefix[cid])] > 1:
                                full = hx(b"f", cid)
                                hashed += 1
                        batch.append(dict(
                            host=h, path=f"{folder}/{name}", name=name, size=size,
                            mtime_ns=1_600_000_000_000_000_000 + cid * 1000, device=device[h],
                            inode=ino, nlink=links[(h, ino)], scan_id=scan_ids[h],
                            first_seen=now, last_seen=now,
                            hash_algo=algo if pfx else None, prefix_hash=pfx, full_hash=full))
                        if len(batch) >= BATCH:
                            upsert_files(s, batch)
                            rows_total += len(batch)
                            batch = []
                            if rows_total % (BATCH * 20) == 0:
                                s.commit()
            if batch:
                upsert_files(s, batch)
                rows_total += len(batch)
            s.commit()
        backend = cat.backend
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    if backend == "postgresql":
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE file_hashes"))
        engine.dispose()
    analyzed = time.perf_counter() - start
    return {
        "rows": rows_total,
        "pc_rows": sum(len(f) for f in g.folders[PC].values()),
        "nas_rows": sum(len(f) for f in g.folders[NAS].values()),
        "folders": sum(len(t) for t in g.folders.values()),
        "full_hashed": hashed,
        "distinct_sizes": len(by_size),
        "generate_s": generated,
        "load_s": loaded,
        "analyze_s": analyzed,
    }


# --------------------------------------------------------------------------- the questions


def ask(url: str, question: str) -> dict[str, Any]:
    """Run one question (in this process); returns seconds, a summary and peak RSS."""
    from dupfinder import Catalogue

    with Catalogue.open(url, host=PC, fallback=False) as cat:
        with cat.db.session() as s:  # connect and warm the pool outside the clock
            s.execute(__import__("sqlalchemy").text("SELECT 1"))
        base_rss = max_rss_mib()
        start = time.perf_counter()
        summary: str
        if question in ("unique_files", "unique_files_all"):
            root = TOP if question == "unique_files" else PC_ROOT
            n = undecided = nbytes = 0
            for f in cat.unique([root]):
                n += 1
                undecided += f.undecided
                nbytes += f.size
            summary = f"{n} files ({undecided} undecided)"
        elif question in ("unique_totals", "unique_totals_all"):
            root = TOP if question == "unique_totals" else PC_ROOT
            t = cat.unique_totals([root])
            summary = f"{t.files} files, {t.bytes / 2**30:.1f} GiB"
        else:
            groups = cat.folders(same_names=question == "folders_names")
            wasted = sum(g.wasted for g in groups)
            biggest = max((g.files for g in groups), default=0)
            summary = f"{len(groups)} groups, {wasted / 2**30:.1f} GiB, largest {biggest} files"
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "summary": summary, "base_rss": base_rss,
            "rss": max_rss_mib()}


def child(args: list[str], url: str) -> dict[str, Any]:
    """Run ``python -m bench.questions ARGS`` with the URL in the environment; its JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.questions", *args], env=clean_env(**{ENV_URL: url}),
        capture_output=True, text=True, check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode != 0:
        raise RuntimeError(f"bench.questions {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_backend(backend: str, url: str, files: int, seed: int) -> dict[str, Any]:
    say(f"[{backend}] building {files} files (load average {os.getloadavg()[0]:.2f}) ...")
    built = child(["--_build", "--files", str(files), "--seed", str(seed)], url)
    say(f"[{backend}] {built['rows']} rows ({built['pc_rows']} pc, {built['nas_rows']} nas), "
        f"{built['folders']} folders, {built['full_hashed']} with full hashes, "
        f"{built['distinct_sizes']} distinct sizes; generated {built['generate_s']:.1f} s, "
        f"loaded {built['load_s']:.1f} s, VACUUM ANALYZE {built['analyze_s']:.1f} s; "
        f"builder peak RSS {built['rss']:.0f} MiB")
    out: dict[str, Any] = {"built": built, "questions": {}, "load": []}
    for key, label in QUESTIONS:
        load = os.getloadavg()[0]
        r = child(["--_ask", key], url)
        r["load"] = load
        out["questions"][key] = r
        say(f"[{backend}] {label}: {r['seconds']:.2f} s, peak RSS {r['rss']:.0f} MiB "
            f"(before {r['base_rss']:.0f}), load {load:.2f}: {r['summary']}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--_build", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_ask", choices=[k for k, _ in QUESTIONS], help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a._build or a._ask:
        url = os.environ[ENV_URL]
        result = build(url, a.files, a.seed) if a._build else ask(url, a._ask)
        result.setdefault("rss", max_rss_mib())
        print(json.dumps(result))
        return 0

    say(f"dupfinder {code_version()}; {a.files} files, seed {a.seed}; "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, dict[str, Any]] = {}
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="dupfinder-questions-") as tmp:
            url = sqlite_url(tmp, "questions")
            results["sqlite"] = run_backend("sqlite", url, a.files, a.seed)
            size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
            say(f"[sqlite] database file {size / 2**20:.0f} MiB")
    if a.backend in ("postgresql", "both"):
        with postgres() as dbs:
            say(f"[postgresql] {dbs.origin}, server {pg_version(dbs.base)}")
            url = dbs.fresh("questions")
            results["postgresql"] = run_backend("postgresql", url_string(url), a.files,
                                                a.seed)

    say()
    backends = list(results)
    rows = []
    for key, label in QUESTIONS:
        rows.append([label, *(f"{results[b]['questions'][key]['seconds']:.2f}"
                              for b in backends),
                     *(f"{results[b]['questions'][key]['rss']:.0f}" for b in backends)])
    say(format_table(["question (seconds, then peak RSS MiB)", *backends,
                      *(f"{b} RSS" for b in backends)], rows))
    say(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
