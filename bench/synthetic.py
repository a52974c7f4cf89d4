"""How far one PostgreSQL catalogue goes: synthetic rows (no files), then the questions.

Usage (from the repository root)::

    python -m bench.synthetic [--rows 10000000] [--hosts 20] [--keep URL] [--build sql|orm]
                              [--runs 3] [--seed 1] [--json FILE]

The catalogue is a fresh database on ``$DUPFINDER_BENCH_PG_URL`` or on a throw-away server
(:func:`bench.common.postgres`, as ``bench.scale`` does), dropped at the end; ``--keep URL``
fills the PostgreSQL database URL instead (created when missing; it must hold no rows) and
leaves it in place.

The rows: ``--hosts`` hosts (``host01`` ...), each with ``rows / hosts`` paths
``/home/u{n}/photos/{year}/{folder}/{i}.jpg`` in folders of about 100 files; sizes
log-uniform between 1 KiB and 10 MiB; about 30% of the rows hold a content that 2-4 rows
share (across hosts and within one), the rest a content of their own. Hashes are what a real
``xxh3-128`` scan leaves: no hash when no other row has the size, a prefix hash otherwise,
and a full hash too when the file is small enough to be read whole in the prefix stage
(64 KiB) or another row has its size and prefix (for these contents: another copy).

The build: the catalogue is opened with ``open_database(..., no_fallback=True)`` (the schema),
the rows go into ``file_hashes`` by COPY in key order (host, path), one complete
``scan_metadata`` row per host, then the contents and the rows' ``content_id``:

* ``--build sql`` (default): every index of ``file_hashes`` (primary key,
  ``uq_file_hashes_host_path``, ``ix_file_hashes_size``, ``ix_file_hashes_content``) is
  dropped before the COPY; the contents come from one ``INSERT ... SELECT ... GROUP BY`` (the
  one of ``contents.build_all``) and the rows get their ``content_id`` from one
  ``UPDATE ... FROM contents`` of the hashed rows only (build_all also sets the unhashed rows
  to NULL, which they already are); VACUUM FULL then rewrites the heap (still in key order,
  without the UPDATE's old row versions) and the keys and indexes are made again from their
  own ``pg_constraint`` / ``pg_indexes`` definitions;
* ``--build orm``: every index stays; ``dupfinder.db.contents.build_all(session)``.

Then ANALYZE. Each question runs as a whole CLI command (``python -m dupfinder ...`` with the
URL in ``$DUPFINDER_DB_URL`` and ``--host-label host01``), stdout to a new file in a fresh
temp folder; ``--runs`` times (median), with the peak PSS and RSS of the process tree
(``bench.scale.measure``, sampled every 50 ms). ``folders`` has a 600 s timeout and
``report`` 900 s (others 900 s); a run that times out is killed and the question shows
"timeout" (no further runs of it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bench.common import (
    clean_env,
    code_version,
    create_pg_database,
    format_table,
    human_bytes,
    median,
    pg_version,
    postgres,
    say,
    url_string,
)
from bench.scale import Result, measure

MIB = 1 << 20
KIB = 1 << 10
ALGO = "xxh3-128"  # the default algorithm's tag (default prefix size)
PREFIX_SIZE = 4096  # hashing.DEFAULT_PREFIX_SIZE: a file this small has prefix == full
WHOLE = 64 << 10  # hashing.whole_limit(4096, 1 MiB): read whole in the prefix stage
DUP_SHARE = 0.30
FILES_PER_FOLDER = 100
COPY_BATCH = 50_000
DEFAULT_TIMEOUT = 900.0
TIMEOUTS = {"folders": 600.0, "report": 900.0}
SECONDARY = ("ix_file_hashes_size", "ix_file_hashes_content")
MASK = (1 << 128) - 1
K_FULL, K_PREFIX = 0x9E3779B97F4A7C15F39CC0605CEDC834, 0xC2B2AE3D27D4EB4F165667B19E3779F9
COLUMNS = ("host", "path", "name", "size", "mtime_ns", "device", "inode", "nlink",
           "prefix_hash", "full_hash", "hash_algo", "first_seen", "last_seen", "scan_id")


# --------------------------------------------------------------------------- the data


def host_label(h: int) -> str:
    """The label of host ``h`` (0-based): host01, host02, ..."""
    return f"host{h + 1:02d}"


class Synthetic:
    """The contents and their placement: ``slots[k]`` is the content of row k (rows of host
    h are ``h * per_host ...``), shuffled so that copies land across and within hosts."""

    def __init__(self, rows: int, hosts: int, seed: int) -> None:
        self.rows, self.hosts = rows, hosts
        self.rng = random.Random(seed)
        rng = self.rng
        copies: list[int] = []
        dup_rows = 0
        while dup_rows < DUP_SHARE * rows:
            k = rng.randint(2, 4)
            copies.append(k)
            dup_rows += k
        copies.extend([1] * max(0, rows - dup_rows))
        self.copies = copies
        self.contents = len(copies)
        span = math.log(10 * MIB / KIB)
        self.sizes = [int(KIB * math.exp(rng.random() * span)) for _ in copies]
        slots: list[int] = []
        for cid, k in enumerate(copies):
            slots.extend([cid] * k)
        del slots[rows:]
        rng.shuffle(slots)
        self.slots = slots
        # how many rows have each size: a size no other row has is never hashed
        per_size: dict[int, int] = {}
        for size, k in zip(self.sizes, copies, strict=True):
            per_size[size] = per_size.get(size, 0) + k
        self.shared = {s for s, n in per_size.items() if n > 1}
        self.per_host = [rows // hosts + (1 if h < rows % hosts else 0) for h in range(hosts)]

    def folders(self, h: int) -> list[tuple[str, int]]:
        """Host ``h``'s folders and how many files each holds (~100), totalling its rows."""
        rng = random.Random(f"{self.rng.random()}-{h}")
        out: list[tuple[str, int]] = []
        left = self.per_host[h]
        seq = 0
        users = 3
        while left > 0:
            n = min(left, rng.randint(FILES_PER_FOLDER - 10, FILES_PER_FOLDER + 10))
            user = h * users + rng.randrange(users)
            year = rng.randint(2005, 2024)
            out.append((f"/home/u{user}/photos/{year}/{year}-{rng.randint(1, 12):02d}-"
                        f"{seq:06d}", n))
            seq += 1
            left -= n
        return out

    def paths(self, h: int) -> list[str]:
        """Host ``h``'s paths in key order (byte-wise: the "C" collation)."""
        paths = [f"{folder}/{i}.jpg" for folder, n in self.folders(h) for i in range(n)]
        paths.sort(key=lambda p: p.encode())
        return paths

    def hashes(self, cid: int) -> tuple[str | None, str | None]:
        """(prefix hash, full hash) of a row holding content ``cid``, as a scan leaves them."""
        size = self.sizes[cid]
        if size not in self.shared:
            return None, None
        full = f"{(cid * K_FULL + 1) & MASK:032x}"
        if size <= PREFIX_SIZE:
            return full, full
        prefix = f"{(cid * K_PREFIX + 7) & MASK:032x}"
        if size <= WHOLE or self.copies[cid] > 1:
            return prefix, full
        return prefix, None


