"""Configuration lookup, validation, URL building and masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dupfinder.config import load_settings, mask_url, parse_db_url
from dupfinder.errors import ConfigError, in_words


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_defaults_are_postgresql_file_hashes_on_localhost(isolated_env: Path) -> None:
    s = load_settings()
    url = s.url()
    assert s.config_file is None
    assert url.get_backend_name() == "postgresql"
    assert (url.host, url.port, url.database) == ("localhost", 5432, "file_hashes")
    assert s.sources["database.host"] == "default"


def test_lookup_order_explicit_env_cwd_user(isolated_env: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    user_cfg = isolated_env / "config" / "dupfinder" / "config.json"
    user_cfg.parent.mkdir(parents=True)
    write(user_cfg, {"database": {"database": "from_user"}})
    assert load_settings().database["database"] == "from_user"

    write(isolated_env / "config.json", {"database": {"database": "from_cwd"}})
    assert load_settings().database["database"] == "from_cwd"

    env_cfg = write(tmp_path / "env.json", {"database": {"database": "from_env"}})
    monkeypatch.setenv("DUPFINDER_CONFIG", str(env_cfg))
    assert load_settings().database["database"] == "from_env"

    explicit = write(tmp_path / "x.json", {"database": {"database": "from_option"}})
    s = load_settings(config_path=str(explicit))
    assert s.database["database"] == "from_option"
    assert str(explicit) in s.sources["database.database"]


def test_db_url_option_beats_env_beats_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path("config.json"), {"database": {"backend": "sqlite", "sqlite_path": "/tmp/f.db"}})
    assert load_settings().url().database == "/tmp/f.db"
    monkeypatch.setenv("DUPFINDER_DB_URL", "postgresql://a@h1/env_db")
    assert load_settings().url().database == "env_db"
    s = load_settings(db_url="postgresql://a@h2/opt_db")
    assert s.url().database == "opt_db"
    assert in_words(s.sources["db_url"]) == "db_url"  # the field; the CLI says --db-url


def test_password_with_special_characters_builds_a_correct_url() -> None:
    password = "p@ss:w/rd%#?"
    path = write(Path("config.json"), {"database": {"user": "me", "password": password}})
    url = load_settings(config_path=str(path)).url()
    assert url.password == password
    rendered = url.render_as_string(hide_password=False)
    assert make_url(rendered).password == password  # survives a round trip
    assert password not in mask_url(url)


def test_config_show_masks_password(cli) -> None:
    write(Path("config.json"), {"database": {"password": "hunter2-secret"}})
    res = cli("config", "show")
    assert res.code == 0
    assert "hunter2-secret" not in res.out + res.err
    assert "***" in res.out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"database": {"port": 5432,}}', "line 1, column"),
        ("{\n  \"database\": \n}", "line 3, column 1"),
        ("", "empty"),
        ("[1, 2]", "must be a JSON object"),
        ({"colour": "blue"}, "unknown key 'colour'"),
        ({"database": {"hots": "x"}}, "unknown key 'database.hots'"),
        ({"database": {"port": "5432"}}, "'database.port' must be an integer"),
        ({"database": {"port": True}}, "'database.port' must be an integer"),
        ({"database": {"port": 70000}}, "out of range"),
        ({"database": {"backend": "mysql"}}, "must be one of postgresql, sqlite"),
        ({"database": {"pool_size": 0}}, "pool_size' must be at least 1"),
        ({"database": []}, "key 'database' must be an object"),
        ({"fallback": {"enabled": "yes"}}, "'fallback.enabled' must be true/false"),
        ({"host_label": ""}, "host_label"),
    ],
)
def test_bad_config_names_file_and_problem(content: object, expected: str) -> None:
    path = write(Path("bad.json"), content)
    with pytest.raises(ConfigError) as err:
        load_settings(config_path=str(path))
    assert expected in str(err.value)
    assert "bad.json" in str(err.value)


def test_bad_config_is_one_line_exit_2(cli) -> None:
    write(Path("config.json"), '{"database": {"port": 5432,}}')
    res = cli("config", "show")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert "config.json" in res.err and "line 1" in res.err


def test_missing_explicit_config_file(cli) -> None:
    res = cli("--config", "/nonexistent/cfg.json", "config", "show")
    assert res.code == 2
    assert "no such file" in res.err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "not a valid database URL"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+asyncpg://u@h/db", "unsupported PostgreSQL driver"),
        ("postgresql://u@h", "names no database"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_bad_db_urls(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_db_url(url, "--db-url")
    assert expected in str(err.value)


def test_bad_db_url_never_shows_password(cli) -> None:
    res = cli("--db-url", "mysql://u:topsecretpw@h/db", "config", "show")
    assert res.code == 2
    assert "topsecretpw" not in res.err
