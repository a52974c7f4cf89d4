"""Generate a reproducible tree of files with known duplicates for the benchmarks.

Usage (from the repository root)::

    python -m bench.gen_tree OUT_DIR [--files 100000] [--seed 1] [--big 120]
    python -m bench.gen_tree OUT_DIR --scale small      # 5k files, 4 big ones
    python -m bench.gen_tree OUT_DIR --scale million    # 1M files of 512 B-2 KiB, no big
    python -m bench.gen_tree OUT_DIR --scale million --files 200000   # same mix, 200k
    python -m bench.gen_tree OUT_DIR --scale million --dry-run        # plan and print only

The same arguments always give byte-identical files under the same names. The tree holds:

* small files with log-uniform sizes from 512 B to 360 KiB (``--max-small``; the
  ``million`` preset uses 2 KiB) plus 2% of 1-511 B, and ``--big`` files of 16-64 MiB;
* about 30% copies of other files, in the same folder, in other folders and in deep ones;
* files with the same size as another but different content (2%), files with the same
  first 64 KiB as another but a different tail (1%, and some of the big ones; when no
  small file is longer than 64 KiB, as with ``million``, these are files equal to another
  but for their last 8 bytes);
* a few hard links (0.1%), half of them to files that also have copies;
* about one folder per 100 files, nested (random recursive tree plus two deep chains).

Content is a slice of one seeded random pool with the file's content number written into
its first 8 bytes, so writing costs a memory copy, not random number generation.

The expected counts are printed and also written next to the tree, to
``OUT_DIR.expected.json`` (outside the tree, so no tool sees it); ``bench.compare`` checks
the tools' duplicate counts against it. ``--force`` replaces an existing tree only when that
file says this generator made it.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import human_bytes, say

KIB, MIB = 1 << 10, 1 << 20
SMALL_MIN, SMALL_MAX = 512, 360 * KIB
TINY_MAX = SMALL_MIN - 1
BIG_MIN, BIG_MAX = 16 * MIB, 64 * MIB
PREFIX_SAME = 64 * KIB  # "same first 64 KiB, different tail"
HEADER = 8  # the content number, little-endian, at the start of every file
TAIL = 8  # bytes a tail variant overwrites at the end
POOL_BYTES = BIG_MAX + 16 * MIB
WRITE_CHUNK = 8 * MIB

SCALES: dict[str, dict[str, int]] = {
    "full": {"files": 100_000, "big": 120},
    "small": {"files": 5_000, "big": 4},
    # ~10,000 folders and ~1.0 GiB apparent (mean small file ~1.1 KiB); --files scales it
    "million": {"files": 1_000_000, "big": 0, "max_small": 2 * KIB},
}
DIR_WORDS = ("src", "docs", "Photos 2021", "backup", "music", "café", "build", "data",
             "old stuff", "projects", "archive", "tmp", "vendor", "Übersicht", "assets")
EXTS = (".txt", ".jpg", ".bin", ".dat", ".py", ".mp3", ".log", ".json", "")


@dataclass(frozen=True)
class Content:
    """What a file holds: pool bytes from ``offset``, ``cid`` in the first 8 bytes, and,
    for a tail variant (``tail`` > 0), its own last 8 bytes."""

    cid: int
    size: int
    offset: int
    tail: int = 0

    def key(self, pool: bytes | None = None) -> Any:
        """Equal keys <=> equal bytes (tiny files compare their actual bytes)."""
        if self.size < HEADER + TAIL and pool is not None:
            return render(self, pool)
        return (self.cid, self.tail)


@dataclass
class Plan:
    """Every folder, file and hard link of a tree, relative to its root."""

    dirs: list[str] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    files: list[tuple[str, Content]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (new name, existing file)


@dataclass
class Expected:
    """What the tree holds and what a duplicate finder should report on it."""

    seed: int
    files: int  # paths of regular files, hard links included
    hard_links: int
    folders: int
    max_depth: int
    apparent_bytes: int
    disk_bytes: int  # each inode once
    duplicate_groups: int  # contents held by at least two distinct inodes
    duplicate_files: int  # paths in those groups (dupfinder's "files")
    duplicate_inodes: int  # inodes in those groups (jdupes without -H lists one path each)
    wasted_bytes: int
    same_size_other_content: int
    same_prefix_other_tail: int
    big_files: int


def render(c: Content, pool: bytes) -> bytes:
    """The bytes of a small content (big ones are written in chunks by :func:`write_one`)."""
    data = bytearray(pool[c.offset:c.offset + c.size])
    data[:HEADER] = c.cid.to_bytes(HEADER, "little")[:c.size]
    if c.tail:
        data[-TAIL:] = b"TL" + c.tail.to_bytes(TAIL - 2, "little")
    return bytes(data)


# --------------------------------------------------------------------------- planning


class Planner:
    """Builds a :class:`Plan` from a seeded random generator."""

    def __init__(self, files: int, big: int, seed: int, max_small: int = SMALL_MAX) -> None:
        if max_small <= SMALL_MIN:
            raise SystemExit(f"--max-small must be more than {SMALL_MIN} bytes")
        self.rng = random.Random(seed)
        self.max_small = max_small
        self.n_files, self.n_big = files, min(big, files // 2)
        self.plan = Plan()
        self.next_cid = 1
        self.deep: list[int] = []

    def content(self, size: int) -> Content:
        """A new content of ``size`` bytes, unlike every other."""
        c = Content(self.next_cid, size, self.rng.randrange(POOL_BYTES - size + 1))
        self.next_cid += 1
        return c

    def small_size(self) -> int:
        """A log-uniform size in [512 B, max_small], or 1-511 B for 2% of files."""
        if self.rng.random() < 0.02:
            return self.rng.randint(1, TINY_MAX)
        return int(math.exp(self.rng.uniform(math.log(SMALL_MIN), math.log(self.max_small))))

    def make_dirs(self) -> None:
        """About one folder per 100 files: a random recursive tree plus two deep chains."""
        rng, plan = self.rng, self.plan
        total = max(10, self.n_files // 100)
        chain = min(30, total // 10)
        plan.dirs, plan.depths = [""], [0]
        for i in range(1, total - 2 * chain):
            parent = rng.randrange(i)
            plan.dirs.append(self._child(parent, f"{rng.choice(DIR_WORDS)}_{i:04d}"))
            plan.depths.append(plan.depths[parent] + 1)
        for k in range(2):
            parent = rng.randrange(len(plan.dirs))
            for level in range(chain):
                plan.dirs.append(self._child(parent, f"deep{k}_level{level:02d}"))
                plan.depths.append(plan.depths[parent] + 1)
                parent = len(plan.dirs) - 1
        cut = max(plan.depths) - max(3, chain // 3)
        self.deep = [i for i, d in enumerate(plan.depths) if d >= cut]

    def _child(self, parent: int, name: str) -> str:
        base = self.plan.dirs[parent]
        return f"{base}/{name}" if base else name

    def place(self, content: Content, near: int | None = None) -> int:
        """Add a file with ``content``; a copy (``near`` = the original's folder) lands in
        the same folder (35%), a deep folder (15%) or anywhere. Returns its folder."""
        rng, plan = self.rng, self.plan
        r = rng.random()
        if near is not None and r < 0.35:
            folder = near
        elif near is not None and r < 0.50:
            folder = rng.choice(self.deep)
        else:
            folder = rng.randrange(len(plan.dirs))
        idx = len(plan.files)
        ext = EXTS[content.cid % len(EXTS)]
        stem = "copy of file" if near is not None else rng.choice(("file", "IMG", "doc"))
        name = f"{stem}_{idx:06d}{ext}"
        path = f"{plan.dirs[folder]}/{name}" if plan.dirs[folder] else name
        plan.files.append((path, content))
        return folder

    def build(self) -> Plan:
        """Plan the whole tree (see the module docstring for the mix)."""
        rng, n = self.rng, self.n_files
        self.make_dirs()
        n_links = max(2, n // 1000)
        n_copies = round(0.30 * n)
        big_copies = self.n_big // 4
        big_variants = max(1, self.n_big // 20) if self.n_big >= 4 else 0
        big_orig = self.n_big - big_copies - big_variants
        n_same_size = round(0.02 * n)
        n_variants = round(0.01 * n)
        n_small = n - n_links - n_copies - n_same_size - n_variants - big_orig - big_variants
        if n_small < 1:
            raise SystemExit("--files is too small for the mix (use at least 100)")

        originals: list[tuple[Content, int]] = []  # small (content, folder)
        bigs: list[tuple[Content, int]] = []
        for _ in range(big_orig):
            c = self.content(rng.randint(BIG_MIN, BIG_MAX))
            bigs.append((c, self.place(c)))
        for _ in range(n_small):
            c = self.content(self.small_size())
            originals.append((c, self.place(c)))
        for _ in range(n_same_size):  # same size as another file, other content
            c = self.content(rng.choice(originals)[0].size)
            originals.append((c, self.place(c)))
        long_ones = [o for o in originals if o[0].size > PREFIX_SAME + TAIL]
        if not long_ones:  # small max size: same bytes but the last 8 (size >= 2x TAIL)
            long_ones = [o for o in originals if o[0].size >= HEADER + 2 * TAIL]
        tails = 0
        for pool_, count in ((long_ones, n_variants), (bigs, big_variants)):
            for _ in range(count):  # same first 64 KiB (and size), other tail
                orig, folder = rng.choice(pool_)
                tails += 1
                c = Content(orig.cid, orig.size, orig.offset, tail=tails)
                self.place(c, near=folder)
        for _ in range(big_copies):
            orig, folder = rng.choice(bigs)
            self.place(orig, near=folder)
        for _ in range(n_copies - big_copies):
            orig, folder = rng.choice(originals)
            self.place(orig, near=folder)

        counts: dict[Any, int] = defaultdict(int)
        for _, c in self.plan.files:
            counts[(c.cid, c.tail)] += 1
        copied = [p for p, c in self.plan.files if counts[(c.cid, c.tail)] > 1]
        unique = [p for p, c in self.plan.files if counts[(c.cid, c.tail)] == 1]
        for i in range(n_links):
            target = rng.choice(copied if i % 2 == 0 else unique)
            folder = rng.randrange(len(self.plan.dirs))
            base = self.plan.dirs[folder]
            name = f"hardlink_{i:05d}"
            self.plan.links.append((f"{base}/{name}" if base else name, target))
        return self.plan


def expected_counts(plan: Plan, pool: bytes, seed: int) -> Expected:
    """The counts a correct duplicate finder reports on ``plan`` (size >= 1 byte)."""
    inode_of = {path: i for i, (path, _) in enumerate(plan.files)}
    content_of = {path: c for path, c in plan.files}
    entries = [(path, inode_of[path], c) for path, c in plan.files]
    entries += [(new, inode_of[old], content_of[old]) for new, old in plan.links]
    groups: dict[Any, list[int]] = defaultdict(list)
    for _, inode, c in entries:
        groups[(c.size, c.key(pool))].append(inode)
    dup_groups = dup_files = dup_inodes = wasted = 0
    for (size, _), inodes in groups.items():
        distinct = len(set(inodes))
        if distinct > 1:
            dup_groups += 1
            dup_files += len(inodes)
            dup_inodes += distinct
            wasted += (distinct - 1) * size
    sizes: dict[int, int] = defaultdict(int)
    for _, c in plan.files:
        sizes[c.size] += 1
    return Expected(
        seed=seed,
        files=len(entries),
        hard_links=len(plan.links),
        folders=len(plan.dirs),
        max_depth=max(plan.depths),
        apparent_bytes=sum(c.size for _, _, c in entries),
        disk_bytes=sum(c.size for _, c in plan.files),
        duplicate_groups=dup_groups,
        duplicate_files=dup_files,
        duplicate_inodes=dup_inodes,
        wasted_bytes=wasted,
        same_size_other_content=0,  # filled in by the caller from the plan's mix
        same_prefix_other_tail=sum(1 for _, c in plan.files if c.tail),
        big_files=sum(1 for _, c in plan.files if c.size >= BIG_MIN),
    )


# --------------------------------------------------------------------------- writing

_POOL = b""


def write_one(root: str, path: str, c: Content) -> None:
    """Write one file of the plan (``_POOL`` must be set)."""
    pool = _POOL
    fd = os.open(os.path.join(root, path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if c.size <= WRITE_CHUNK:
            _write_all(fd, render(c, pool))
            return
        view = memoryview(pool)[c.offset:c.offset + c.size]
        _write_all(fd, c.cid.to_bytes(HEADER, "little"))
        end = c.size - TAIL if c.tail else c.size
        for start in range(HEADER, end, WRITE_CHUNK):
            _write_all(fd, view[start:min(end, start + WRITE_CHUNK)])
        if c.tail:
            _write_all(fd, b"TL" + c.tail.to_bytes(TAIL - 2, "little"))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_share(args: tuple[str, list[tuple[str, Content]]]) -> int:
    root, files = args
    for path, c in files:
        write_one(root, path, c)
    return len(files)


def write_tree(root: Path, plan: Plan, pool: bytes, jobs: int) -> None:
    """Create the folders, write the files (``jobs`` processes), then the hard links."""
    global _POOL
    _POOL = pool
    for d in plan.dirs[1:]:
        (root / d).mkdir()
    shares = [(str(root), plan.files[j::jobs]) for j in range(jobs)]
    if jobs == 1:
        _write_share(shares[0])
    else:  # fork: the workers share the pool with this process
        with multiprocessing.get_context("fork").Pool(jobs) as workers:
            workers.map(_write_share, shares)
    for new, old in plan.links:
        os.link(root / old, root / new)


# --------------------------------------------------------------------------- main


def sidecar(out: Path) -> Path:
    """Where the expected counts of the tree at ``out`` are written."""
    return out.parent / (out.name + ".expected.json")


def prepare_out(out: Path, force: bool) -> None:
    """Make sure ``out`` is missing or empty; with ``force`` remove a tree this script made."""
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SystemExit(f"{out} is not empty (use --force to replace a generated tree)")
        if not sidecar(out).is_file():
            raise SystemExit(f"{out} is not empty and has no {sidecar(out).name}: "
                             "not removing a folder this script did not make")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.gen_tree", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT_DIR")
    p.add_argument("--scale", choices=sorted(SCALES), default="full",
                   help="preset sizes (default full: 100k files, 120 big; small: 5k "
                   "files, 4 big; million: 1M files of at most 2 KiB, no big)")
    p.add_argument("--files", type=int, help="number of files, hard links included")
    p.add_argument("--big", type=int, help="number of 16-64 MiB files")
    p.add_argument("--max-small", type=int,
                   help="largest small file in bytes (default 360 KiB; million: 2 KiB)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="writing processes (default: CPU count)")
    p.add_argument("--dry-run", action="store_true",
                   help="plan the tree and print its counts; write nothing")
    p.add_argument("--force", action="store_true",
                   help="replace OUT_DIR if it holds a tree made by this script")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Plan, write and summarise the tree."""
    args = parse_args(argv)
    preset = SCALES[args.scale]
    files = args.files if args.files is not None else preset["files"]
    big = args.big if args.big is not None else preset["big"]
    max_small = args.max_small if args.max_small is not None else preset.get(
        "max_small", SMALL_MAX)
    out = args.out.resolve()
    t0 = time.perf_counter()
    if not args.dry_run:
        prepare_out(out, args.force)
    pool = random.Random(f"pool-{args.seed}").randbytes(POOL_BYTES)
    planner = Planner(files, big, args.seed, max_small)
    plan = planner.build()
    expected = expected_counts(plan, pool, args.seed)
    expected.same_size_other_content = round(0.02 * files)
    t_plan = time.perf_counter() - t0
    if args.dry_run:
        say(f"dry run: would write to {out}")
    else:
        say(f"writing {expected.files} files ({human_bytes(expected.disk_bytes)}) in "
            f"{expected.folders} folders to {out} ...")
        write_tree(out, plan, pool, max(1, args.jobs))
    elapsed = time.perf_counter() - t0
    run_args = {"files": files, "big": big, "seed": args.seed}
    if max_small != SMALL_MAX:
        run_args["max_small"] = max_small
    data = {**asdict(expected), "root": str(out), "args": run_args}
    if not args.dry_run:
        sidecar(out).write_text(json.dumps(data, indent=2) + "\n")
    e = expected
    say(f"files:      {e.files} ({e.files - e.hard_links} written + {e.hard_links} hard "
        f"links), {e.big_files} of 16-64 MiB")
    say(f"bytes:      {human_bytes(e.disk_bytes)} on disk ({e.disk_bytes} B), "
        f"{human_bytes(e.apparent_bytes)} apparent")
    say(f"folders:    {e.folders}, deepest {e.max_depth} levels")
    say(f"duplicates: {e.duplicate_groups} groups, {e.duplicate_files} files "
        f"({e.duplicate_inodes} distinct inodes), {human_bytes(e.wasted_bytes)} wasted")
    say(f"decoys:     {e.same_size_other_content} same size/other content, "
        f"{e.same_prefix_other_tail} same first 64 KiB (or all but the last 8 B)/other tail")
    say(f"time:       {elapsed:.1f}s (plan {t_plan:.1f}s); "
        + ("nothing written" if args.dry_run else f"expected counts in {sidecar(out)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