def copy_rows(raw: Any, data: Synthetic, scan_ids: Sequence[int],
              now: datetime) -> dict[str, Any]:
    """COPY every row into file_hashes, host by host in key order; returns per-host facts
    (the folder and file the questions ask about, files and bytes hashed)."""
    cur = raw.cursor()
    stamp = now.isoformat()
    base_mtime = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    slot = 0
    facts: dict[str, Any] = {"hashed": [], "bytes_hashed": []}
    sql = f"COPY file_hashes ({', '.join(COLUMNS)}) FROM STDIN"
    for h in range(data.hosts):
        label = host_label(h)
        paths = data.paths(h)
        if h == 0:
            folder = paths[0].rpartition("/")[0]
            facts["folder"] = folder
            facts["folder_files"] = sum(1 for p in paths[:200] if p.startswith(folder + "/"))
            facts["file"] = paths[0]
        device = 2049 + h
        hashed = nbytes = 0
        buf = io.StringIO()
        for n, path in enumerate(paths):
            cid = data.slots[slot]
            slot += 1
            size = data.sizes[cid]
            prefix, full = data.hashes(cid)
            if prefix is not None:
                hashed += 1
                nbytes += size if full is not None else min(size, PREFIX_SIZE)
            buf.write(f"{label}\t{path}\t{path.rpartition('/')[2]}\t{size}\t"
                      f"{base_mtime + cid * 1_000_003}\t{device}\t{1000 + n}\t1\t"
                      f"{prefix or chr(92) + 'N'}\t{full or chr(92) + 'N'}\t"
                      f"{ALGO if prefix else chr(92) + 'N'}\t{stamp}\t{stamp}\t{scan_ids[h]}\n")
            if (n + 1) % COPY_BATCH == 0:
                buf.seek(0)
                cur.copy_expert(sql, buf)
                buf = io.StringIO()
        buf.seek(0)
        cur.copy_expert(sql, buf)
        facts["hashed"].append(hashed)
        facts["bytes_hashed"].append(nbytes)
    cur.close()
    return facts


