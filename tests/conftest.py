"""Shared fixtures: both database backends, an isolated environment, a CLI runner.

Every database test takes ``db_url`` (or ``db``) and so runs twice: on SQLite and on a real
PostgreSQL server (started here, or the one named by ``$DUPFINDER_TEST_PG_URL``). A skipped
PostgreSQL test fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from dupfinder import Catalogue
from dupfinder.cli import main
from dupfinder.config import load_settings
from dupfinder.db.engine import Database, open_database
from tests.helpers import btrfs_mount
from tests.pg_server import PgServer

ENV_TEST_PG = "DUPFINDER_TEST_PG_URL"
_skipped: list[str] = []

# the report's page fixtures (``report``, ``page``), for the report's browser tests
pytest_plugins = ["tests.pages"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped:
        pg = sum("postgresql" in n for n in _skipped)
        print(f"\nFAILED: {len(_skipped)} test(s) were skipped ({pg} PostgreSQL); "
              "a skip counts as a failure:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    """The admin URL of a running PostgreSQL server for the whole session."""
    given = os.environ.get(ENV_TEST_PG)
    if given:
        yield make_url(given)
        return
    server = PgServer()
    try:
        server.init()
        server.start()
        yield server.url()
    finally:
        server.cleanup()


def _drop_database(admin_url: URL, name: str) -> None:
    engine = create_engine(admin_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_server: URL) -> Iterator[str]:
    """A URL of a fresh PostgreSQL database (created by dupfinder on first use)."""
    name = f"dupfinder_t_{uuid.uuid4().hex[:12]}"
    yield pg_server.set(database=name).render_as_string(hide_password=False)
    _drop_database(pg_server, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL on each backend in turn (SQLite files live outside ``tmp_path``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'catalogue.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An opened catalogue (schema created) on each backend in turn."""
    database = open_database(load_settings(db_url=db_url), no_fallback=True)
    yield database
    database.dispose()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder outside pytest's root-only temp folders, which the unprivileged user
    (``nobody``, see tests/helpers.py ``as_unprivileged``) can reach and write in."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="dupfinder-shared-"))
    base.chmod(0o777)
    yield base
    for folder, dirs, _files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(folder, d), 0o755)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cat(db_url: str) -> Iterator[Catalogue]:
    """The catalogue as a library user opens it, on each backend in turn, with the test
    host's label."""
    from tests.helpers import HOST

    with Catalogue.open(db_url, host=HOST, fallback=False) as catalogue:
        yield catalogue


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                 ) -> Path:
    """No test reads the developer's config, env or data folders."""
    home = tmp_path_factory.mktemp("home")
    for var in ("DUPFINDER_CONFIG", "DUPFINDER_DB_URL", "DUPFINDER_HOST_LABEL", "PGPASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    # the machine-wide action lock lives here: tests on parallel workers never share it
    (home / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    # send2trash reads $XDG_DATA_HOME once, at import: point its home trash here as well
    from send2trash import plat_other

    trash = home / "data" / "Trash"
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(home / "data"))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(trash))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(trash))
    monkeypatch.chdir(home)
    return home


@dataclass
class Result:
    """What a CLI invocation did."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]):
    """Run ``dupfinder ARGS`` in-process; returns a :class:`Result`."""

    def run(*args: str) -> Result:
        capfd.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        cap = capfd.readouterr()
        return Result(code, cap.out, cap.err)

    return run


CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def btrfs() -> Iterator[Path]:
    """The mount point of a btrfs made for the module that asks (a 300 MiB loop image,
    unmounted and removed after the module)."""
    with btrfs_mount() as mnt:
        yield mnt
