"""What keeps a scan bounded at scale: the SQLite WAL is reset while a scan writes (no read
transaction held across a stage). The figures at 100k and 1M files are in bench/README.md;
these tests keep the mechanisms from regressing."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from dupfinder.config import load_settings
from dupfinder.db import rows, sqlite_conn
from dupfinder.db.engine import open_database
from dupfinder.db.models import utcnow
from tests.helpers import HOST, blob, scan, write


class _WalSampler(threading.Thread):
    """The largest size the ``-wal`` file beside ``db`` reached while it ran."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.wal = Path(f"{db}-wal")
        self.largest = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.largest = max(self.largest, self.wal.stat().st_size)
            self.stop.wait(0.001)


def test_a_scan_lets_sqlite_reset_its_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    # checkpoints every 64 pages (256 KiB): a scan that kept a read transaction open
    # across a stage would stop every reset, and the WAL would take all ~800 commits
    monkeypatch.setattr(sqlite_conn, "WAL_AUTOCHECKPOINT_PAGES", 64)
    root = tmp_path / "tree"
    for i in range(1500):  # 3000 candidates in 1500 pairs, both stages
        data = blob(i, 1000 + i if i % 10 else 70_000 + i)
        write(root / f"a/{i // 100}/{i}.bin", data)
        write(root / f"b/{i}.bin", data)
    path = tmp_path / "c.db"
    db = open_database(load_settings(db_url=f"sqlite:///{path}"), no_fallback=True)
    sampler = _WalSampler(path)
    sampler.start()
    try:
        summary = scan(db, root, processes=2, batch_size=4, commit_interval=0)
    finally:
        sampler.stop.set()
        sampler.join()
        db.dispose()
    assert summary.status == "complete" and summary.duplicate_groups == 1500
    assert summary.files_hashed == 3000  # the 300 large ones read in both stages count once
    assert 0 < sampler.largest < 2 << 20, f"WAL reached {sampler.largest} bytes"


def test_postgresql_staging_table_orders_paths_as_the_catalogue_does(pg_url: str) -> None:
    # new rows are staged by COPY, then inserted in path order: in the server's default
    # collation that order is not the index's, and every insert lands somewhere else
    db = open_database(load_settings(db_url=pg_url), no_fallback=True)
    try:
        with db.engine.connect() as conn:
            writer = rows.RowWriter(conn, HOST, 1, utcnow(), lambda pairs: None)
            writer.add(rows.NewRow("/x/b", "/x/b", "b", 1, 1, 1, 1, 1))
            writer.flush()
            assert conn.execute(text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'dupfinder_new' AND column_name = 'path'")).scalar() == "C"
            assert conn.execute(text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'file_hashes' AND column_name = 'path'")).scalar() == "C"
    finally:
        db.dispose()
