"""Helpers shared by the benchmark scripts: timing, medians, tables and databases.

PostgreSQL comes from ``$DUPFINDER_BENCH_PG_URL`` when it is set (the role needs the right
to create databases), otherwise from a throw-away server started with the test suite's
:class:`tests.pg_server.PgServer` (Debian's ``postgresql`` package must be installed).
Every benchmark database gets a fresh name and is dropped again at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_BENCH_PG_URL = "DUPFINDER_BENCH_PG_URL"
# dupfinder reads these; a benchmark must not pick up the developer's config or catalogue
DUPFINDER_ENV = ("DUPFINDER_CONFIG", "DUPFINDER_DB_URL", "DUPFINDER_HOST_LABEL")


# --------------------------------------------------------------------------- timing


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn`` once; returns (wall-clock seconds, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class CommandFailed(RuntimeError):
    """A benchmarked command ended with a non-zero status."""


def run_command(cmd: Sequence[str], *, cwd: str | Path | None = None,
                env: Mapping[str, str] | None = None, capture: bool = False,
                ok_codes: Sequence[int] = (0,)) -> tuple[float, str]:
    """Run ``cmd``, stdout to /dev/null (or captured when ``capture``); returns
    (wall-clock seconds, captured stdout or ""). Raises :class:`CommandFailed` with the
    tail of stderr when the exit status is not one of ``ok_codes``."""
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=capture, check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(
            errors="replace")
        raise CommandFailed(f"{cmd[0]} exited with {proc.returncode}: {err.strip()[-2000:]}")
    return seconds, proc.stdout if capture else ""


def code_version() -> str:
    """The dupfinder commit being measured, e.g. ``5c8f0b2`` or ``5c8f0b2 + uncommitted
    changes in 2 files under dupfinder/`` (read-only git commands; "?" without git)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--", "dupfinder"], capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    if dirty:
        return f"{head} + uncommitted changes in {len(dirty)} files under dupfinder/"
    return head


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without dupfinder's own variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in DUPFINDER_ENV}
    env.update(extra)
    return env


def missing_tools(names: Sequence[str]) -> list[str]:
    """The programs among ``names`` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


# --------------------------------------------------------------------------- output


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``9.8 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - unreachable


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; the first column is left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def say(line: str = "") -> None:
    """Print a progress or result line at once (output may be piped into a log)."""
    print(line, flush=True)


# --------------------------------------------------------------------------- databases


def fresh_name(prefix: str) -> str:
    """A database or file name no earlier run used: ``<prefix>_<pid>_<random>``."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def sqlite_url(folder: str | Path, prefix: str) -> str:
    """A URL for a new SQLite file with a fresh name in ``folder``."""
    return f"sqlite:///{Path(folder).resolve() / (fresh_name(prefix) + '.db')}"


def url_string(url: URL) -> str:
    """The full URL (password included) for dupfinder; never print it."""
    return url.render_as_string(hide_password=False)


def _admin(url: URL) -> Engine:
    """An AUTOCOMMIT connection to the server's ``postgres`` database."""
    return create_engine(url.set(database="postgres"), poolclass=NullPool,
                         isolation_level="AUTOCOMMIT")


def create_pg_database(url: URL) -> None:
    """Create the (empty, schema-less) PostgreSQL database named in ``url``."""
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(url.database or "")
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()


def drop_pg_database(url: URL) -> None:
    """Drop the PostgreSQL database named in ``url`` (closing its other sessions)."""
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n AND pid <> pg_backend_pid()"),
                         {"n": url.database})
            quoted = engine.dialect.identifier_preparer.quote(url.database or "")
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
    finally:
        engine.dispose()


class PgDatabases:
    """Fresh PostgreSQL databases on one server, all dropped by :meth:`drop_all`."""

    def __init__(self, base: URL, origin: str) -> None:
        self.base = base
        self.origin = origin
        self.created: list[URL] = []

    def fresh(self, prefix: str) -> URL:
        """Create a new empty database; returns its URL."""
        url = self.base.set(database=fresh_name(prefix))
        create_pg_database(url)
        self.created.append(url)
        return url

    def drop_all(self) -> None:
        """Drop every database :meth:`fresh` made (best effort)."""
        for url in self.created:
            with contextlib.suppress(Exception):
                drop_pg_database(url)
        self.created.clear()


def _pg_server_class() -> Any:
    """``tests.pg_server.PgServer``, importable however the script was started."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.pg_server import PgServer

    return PgServer


@contextlib.contextmanager
def postgres() -> Iterator[PgDatabases]:
    """A PostgreSQL server for the benchmark: ``$DUPFINDER_BENCH_PG_URL`` or a throw-away
    one (stopped and removed on exit). Databases made through it are dropped on exit."""
    given = os.environ.get(ENV_BENCH_PG_URL)
    server = None
    if given:
        base = make_url(given)
        if base.drivername == "postgresql":
            base = base.set(drivername="postgresql+psycopg2")
        origin = f"${ENV_BENCH_PG_URL} ({base.render_as_string(hide_password=True)})"
    else:
        server = _pg_server_class()()
        try:
            server.init()
            server.start()
        except BaseException:
            server.cleanup()  # no half-made cluster left in /tmp
            raise
        base = server.url()
        origin = (f"throw-away server on 127.0.0.1:{server.port} (fsync=off, "
                  "synchronous_commit=off)")
    dbs = PgDatabases(base, origin)
    try:
        yield dbs
    finally:
        dbs.drop_all()
        if server is not None:
            server.cleanup()


def pg_version(url: URL) -> str:
    """The server's ``server_version`` setting."""
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


def tree_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line of a benchmark that measures one TREE, with ``--work``."""
    p = argparse.ArgumentParser(prog=f"python -m bench.{module}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tree", type=Path, metavar="TREE")
    p.add_argument("--work", type=Path,
                   help="folder for catalogues and tool outputs (default: a new temp folder)")
    return p


def tree_folder(tree: Path) -> Path:
    """TREE made absolute; anything but a folder ends the benchmark."""
    resolved = tree.resolve()
    if not resolved.is_dir():
        raise SystemExit(f"not a folder: {resolved}")
    return resolved