# --------------------------------------------------------------------------- the build

BUILD_CONTENTS = (
    "INSERT INTO contents (size, hash_algo, full_hash, files, inodes, hosts, wasted) "
    "SELECT size, hash_algo, full_hash, sum(links), count(*), count(DISTINCT host), "
    "(count(*) - 1) * size FROM (SELECT size, hash_algo, full_hash, host, count(*) AS links "
    "FROM file_hashes WHERE full_hash IS NOT NULL AND hash_algo IS NOT NULL "
    "GROUP BY size, hash_algo, full_hash, host, device, inode) AS p "
    "GROUP BY size, hash_algo, full_hash")
LINK_ROWS = (
    "UPDATE file_hashes f SET content_id = c.id FROM contents c WHERE f.full_hash IS NOT NULL "
    "AND c.full_hash = f.full_hash AND c.size = f.size AND c.hash_algo = f.hash_algo")


@dataclass
class Build:
    """What the build took and made."""

    rows: int
    hosts: int
    contents: int = 0
    groups: int = 0
    hashed_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    db_bytes: int = 0
    relations: dict[str, int] = field(default_factory=dict)
    question_args: dict[str, Any] = field(default_factory=dict)


def build(url: str, rows: int, hosts: int, seed: int, how: str) -> Build:
    """Fill the empty catalogue at ``url``; returns the build's figures."""
    from dupfinder.config import load_settings
    from dupfinder.db.contents import build_all
    from dupfinder.db.engine import open_database

    out = Build(rows, hosts)
    t0 = time.perf_counter()
    db = open_database(load_settings(db_url=url, lookup=False), no_fallback=True)
    with db.session() as session:
        if session.execute(text("SELECT EXISTS (SELECT 1 FROM file_hashes)")).scalar():
            raise SystemExit("the catalogue already holds rows; give an empty database")
    out.seconds["schema"] = time.perf_counter() - t0

    t = time.perf_counter()
    data = Synthetic(rows, hosts, seed)
    out.seconds["generate contents"] = time.perf_counter() - t
    say(f"  {data.contents:,} contents generated in {out.seconds['generate contents']:.1f}s")

    engine = create_engine(make_url(url), poolclass=NullPool)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            defs = dict(conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'file_hashes' "
                "AND indexname = ANY(:n)"), {"n": list(SECONDARY)}).all())
            keys = dict(conn.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
                "'file_hashes'::regclass AND contype IN ('p', 'u') ORDER BY contype")).all())
            if how == "sql":
                for name in defs:
                    conn.execute(text(f"DROP INDEX {name}"))
                for name in keys:
                    conn.execute(text(f"ALTER TABLE file_hashes DROP CONSTRAINT {name}"))
            scan_ids = [conn.execute(text(
                "INSERT INTO scan_metadata (host, roots, options, algorithm, status, started_at, "
                "finished_at, files_seen, files_new, files_changed, files_unchanged, "
                "files_removed, files_hashed, bytes_hashed, errors, changed_during_read, "
                "duplicate_groups, files_in_groups, wasted_bytes, stage_seconds) VALUES "
                "(:host, :roots, :options, :algo, 'complete', :start, :end, :n, :n, 0, 0, 0, "
                "0, 0, 0, 0, 0, 0, 0, '{}') RETURNING id"),
                {"host": host_label(h), "roots": json.dumps([f"/home/u{h * 3 + u}"
                                                             for u in range(3)]),
                 "options": json.dumps({"algorithm": ALGO, "prefix_size": PREFIX_SIZE,
                                        "synthetic": True}),
                 "algo": ALGO, "start": now - timedelta(hours=1), "end": now,
                 "n": data.per_host[h]}).scalar_one() for h in range(hosts)]
        t = time.perf_counter()
        raw = engine.raw_connection()
        try:
            facts = copy_rows(raw, data, scan_ids, now)
            raw.commit()
        finally:
            raw.close()
        out.seconds["generate + COPY rows"] = time.perf_counter() - t
        say(f"  rows copied in {out.seconds['generate + COPY rows']:.1f}s")
        del data

        t = time.perf_counter()
        if how == "orm":
            with db.session() as session:
                build_all(session)
                session.commit()
            out.seconds["contents.build_all"] = time.perf_counter() - t
        else:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL work_mem = '256MB'"))
                conn.execute(text(BUILD_CONTENTS))
            out.seconds["contents INSERT ... GROUP BY"] = time.perf_counter() - t
            t = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL work_mem = '256MB'"))
                conn.execute(text(LINK_ROWS))
            out.seconds["rows UPDATE content_id"] = time.perf_counter() - t
        say(f"  contents built in {time.perf_counter() - t:.1f}s")
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        with auto.connect() as conn:
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            t = time.perf_counter()
            if how == "sql":
                # no index yet: rewriting the heap drops the UPDATE's old row versions
                conn.execute(text("VACUUM FULL file_hashes"))
                out.seconds["VACUUM FULL (no index)"] = time.perf_counter() - t
                t = time.perf_counter()
                for name, ddl in keys.items():
                    conn.execute(text(f"ALTER TABLE file_hashes ADD CONSTRAINT {name} {ddl}"))
                    say(f"  {name} made")
                for name, ddl in defs.items():
                    conn.execute(text(ddl))
                    say(f"  {name} made")
                out.seconds[f"indexes ({len(keys) + len(defs)})"] = time.perf_counter() - t
            else:
                conn.execute(text("VACUUM file_hashes"))
                out.seconds["VACUUM"] = time.perf_counter() - t
            t = time.perf_counter()
            conn.execute(text("ANALYZE"))
            out.seconds["ANALYZE"] = time.perf_counter() - t
            conn.execute(text(
                "UPDATE scan_metadata SET files_hashed = :h, bytes_hashed = :b, "
                "duplicate_groups = g.n, files_in_groups = g.f, wasted_bytes = g.w "
                "FROM (SELECT count(*) AS n, coalesce(sum(files), 0) AS f, "
                "coalesce(sum(wasted), 0) AS w FROM contents WHERE inodes > 1) AS g "
                "WHERE scan_metadata.id = :id"),
                [{"h": facts["hashed"][h], "b": facts["bytes_hashed"][h], "id": scan_ids[h]}
                 for h in range(hosts)])
            out.contents, out.groups = conn.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE inodes > 1) FROM contents")).one()
            out.hashed_rows = int(conn.execute(text(
                "SELECT count(*) FROM file_hashes WHERE prefix_hash IS NOT NULL")).scalar_one())
            out.db_bytes = int(conn.execute(text(
                "SELECT pg_database_size(current_database())")).scalar_one())
            out.relations = {r: int(n) for r, n in conn.execute(text(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace s "
                "ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind IN "
                "('r', 'i') AND (c.relname LIKE '%file_hashes%' OR c.relname LIKE "
                "'%contents%') ORDER BY 1"))}
    finally:
        engine.dispose()
        db.engine.dispose()
    out.seconds["total"] = time.perf_counter() - t0
    out.question_args = {"host": host_label(0), "folder": facts["folder"],
                         "folder_files": facts["folder_files"], "file": facts["file"]}
    return out


