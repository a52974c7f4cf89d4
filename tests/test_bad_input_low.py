"""More bad input: null config sections, hostile JSON, absurd sizes, malformed database URLs
and connection options, and a read-only SQLite catalogue. Each case gets one clear line
naming what the user typed and a non-zero exit, never a traceback; the read-only catalogue
must still serve the reading commands."""

from __future__ import annotations

import gc
import sqlite3  # noqa: F401  (loaded before forking to nobody, who cannot read it later)
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.helpers import as_unprivileged, run_captured, write
from tests.pg_server import free_port


def one_error(res: Result, code: int = 2) -> str:
    """The single ``dupfinder: error:`` line of a failed run (asserting the exit code)."""
    lines = res.err.strip().splitlines()
    assert res.code == code, (res.code, res.err)
    assert len(lines) == 1, res.err
    assert lines[0].startswith("dupfinder: error: "), lines[0]
    assert "Traceback" not in res.err + res.out
    return lines[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with one pair of duplicates."""
    write(tmp_path / "tree" / "a", "dup")
    write(tmp_path / "tree" / "b", "dup")
    return tmp_path / "tree"


@pytest.mark.parametrize("section", ["database", "fallback"])
def test_null_config_section_is_a_config_error(section: str, tmp_path: Path, cli) -> None:
    cfg = write(tmp_path / "config.json", f'{{"{section}": null}}')
    line = one_error(cli("--config", cfg, "config", "show"))
    assert f"key '{section}' must be an object, not null" in line
    assert str(cfg) in line


def test_deeply_nested_json_config_is_a_config_error(tmp_path: Path, cli) -> None:
    cfg = write(tmp_path / "config.json", "[" * 100_000)
    line = one_error(cli("--config", cfg, "config", "show"))
    assert str(cfg) in line
    assert "nested too deeply" in line


def test_duplicate_key_in_config_is_rejected(tmp_path: Path, cli) -> None:
    cfg = write(tmp_path / "config.json",
                '{"database": {"port": 5432, "host": "a", "port": 6543}}')
    line = one_error(cli("--config", cfg, "config", "show"))
    assert "duplicate key 'port'" in line
    assert str(cfg) in line


@pytest.mark.parametrize("value", ["99999999999999999999999", "1" + "0" * 400,
                                   "9" * 5000, "9223372036854775808", "9000000TiB",
                                   "8388608TiB"])
def test_absurd_size_is_a_usage_error(value: str, tree: Path, tmp_path: Path, cli) -> None:
    res = cli("scan", tree, "--db-url", f"sqlite:///{tmp_path}/cat.db", "--min-size", value)
    line = one_error(res)
    assert "--min-size" in line
    assert value[:40] in line
    assert "too large" in line
    assert not (tmp_path / "cat.db").exists()


def test_size_at_the_limit_is_accepted() -> None:
    from dupfinder.units import parse_size

    assert parse_size(str(2**63 - 1), "--max-size") == 2**63 - 1
    assert parse_size("1.5k") == 1536


@pytest.mark.parametrize("option", ["--chunk-size", "--prefix-size"])
def test_huge_chunk_size_is_a_usage_error(option: str, tree: Path, tmp_path: Path,
                                          cli) -> None:
    res = cli("scan", tree, "--db-url", f"sqlite:///{tmp_path}/cat.db", "-p", "1",
              option, "100GiB")
    line = one_error(res)
    assert f"{option} 100GiB" in line or f"{option} 100.0 GiB" in line
    assert "at most 256 MiB" in line
    assert not (tmp_path / "cat.db").exists()


@pytest.mark.parametrize("url", ["postgresql://u@host:notaport/db",
                                 "postgresql://u:s3cret@host:notaport/db"])
def test_non_numeric_port_in_url_is_a_config_error(url: str, tree: Path, cli) -> None:
    line = one_error(cli("scan", tree, "--db-url", url))
    assert "--db-url: not a valid database URL" in line
    assert "host:notaport" in line
    assert "s3cret" not in line


@pytest.mark.parametrize("query, expect", [("", "port 99999 is out of range"),
                                           ("", "port 0 is out of range"),
                                           ("?sslmode=bogus", "invalid sslmode value"),
                                           ("?connect_timeout=soon", "connect_timeout"),
                                           ("?foo=bar", 'invalid connection option "foo"')])
def test_invalid_connection_setting_never_falls_back(query: str, expect: str, tree: Path,
                                                     tmp_path: Path, cli) -> None:
    port = expect.split()[1] if expect.startswith("port") else str(free_port())
    fallback = tmp_path / "fallback.db"
    cfg = write(tmp_path / "config.json",
                f'{{"fallback": {{"enabled": true, "sqlite_path": "{fallback}"}}}}')
    url = f"postgresql://u@127.0.0.1:{port}/db{query}"
    line = one_error(cli("--config", cfg, "scan", tree, "--db-url", url))
    assert expect in line
    assert "falling back" not in line
    assert not fallback.exists()


def test_read_only_sqlite_catalogue_serves_reading_commands(shared_tmp: Path, cli) -> None:
    tree = shared_tmp / "tree"
    write(tree / "a", "dup")
    write(tree / "b", "dup")
    folder = shared_tmp / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder}/cat.db"
    assert cli("scan", tree, "--db-url", url, "-q", "-p", "1").code == 0
    gc.collect()  # drop any connection the in-process run left for the collector
    assert sorted(p.name for p in folder.iterdir()) == ["cat.db"]  # no -wal / -shm left
    (folder / "cat.db").chmod(0o444)
    folder.chmod(0o555)

    code, out, err = as_unprivileged(lambda: run_captured(["dupes", "--db-url", url]))
    assert (code, err) == (0, "1 group, 3 B wasted\n"), err
    assert f"{tree}/a" in out and f"{tree}/b" in out

    code, out, err = as_unprivileged(lambda: run_captured(["stats", "--db-url", url]))
    assert (code, err) == (0, ""), err
    assert "duplicate groups: 1 (2 files)" in out

    write(tree / "c", "dup")
    tree.chmod(0o755)
    code, out, err = as_unprivileged(lambda: run_captured(["scan", str(tree), "--db-url",
                                                            url, "-q", "-p", "1"]))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("dupfinder: error: "), lines[0]
    assert f"SQLite database {folder}/cat.db is read-only" in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert sorted(p.name for p in folder.iterdir()) == ["cat.db"]
