"""What keeps a scan bounded at scale: the SQLite WAL is reset while a scan writes (no read
transaction held across a stage). The figures at 100k and 1M files are in bench/README.md;
these tests keep the mechanisms from regressing."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from dupfinder.config import load_settings
from dupfinder.db import engine
from dupfinder.db.candidates import StagedCandidates, prefix_candidates
from dupfinder.db.engine import open_database
from dupfinder.db.walked import WalkTable
from dupfinder.scan.pipeline import ScanOptions, run_scan
from dupfinder.scan.walk import WalkOptions
from tests.helpers import HOST, blob, write


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
    monkeypatch.setattr(engine, "WAL_AUTOCHECKPOINT_PAGES", 64)
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
        options = ScanOptions(walk=WalkOptions(), processes=2, batch_size=4,
                              commit_interval=0, progress=False)
        summary = run_scan(db, [str(root)], HOST, options)
    finally:
        sampler.stop.set()
        sampler.join()
        db.dispose()
    assert summary.status == "complete" and summary.duplicate_groups == 1500
    assert summary.files_hashed == 3000  # the 300 large ones read in both stages count once
    assert 0 < sampler.largest < 2 << 20, f"WAL reached {sampler.largest} bytes"


def test_postgresql_staging_tables_compare_paths_as_the_catalogue_does(pg_url: str) -> None:
    # a join between two collations can use neither side's index: with the server's default
    # collation on the staged paths, one 200k-file rescan's anti-join ran for minutes
    db = open_database(load_settings(db_url=pg_url), no_fallback=True)
    try:
        def collation(conn: Connection, table: str) -> str | None:
            return conn.execute(text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = :t AND column_name = 'path'"), {"t": table}).scalar()

        with WalkTable(db, HOST) as table:
            assert collation(table.conn, "dupfinder_walked") == "C"
            assert collation(table.conn, "file_hashes") == "C"
            list(table.gone(["/nowhere"]))  # makes its own temporary table
            assert collation(table.conn, "dupfinder_gone") == "C"
        with StagedCandidates(db, prefix_candidates(HOST, "xxh3-128")) as staged, \
                db.engine.connect() as conn:
            assert staged.files == 0
            assert collation(staged.conn, "dupfinder_candidates") == "C"
            assert collation(conn, "file_hashes") == "C"
    finally:
        db.dispose()