# --------------------------------------------------------------------------- the questions


@dataclass
class Question:
    """One question: its command line and its runs."""

    name: str
    args: list[str]
    runs: list[Result] = field(default_factory=list)

    def figure(self, attr: str) -> float | None:
        """The median of ``attr`` over the runs, None when one timed out."""
        if not self.runs or any(r.timed_out for r in self.runs):
            return None
        values = [getattr(r, attr) for r in self.runs]
        return None if any(v is None for v in values) else median(values)


def questions(b: Build, work: Path) -> list[Question]:
    """The questions, as dupfinder arguments (the report's output file is added per run)."""
    q = b.question_args
    return [
        Question("stats", ["stats"]),
        Question("unique ONE_FILE", ["unique", q["file"]]),
        Question(f"unique FOLDER ({q['folder_files']} files)", ["unique", q["folder"]]),
        Question("dupes FOLDER", ["dupes", q["folder"]]),
        Question("dupes --format json", ["dupes", "--format", "json"]),
        Question("folders", ["folders"]),
        Question("report -o NEWFILE", ["report", "-o"]),
    ]


def ask(qs: list[Question], url: str, host: str, work: Path, runs: int) -> None:
    """Run every question ``runs`` times (a timeout ends that question's runs)."""
    home = work / "home"
    env = clean_env(DUPFINDER_DB_URL=url, XDG_CONFIG_HOME=str(home / "config"),
                    XDG_DATA_HOME=str(home / "data"), HOME=str(home))
    for q in qs:
        kind = q.args[0]
        timeout = TIMEOUTS.get(kind, DEFAULT_TIMEOUT)
        marker = b'"files": [' if "json" in q.args else None
        for i in range(runs):
            out = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
            args = [*q.args, str(out / "report.html")] if kind == "report" else q.args
            cmd = [sys.executable, "-m", "dupfinder", args[0], "--no-fallback",
                   "--host-label", host, *args[1:]]
            r = measure(f"{q.name} run {i + 1}", "", cmd, out=out, env=env, watch=marker,
                        timeout=timeout)
            q.runs.append(r)
            if r.timed_out:
                break


