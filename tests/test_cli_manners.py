"""How the command line behaves as a Unix tool: closed pipes, bare invocation and help,
shell completion, the database it opens (never another one than asked for), how it counts,
and errors that name what the user typed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dupfinder import Catalogue
from dupfinder.cli import cli as cli_group
from dupfinder.config import load_settings, parse_db_url
from dupfinder.errors import ConfigError, DatabaseUnreachable
from dupfinder.reporting import Silent
from tests.helpers import HOST, blob, write
from tests.pg_server import free_port

REPO = Path(__file__).resolve().parents[1]
PIPE_CLOSED = (0, 141)  # what a tool may end with when its reader goes away


def run(*args: str, stdout: int | None = subprocess.PIPE, env: dict[str, str] | None = None,
        timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    """The real console entry point (``python -m dupfinder``) of this checkout."""
    return subprocess.run([sys.executable, "-m", "dupfinder", *args], stdout=stdout,
                          stderr=subprocess.PIPE, env=env or child_env(), timeout=timeout)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    env.pop("_DUPFINDER_COMPLETE", None)
    env.update(extra)
    return env


def sqlite_catalogue(tmp: Path, groups: int, name_len: int = 1) -> str:
    """A SQLite catalogue holding ``groups`` duplicate pairs of this test host's files."""
    url = f"sqlite:///{tmp / 'cat.db'}"
    folder = tmp / "tree" / ("d" * name_len)
    for i in range(groups):
        data = f"content {i}\n".encode()
        write(folder / f"a{i:05}", data)
        write(folder / f"b{i:05}", data)
    with Catalogue.open(url, host=HOST, fallback=False) as cat:
        cat.scan([tmp / "tree"], processes=1)
    return url


# 1. a reader that closes the pipe early -----------------------------------------------------


@pytest.fixture(scope="module")
def big_catalogue(tmp_path_factory: pytest.TempPathFactory) -> str:
    # ~1500 groups of ~400 bytes each: far more than a pipe holds (64 KiB)
    return sqlite_catalogue(tmp_path_factory.mktemp("big"), 1500, name_len=120)


