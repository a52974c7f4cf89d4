"""No output, log line, report or stored row ever contains the database password."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from tests.helpers import write
from tests.pg_server import PASSWORD, free_port


def _outputs_under(folder: Path) -> str:
    """Everything dupfinder wrote below ``folder`` (not the config files the test wrote)."""
    parts = []
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix != ".json":
            parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_password_never_shown(cli, pg_url: str, tmp_path: Path,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = make_url(pg_url)
    assert url.password == PASSWORD  # the test server's password is full of @:/%#?&
    tree = tmp_path / "tree"
    write(tree / "a", "same")
    write(tree / "b", "same")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"database": {
        "host": url.host, "port": url.port, "user": url.username, "password": PASSWORD,
        "database": url.database}, "fallback": {"sqlite_path": str(tmp_path / "fb.db")}}))
    dead = tmp_path / "dead.json"
    dead.write_text(json.dumps({"database": {
        "host": "127.0.0.1", "port": free_port(), "password": PASSWORD},
        "fallback": {"sqlite_path": str(tmp_path / "fb.db")}}))
    wrong = url.set(password=PASSWORD + "-wrong").render_as_string(hide_password=False)
    report = tmp_path / "report.html"
    runs = [
        cli("--config", str(cfg), "config", "show"),
        cli("--db-url", pg_url, "config", "show"),
        cli("--config", str(cfg), "-v", "scan", str(tree), "-p", "2"),
        cli("--db-url", pg_url, "-v", "scan", str(tree), "--report", str(report)),
        cli("--config", str(dead), "scan", str(tree)),  # fallback warning names the server
        cli("--config", str(dead), "--no-fallback", "scan", str(tree)),
        cli("--db-url", wrong, "scan", str(tree)),
        cli("--db-url", pg_url.replace("postgresql", "mysql"), "scan", str(tree)),
        cli("--db-url", pg_url, "scan", str(tmp_path / "missing")),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0, 0, 1, 1, 2, 2]
    shown = "\n".join(r.out + r.err for r in runs) + "\n".join(caplog.messages)
    assert "***" in shown
    assert PASSWORD not in shown and "p%40ss" not in shown
    assert report.exists() and (tmp_path / "fb.db").exists()
    assert PASSWORD not in _outputs_under(tmp_path)  # the report, the fallback catalogue
    # nothing stored in the catalogue holds it either
    db = open_database(load_settings(db_url=pg_url), no_fallback=True)
    try:
        with db.engine.connect() as conn:
            for table in ("scan_metadata", "file_hashes", "schema_info"):
                dump = conn.execute(text(f"SELECT * FROM {table}")).all()
                assert PASSWORD not in repr(dump)
    finally:
        db.dispose()