# --------------------------------------------------------------------------- report


def secs(v: float | None) -> str:
    return "timeout" if v is None else f"{v:.2f}"


def show(b: Build, qs: list[Question]) -> None:
    """Print the build and the questions' table."""
    say()
    say(f"build of {b.rows:,} rows on {b.hosts} hosts: {b.seconds['total']:.1f}s "
        f"({b.hashed_rows:,} hashed rows, {b.contents:,} contents, {b.groups:,} groups)")
    say(format_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in b.seconds.items()]))
    say(f"catalogue size (pg_database_size): {human_bytes(b.db_bytes)}")
    say(format_table(["relation", "MiB", "bytes/row"],
                     [[k, f"{v / MIB:.1f}", f"{v / b.rows:.1f}"] for k, v in b.relations.items()]))
    say()
    say(format_table(
        ["question", "median s", "runs", "peak PSS MiB", "peak RSS MiB", "first group s"],
        [[q.name, secs(q.figure("seconds")), len(q.runs),
          f"{max(r.peak_pss for r in q.runs) / MIB:.1f}",
          f"{max(r.peak_rss for r in q.runs) / MIB:.1f}",
          "-" if q.figure("first_group") is None else f"{q.figure('first_group'):.2f}"]
         for q in qs]))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--hosts", type=int, default=20)
    p.add_argument("--keep", metavar="URL",
                   help="fill this PostgreSQL database (made when missing) and keep it")
    p.add_argument("--build", choices=("sql", "orm"), default="sql",
                   help="sql: set-based SQL, secondary indexes made after the load (default);"
                        " orm: contents.build_all with every index in place")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, help="parent of the temp folder for outputs")
    p.add_argument("--json", type=Path, help="also write the figures to this new file")
    args = p.parse_args(argv)
    if args.rows < args.hosts or args.hosts < 1 or args.runs < 1:
        p.error("need --rows >= --hosts >= 1 and --runs >= 1")
    return args


@contextlib.contextmanager
def catalogue(keep: str | None) -> Iterator[tuple[str, str]]:
    """(URL, where it lives): the --keep database, or a fresh one dropped at the end."""
    if keep:
        url = make_url(keep)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        with contextlib.suppress(Exception):
            create_pg_database(url)  # fails when it exists: then it is filled as it is
        yield url_string(url), f"kept database {url.database} (PostgreSQL {pg_version(url)})"
        return
    with postgres() as pg:
        fresh = pg.fresh("bench_synthetic")
        yield url_string(fresh), f"PostgreSQL {pg_version(pg.base)}: {pg.origin}"


def main(argv: list[str] | None = None) -> int:
    """Build, ask, report, optionally write JSON."""
    args = parse_args(argv)
    if args.json is not None and (args.json.exists() or args.json.is_symlink()):
        raise SystemExit(f"{args.json} exists; give a new path for --json")
    version = code_version()
    say(f"dupfinder {version}, {os.cpu_count()} CPUs, {args.rows:,} rows, {args.hosts} hosts, "
        f"build {args.build}")
    with contextlib.ExitStack() as stack:
        if args.work is not None:
            args.work.mkdir(parents=True, exist_ok=True)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="dupfinder-synthetic-", dir=args.work))).resolve()
        url, origin = stack.enter_context(catalogue(args.keep))
        say(origin)
        say("build:")
        b = build(url, args.rows, args.hosts, args.seed, args.build)
        say(f"  built in {b.seconds['total']:.1f}s, catalogue {human_bytes(b.db_bytes)}")
        qa = b.question_args
        say(f"questions as {qa['host']}: ONE_FILE {qa['file']}, FOLDER {qa['folder']}")
        qs = questions(b, work)
        ask(qs, url, qa["host"], work, args.runs)
    show(b, qs)
    if args.json is not None:
        data = {"code": version, "cpus": os.cpu_count(), "origin": origin,
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
                "build": asdict(b),
                "questions": [{"name": q.name, "args": q.args,
                               "median_seconds": q.figure("seconds"),
                               "median_first_group": q.figure("first_group"),
                               "timed_out": any(r.timed_out for r in q.runs),
                               "runs": [asdict(r) for r in q.runs]} for q in qs]}
        with open(args.json, "x") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        say(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