@pytest.mark.parametrize(("fmt", "first_line"), [
    ("text", rb"group 1: 2 files, (\d+) B each \(\1 bytes\), \S+ \w+, \1 B wasted\n"),
    ("fdupes", rb"/.*/[ab]\d{5}\n"),
    ("json", rb'\{"generated": .*"groups": \[\n'),
], ids=["text", "fdupes", "json"])
def test_dupes_into_head_closing_early_is_silent(big_catalogue: str, fmt: str,
                                                 first_line: bytes) -> None:
    # each group's two paths alone take 2 x 140 bytes: 1500 groups are 400 KiB and more,
    # so the pipe fills, head reads its line and leaves, and dupfinder's next write fails
    producer = subprocess.Popen(
        [sys.executable, "-m", "dupfinder", "dupes", "--db-url", big_catalogue, "-f", fmt],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone reads it now
    first, _ = head.communicate(timeout=120)
    err = producer.stderr.read()
    code = producer.wait(timeout=120)
    assert re.fullmatch(first_line, first), first
    assert err == b"", err.decode(errors="replace")
    assert code in PIPE_CLOSED


@pytest.mark.parametrize("args", [
    ["--help"], ["stats"], ["dupes"], ["dupes", "-f", "fdupes"], ["dupes", "-f", "json"],
    ["config", "show"], ["completion", "bash"],
])
def test_stdout_closed_before_the_first_write_is_silent(tmp_path: Path, args: list[str]
                                                        ) -> None:
    url = sqlite_catalogue(tmp_path, 3)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write gets EPIPE
    try:
        needs_db = args[0] not in ("--help", "completion")
        done = run(*args, *(["--db-url", url] if needs_db else []), stdout=write_end)
    finally:
        os.close(write_end)
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    assert done.returncode in PIPE_CLOSED


# 2. bare invocation and the command summaries -----------------------------------------------


def test_bare_dupfinder_prints_the_help_to_stdout_and_succeeds() -> None:
    done = run()
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.startswith(b"Usage: dupfinder ")
    assert b"Commands:" in done.stdout and b"error:" not in done.stdout
    sub = run("config")
    assert (sub.returncode, sub.stderr) == (0, b"")
    assert sub.stdout.startswith(b"Usage: dupfinder config ")


def test_help_shows_every_command_summary_uncut() -> None:
    done = run("--help", env=child_env(COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "..." not in text.split("Commands:", 1)[1]
    groups = [cli_group, cli_group.commands["config"]]
    for group in groups:
        for name, cmd in group.commands.items():  # type: ignore[attr-defined]
            assert cmd.short_help, f"{name} has no one-line summary"
            assert len(cmd.short_help) <= 60, name  # fits on its line at 80 columns
            if group is cli_group:
                assert re.search(rf"^  {name}\s+{re.escape(cmd.short_help)}$", text, re.M), name
    sub = run("config", "--help").stdout.decode()
    assert re.search(r"^  show\s+" + re.escape(cli_group.commands["config"]
                                             .commands["show"].short_help) + "$", sub, re.M)


# 3. shell completion ------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_what_click_generates(shell: str) -> None:
    printed = run("completion", shell)
    assert printed.returncode == 0, printed.stderr
    generated = run(env=child_env(_DUPFINDER_COMPLETE=f"{shell}_source"))
    assert generated.returncode == 0, generated.stderr
    assert printed.stdout == generated.stdout
    assert b"_DUPFINDER_COMPLETE" in printed.stdout


def test_sourcing_the_bash_completion_completes_commands(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed for this test"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "dupfinder"  # the completion function runs `dupfinder` from PATH
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dupfinder "$@"\n')
    shim.chmod(0o755)
    script = (
        'source <(dupfinder completion bash) || exit 3\n'
        'declare -F _dupfinder_completion || exit 4\n'
        'complete -p dupfinder || exit 5\n'
        'COMP_WORDS=(dupfinder sc); COMP_CWORD=1\n'
        '_dupfinder_completion dupfinder\n'
        'echo "reply: ${COMPREPLY[*]}"\n'
    )
    env = child_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "_dupfinder_completion" in done.stdout
    assert "-F _dupfinder_completion dupfinder" in done.stdout
    assert "reply: scan" in done.stdout


# 4. an explicit database is never swapped for another ---------------------------------------


def dead_pg_url() -> str:
    return f"postgresql://me:sekrit-pw@127.0.0.1:{free_port()}/elsewhere"


def fallback_file(isolated_env: Path) -> Path:
    return isolated_env / "data" / "dupfinder" / "file_hashes.db"


def test_unreachable_db_url_is_an_error_naming_it(cli, isolated_env: Path) -> None:
    url = dead_pg_url()
    res = cli("stats", "--db-url", url)
    lines = res.err.strip().splitlines()
    assert res.code == 1, res.err
    assert len(lines) == 1 and lines[0].startswith("dupfinder: error: "), res.err
    assert url.replace("sekrit-pw", "***") in lines[0]
    assert "--db-url" in lines[0] and "sekrit-pw" not in res.err + res.out
    assert "falling back" not in res.err
    assert not fallback_file(isolated_env).exists()


def test_unreachable_env_db_url_is_an_error_naming_it(cli, isolated_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = dead_pg_url().replace("postgresql://", "postgres://")
    monkeypatch.setenv("DUPFINDER_DB_URL", url)
    res = cli("stats")
    assert res.code == 1, res.err
    assert "$DUPFINDER_DB_URL" in res.err and url.replace("sekrit-pw", "***") in res.err
    assert "sekrit-pw" not in res.err
    assert not fallback_file(isolated_env).exists()


def test_library_open_of_an_explicit_url_never_falls_back(isolated_env: Path) -> None:
    warned: list[str] = []

    class Hearing(Silent):
        def warn(self, line: str) -> None:
            warned.append(line)

        info = warn

    with pytest.raises(DatabaseUnreachable):
        Catalogue.open(dead_pg_url(), fallback=True, reporter=Hearing())
    assert warned == [] and not fallback_file(isolated_env).exists()
    assert not load_settings(db_url=dead_pg_url()).fallback_allowed
    assert load_settings().fallback_allowed  # the built-in default server may fall back


# 5. postgres:// and plain paths -------------------------------------------------------------


def test_postgres_scheme_is_postgresql(cli, pg_url: str, tmp_path: Path) -> None:
    heroku = "postgres://" + pg_url.split("://", 1)[1]  # postgresql[+driver]://...
    assert parse_db_url(heroku, "--db-url").get_backend_name() == "postgresql"
    write(tmp_path / "t/a", "dup")
    write(tmp_path / "t/b", "dup")
    res = cli("scan", tmp_path / "t", "--db-url", heroku, "-q", "-p", "1")
    assert res.code == 0, res.err
    res = cli("stats", "--db-url", heroku)
    assert res.code == 0, res.err
    assert "duplicate groups: 1 (2 files)" in res.out


def test_plain_paths_are_sqlite_files(cli, isolated_env: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = {
        str(tmp_path / "abs.db"): tmp_path / "abs.db",
        "rel.db": isolated_env / "rel.db",  # the tests run in isolated_env
        "sub/rel.db": isolated_env / "sub/rel.db",
        "./dot.db": isolated_env / "dot.db",
        "~/tilde.db": tmp_path / "home/tilde.db",
    }
    for given, where in cases.items():
        res = cli("stats", "--db-url", given)
        assert res.code == 0, (given, res.err)
        assert where.is_file(), given
    with pytest.raises(ConfigError) as err:
        parse_db_url("::nonsense::", "--db-url")
    assert "'::nonsense::'" in str(err.value) and "((" not in str(err.value)


# 6. config show says what is in effect ------------------------------------------------------


def rows(out: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+(.*?)  \[(.*)\]$", line)
        assert m, line
        found[m.group(1)] = (m.group(2), m.group(3))
    return found


def test_config_show_with_a_db_url_shows_what_is_in_effect(cli, tmp_path: Path) -> None:
    res = cli("config", "show", "--db-url", f"sqlite:///{tmp_path}/x.db")
    assert res.code == 0, res.err
    shown = rows(res.out)
    assert shown["database.backend"] == ("sqlite", "--db-url")
    assert shown["database.sqlite_path"] == (f"{tmp_path}/x.db", "--db-url")
    for key in ("host", "port", "user", "password", "database"):
        assert "not used" in shown[f"database.{key}"][1], key
    assert "not used" in shown["fallback.enabled"][1]
    assert "not used" not in shown["database.pool_size"][1]

    pg = rows(cli("config", "show", "--db-url", "postgres://me:pw1234@db.example:6543/cat").out)
    assert pg["database.backend"] == ("postgresql", "--db-url")
    assert pg["database.host"] == ("db.example", "--db-url")
    assert pg["database.port"] == ("6543", "--db-url")
    assert pg["database.password"] == ("***", "--db-url")
    assert "not used" in pg["database.sqlite_path"][1]
    assert pg["db_url"] == ("postgres://me:***@db.example:6543/cat", "--db-url")

    default = rows(cli("config", "show").out)
    assert default["database.backend"] == ("postgresql", "default")
    assert "not used" not in default["fallback.enabled"][1]


# 7. counts and hosts ------------------------------------------------------------------------


def test_counts_are_singular_for_one(cli, db_url: str, tmp_path: Path) -> None:
    write(tmp_path / "t/a.txt", "dup")
    write(tmp_path / "t/b.txt", "dup")
    write(tmp_path / "t/u.txt", "unique")
    res = cli("scan", tmp_path / "t", "--db-url", db_url, "-p", "1", "--host-label", HOST)
    assert res.code == 0, res.err
    assert "duplicates: 1 group, 2 files, 3 B wasted" in res.out
    assert "0 errors" in res.out and "hashed: 2 files" in res.out
    res = cli("dupes", "--db-url", db_url)
    assert res.err == "1 group, 3 B wasted\n"
    assert "group 1: 2 files, 3 B each (3 bytes)" in res.out
    out = cli("stats", "--db-url", db_url).out
    assert "on 1 host\n" in out and "host(s)" not in out
    assert re.search(r"^\s+3 B\s+1 file\s+\.txt$", out, re.M), out
    assert "(3 bytes)" in out
    res = cli("report", "-o", tmp_path / "r.html", "--db-url", db_url)
    assert re.search(r"r\.html: 1 duplicate group, \d+ files, ", res.err), res.err
    assert " 1 groups" not in out + res.err and " 1 files" not in out + res.err


def test_hosts_are_shown_only_when_several(cli, db_url: str, tmp_path: Path) -> None:
    data = blob(7, 2000)
    write(tmp_path / "mine/a", data)
    write(tmp_path / "mine/b", data)
    assert cli("scan", tmp_path / "mine", "--db-url", db_url, "-q", "-p", "1",
               "--host-label", HOST).code == 0
    alone = cli("dupes", "--db-url", db_url).out
    assert f"\n  {tmp_path}/mine/a\n" in alone and f"{HOST}:" not in alone
    forced = cli("dupes", "--db-url", db_url, "--show-host").out
    assert f"  {HOST}: {tmp_path}/mine/a\n" in forced

    write(tmp_path / "nas/c", data)
    assert cli("scan", tmp_path / "nas", "--db-url", db_url, "-q", "-p", "1",
               "--host-label", "nas").code == 0
    assert cli("scan", tmp_path / "mine", "--db-url", db_url, "-q", "-p", "1",
               "--host-label", HOST).code == 0
    mixed = cli("dupes", "--db-url", db_url).out
    assert f"  {HOST}: {tmp_path}/mine/a\n" in mixed and f"  nas: {tmp_path}/nas/c\n" in mixed
    only_mine = cli("dupes", "--db-url", db_url, "--host", HOST).out
    assert f"\n  {tmp_path}/mine/a\n" in only_mine and f"{HOST}:" not in only_mine


# 8. errors name what the user typed ---------------------------------------------------------


@pytest.mark.parametrize(("given", "expected", "never"), [
    ("postgresql://u:pw999@h:0/db", "port 0 is out of range (1-65535) in "
     "postgresql://u:***@h:0/db", "psycopg2"),
    ("postgresql://u:pw999@h:nope/db", "'postgresql://u:***@h:nope/db' (the port must be a "
     "number)", "pw999"),
    ("mysql://u@h/db", "unsupported database 'mysql' in mysql://u@h/db", "(("),
    ("postgresql://u@h", "the PostgreSQL URL postgresql://u@h names no database", "psycopg2"),
    ("u:pw999@h/db", "not a valid database URL: 'u:***@h/db'", "pw999"),
])
def test_db_url_errors_show_the_url_as_typed(cli, given: str, expected: str,
                                             never: str) -> None:
    res = cli("stats", "--db-url", given)
    assert res.code == 2, res.err
    assert res.err.startswith("dupfinder: error: --db-url: ") and expected in res.err, res.err
    assert never not in res.err


def test_missing_config_file_is_named_as_typed(cli) -> None:
    res = cli("--config", "~/nope/cfg.json", "config", "show")
    assert res.code == 2
    assert "--config: no such file: ~/nope/cfg.json" in res.err
