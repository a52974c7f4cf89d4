"""Bad input: every case gets one clear line on stderr and a non-zero exit, never a traceback,
and nothing already recorded is lost."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3  # noqa: F401  (loaded before forking to nobody, who cannot read it later)
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from dupfinder.db.models import SCHEMA_VERSION, SchemaInfo
from tests.helpers import as_unprivileged, run_captured, write
from tests.pg_server import free_port


@dataclass
class Env:
    """What a case may use: a scratch folder, a tree with files, a SQLite URL, PostgreSQL."""

    tmp: Path
    tree: Path
    sqlite: str
    pg: Callable[[], str]
    environ: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    prepare: Callable[[Env], list[str]]
    expect: str
    code: int = 2
    unprivileged: bool = False


def cfg(env: Env, content: str | dict) -> str:
    path = env.tmp / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def scan_with(*extra: str) -> Callable[[Env], list[str]]:
    return lambda env: ["scan", str(env.tree), "--db-url", env.sqlite, *extra]


def newer_schema(env: Env) -> list[str]:
    db = open_database(load_settings(db_url=env.sqlite))
    with db.session() as s:
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION + 5))
        s.commit()
    db.dispose()
    return ["scan", str(env.tree), "--db-url", env.sqlite]


def wrong_password(env: Env) -> list[str]:
    url = make_url(env.pg()).set(password="not-the-password")
    return ["scan", str(env.tree), "--db-url", url.render_as_string(hide_password=False)]


def unreachable(fallback: bool) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        path = cfg(env, {"database": {"host": "127.0.0.1", "port": free_port(),
                                      "connect_timeout": 2},
                         "fallback": {"enabled": fallback,
                                      "sqlite_path": str(env.tmp / "fb.db")}})
        return ["--config", path, "scan", str(env.tree)]

    return prepare


def symlink_loop(env: Env) -> list[str]:
    loop = env.tmp / "loop"
    loop.symlink_to(loop)
    return ["scan", str(loop), "--db-url", env.sqlite]


def fifo_root(env: Env) -> list[str]:
    os.mkfifo(env.tmp / "fifo")
    return ["scan", str(env.tmp / "fifo"), "--db-url", env.sqlite]


def socket_root(env: Env) -> list[str]:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(env.tmp / "sock"))
    return ["scan", str(env.tmp / "sock"), "--db-url", env.sqlite]


def not_a_database(env: Env) -> list[str]:
    bad = write(env.tmp / "garbage.db", b"this is not an SQLite file" * 100)
    return ["scan", str(env.tree), "--db-url", f"sqlite:///{bad}"]


def locked(kind: str) -> Callable[[Env], list[str]]:
    def prepare(env: Env) -> list[str]:
        target = env.tmp / f"locked_{kind}"
        if kind == "dir":
            target.mkdir()
        else:
            target.write_text("x")
        target.chmod(0)
        return ["scan", str(target), "--db-url", env.sqlite]

    return prepare


def missing_named(name: bytes) -> Callable[[Env], list[str]]:
    return lambda env: ["scan", os.fsdecode(os.path.join(os.fsencode(env.tmp), name)),
                        "--db-url", env.sqlite]


CASES = [
    # configuration files
    Case("malformed config", lambda e: ["--config", cfg(e, '{"database": {,}}'), "config",
                                        "show"], "invalid JSON at line 1, column 15"),
    Case("empty config", lambda e: ["--config", cfg(e, ""), "config", "show"],
         "config file is empty"),
    Case("config not an object", lambda e: ["--config", cfg(e, "[]"), "config", "show"],
         "top level must be a JSON object"),
    Case("wrong-typed config value", lambda e: ["--config", cfg(e, {"database": {"port": "x"}}),
                                                "config", "show"],
         "key 'database.port' must be an integer, not a string"),
    Case("unknown config key", lambda e: ["--config", cfg(e, {"databse": {}}), "config", "show"],
         "unknown key 'databse'"),
    Case("unknown nested key", lambda e: ["--config", cfg(e, {"fallback": {"path": "x"}}),
                                          "config", "show"], "unknown key 'fallback.path'"),
    Case("bad backend", lambda e: ["--config", cfg(e, {"database": {"backend": "oracle"}}),
                                   "config", "show"], "must be one of postgresql, sqlite"),
    Case("missing config file", lambda e: ["--config", str(e.tmp / "nope.json"), "config",
                                           "show"], "no such file"),
    Case("folder given as config file", lambda e: ["--config", str(e.tmp), "config", "show"],
         "is a folder; give the config file itself"),
    # database URLs and servers
    Case("invalid database URL", lambda e: ["scan", str(e.tree), "--db-url", "::nonsense::"],
         "--db-url: not a valid database URL"),
    Case("unsupported database", lambda e: ["scan", str(e.tree), "--db-url",
                                            "mysql://u@h/db"], "unsupported database 'mysql'"),
    Case("unsupported driver", lambda e: ["scan", str(e.tree), "--db-url",
                                          "postgresql+asyncpg://u@h/db"],
         "unsupported PostgreSQL driver 'asyncpg'"),
    Case("in-memory sqlite", lambda e: ["scan", str(e.tree), "--db-url", "sqlite://"],
         "in-memory SQLite"),
    Case("wrong password", wrong_password, "password authentication failed", code=1),
    Case("unreachable, no fallback", unreachable(False), "fallback to SQLite is off", code=1),
    Case("unreachable, --no-fallback", lambda e: ["--no-fallback", *unreachable(True)(e)],
         "fallback to SQLite is off", code=1),
    Case("sqlite path below a file", lambda e: ["scan", str(e.tree), "--db-url",
                                                f"sqlite:///{write(e.tmp / 'f', 'x')}/sub/x.db"],
         "cannot create the folder for SQLite database", code=1),
    Case("sqlite in a read-only folder", lambda e: ["scan", str(e.tree), "--db-url",
                                                    f"sqlite:///{ro_folder(e)}/x.db"],
         "cannot open SQLite database", code=1, unprivileged=True),
    Case("not a database file", not_a_database, "file is not a database", code=1),
    Case("newer schema version", newer_schema, "newer than this dupfinder", code=1),
    # paths
    Case("missing path", lambda e: ["scan", str(e.tmp / "nope"), "--db-url", e.sqlite],
         "no such file or directory"),
    Case("missing non-UTF-8 path", missing_named(b"caf\xe9"), "caf\\xe9"),
    Case("missing path with newline", missing_named(b"new\nline"), "new\\nline"),
    Case("broken symlink root", lambda e: ["scan", str(symlink(e, "dangling")), "--db-url",
                                           e.sqlite], "broken symbolic link"),
    Case("symlink loop root", symlink_loop, "too many levels of symbolic links"),
    Case("fifo root", fifo_root, "not a folder or regular file"),
    Case("socket root", socket_root, "not a folder or regular file"),
    Case("unreadable folder root", locked("dir"), "permission denied", unprivileged=True),
    Case("unreadable file root", locked("file"), "permission denied", unprivileged=True),
    Case("file where a folder is needed", lambda e: [
        "dedupe", str(e.tree), "--action", "move", "--to", str(write(e.tmp / "plainfile", "x")),
        "--db-url", e.sqlite], "is a file, not a folder"),
    # option values
    Case("invalid size string", scan_with("--min-size", "ten"), "invalid --min-size 'ten'"),
    Case("invalid max size", scan_with("--max-size", "1XB"), "invalid --max-size"),
    Case("invalid chunk size", scan_with("--chunk-size", "-3"), "invalid --chunk-size"),
    Case("tiny chunk size", scan_with("--chunk-size", "100"), "at least 4 KiB"),
    Case("negative process count", scan_with("-p", "-1"), "--processes must be at least 1"),
    Case("zero batch size", scan_with("-b", "0"), "--batch-size must be at least 1"),
    Case("non-numeric process count", scan_with("-p", "many"), "'many' is not a valid integer"),
    Case("conflicting options", scan_with("--include-empty", "--min-size", "1k"),
         "--include-empty conflicts with --min-size"),
    Case("max below min", scan_with("--min-size", "2k", "--max-size", "1k"),
         "--max-size is smaller than --min-size"),
    Case("zero depth", scan_with("--max-depth", "0"), "--max-depth must be at least 1"),
    Case("unknown algorithm", scan_with("-a", "crc32"), "'crc32' is not one of"),
    Case("unknown option", scan_with("--frobnicate"), "no such option '--frobnicate'"),
    Case("no path", lambda e: ["scan", "--db-url", e.sqlite], "missing argument 'PATHS...'"),
    Case("unknown command", lambda e: ["scna"], "no such command 'scna'"),
    Case("host label that is not UTF-8", lambda e: [
        "scan", str(e.tree), "--db-url", e.sqlite, "--host-label", os.fsdecode(b"h\xe9")],
        "must be printable UTF-8"),
    Case("host label with an escape sequence", lambda e: [
        "scan", str(e.tree), "--db-url", e.sqlite, "--host-label", "h\x1b[31m"],
        "must be printable UTF-8"),
    Case("reference with a host and no folder", lambda e: [
        "dupes", "--reference", "nas:", "--db-url", e.sqlite], "malformed reference"),
    Case("reference with a folder and no host", lambda e: [
        "dupes", "--reference", ":photos", "--db-url", e.sqlite], "malformed reference"),
]


def symlink(env: Env, name: str) -> Path:
    link = env.tmp / name
    link.symlink_to(env.tmp / "missing-target")
    return link


def ro_folder(env: Env) -> Path:
    folder = env.tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    # outside pytest's root-only temp folders: the unprivileged cases run as nobody
    base = Path(tempfile.mkdtemp(prefix="dupfinder-bad-"))
    tree = base / "tree"
    write(tree / "a", "dup")
    write(tree / "b", "dup")
    for p in (base, tree):
        p.chmod(0o777)
    for f in tree.iterdir():
        f.chmod(0o644)
    yield Env(tmp=base, tree=tree, sqlite=f"sqlite:///{base}/cat.db",
              pg=lambda: str(request.getfixturevalue("pg_url")))
    for folder, dirs, _files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(folder, d), 0o755)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, env: Env, cli) -> None:
    args = case.prepare(env)
    if case.unprivileged:
        code, out, err = as_unprivileged(lambda: run_captured(args))
    else:
        res = cli(*args)
        code, out, err = res.code, res.out, res.err
    lines = err.strip().splitlines()
    assert code == case.code, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("dupfinder: error: ")
    assert case.expect.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err + out


def test_unreachable_with_fallback_is_one_warning_and_works(env: Env, cli) -> None:
    res = cli(*unreachable(True)(env))
    assert res.code == 0
    warning = res.err.strip().splitlines()
    assert len(warning) == 1 and "falling back to SQLite at" in warning[0]
    # one short line: the gist of why, not the driver's two-clause message
    assert "(connection refused)" in warning[0] and "Is the server running" not in res.err
    assert "duplicates: 1 group," in res.out


@pytest.mark.parametrize("fmt", ["json", "csv", "text"])
def test_a_mistake_comes_before_any_output(env: Env, cli, fmt: str) -> None:
    res = cli("dupes", "--format", fmt, "--db-url", f"sqlite:///{env.tmp / 'empty.db'}")
    assert res.code == 2 and "no files catalogued yet" in res.err
    assert res.out == ""  # not the start of a JSON document or a CSV header


def test_quiet_silences_the_fallback_notice(env: Env, cli) -> None:
    res = cli("-q", *unreachable(True)(env))
    assert res.code == 0 and res.err == "" and res.out == ""
    res = cli(*unreachable(True)(env)[:2], "dupes", "-q")  # the notice on another command
    assert res.code == 0 and res.err == "", res.err


def test_a_failed_command_loses_nothing_recorded(env: Env, cli) -> None:
    assert cli("scan", str(env.tree), "--db-url", env.sqlite).code == 0
    assert cli("scan", str(env.tree), "--db-url", env.sqlite, "--min-size", "bad").code == 2
    assert cli("scan", str(env.tmp / "missing"), "--db-url", env.sqlite).code == 2
    res = cli("scan", str(env.tree), "--db-url", env.sqlite)
    assert "files: 2 seen, 0 new, 0 changed, 2 unchanged" in res.out
    assert "duplicates: 1 group," in res.out


def test_files_vanishing_during_walk_and_hashing_are_counted(env: Env, cli,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from dupfinder.scan import hashing, walk

    for i in range(4):
        write(env.tree / f"v{i}", "same body")
    real_scandir = os.scandir
    real_open = hashing.open_readonly

    def vanishing_scandir(path):  # v0 disappears once the walk has listed the folder
        if not isinstance(path, str) or Path(path) != env.tree:
            return real_scandir(path)
        return _Listing(list(real_scandir(path)), lambda: (env.tree / "v0").unlink())

    def vanishing_open(path: str) -> int:  # v1 disappears just before it is hashed
        if path.endswith("/v1"):
            os.unlink(path)
        return real_open(path)

    monkeypatch.setattr(walk.os, "scandir", vanishing_scandir)
    monkeypatch.setattr(hashing, "open_readonly", vanishing_open)
    res = cli("scan", str(env.tree), "--db-url", env.sqlite, "-v", "-p", "1")
    assert res.code == 0
    assert "2 errors" in res.out
    assert f"{env.tree}/v0: No such file or directory" in res.err
    assert f"{env.tree}/v1: No such file or directory" in res.err
    assert "Traceback" not in res.err


class _Listing:
    """A stand-in for the scandir iterator over a fixed list of entries."""

    def __init__(self, entries: list[os.DirEntry[str]], on_first: Callable[[], None]) -> None:
        self._it = iter(entries)
        self._on_first: Callable[[], None] | None = on_first

    def __iter__(self) -> _Listing:
        return self

    def __next__(self) -> os.DirEntry[str]:
        if self._on_first is not None:
            self._on_first()
            self._on_first = None
        return next(self._it)

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        """Nothing to release."""
