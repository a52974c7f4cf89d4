"""Every question reads through the index meant for it, on both backends: the statements a
question runs are captured and explained, so a lost or unusable index fails here instead of
showing up as slowness at a million files. On PostgreSQL sequential scans are turned off for
the explanation (on a table this small the planner would rightly prefer one): what is checked
is that the intended index applies to the query's shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from dupfinder import Catalogue
from dupfinder.db import rows
from tests.helpers import blob, write


@pytest.fixture
def filled(cat: Catalogue, tmp_path: Path) -> tuple[Catalogue, Path]:
    root = tmp_path / "t"
    for i in range(30):
        write(root / f"a/{i}.bin", blob(i, 3000 + i))
        write(root / f"b/{i}.bin", blob(i, 3000 + i))
        write(root / f"c/{i}.txt", blob(1000 + i, 100_000 + i))
    cat.scan([root])
    with Catalogue.open(cat.db.url_string(), host="nas", fallback=False) as other:
        other.scan([root / "a"])
    return cat, root


@contextmanager
def captured(cat: Catalogue) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements run in the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        head = statement.lstrip().upper()
        if head.startswith(("SELECT", "WITH")) and not executemany:
            seen.append((statement, parameters))

    event.listen(cat.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(cat.db.engine, "before_cursor_execute", record)


def plans(cat: Catalogue, statements: list[tuple[str, Any]]) -> list[str]:
    """Each statement's plan as one line of text."""
    out = []
    raw = cat.db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        pg = cat.backend == "postgresql"
        if pg:
            cursor.execute("SET enable_seqscan = off")
        for statement, parameters in statements:
            cursor.execute(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement,
                           parameters)
            out.append(" | ".join(str(r[-1] if not pg else r[0]) for r in cursor.fetchall()))
        raw.rollback()
    finally:
        raw.close()
    return out


def full_scans_of(plan_lines: list[str], table: str) -> list[str]:
    """The plans that read the whole of ``table`` (no index, or an index read end to end)."""
    bad = []
    for p in plan_lines:
        for step in p.split(" | "):
            if step.startswith(f"SCAN {table}") or f"Seq Scan on {table}" in step or (
                    "Index Only Scan" not in step and "Index Scan" not in step
                    and "Bitmap" not in step and f" on {table}" in step and "Scan" in step):
                bad.append(p)
    return bad


# SQLite names a unique constraint's index itself
ALIASES = {"uq_file_hashes_host_path": ("uq_file_hashes_host_path",
                                        "sqlite_autoindex_file_hashes_1")}


def probe(statement: str, parameters: Any) -> bool:
    """An existence probe (one row of anything): reads one index entry, whatever its plan."""
    values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters)
    return "LIMIT" in statement.upper() and values[-2:] in ([1, 0], [1]) \
        and statement.split("FROM")[0].strip().endswith(".id")


def check(cat: Catalogue, question: Callable[[], Any], uses: set[str],
          never_whole: tuple[str, ...] = ()) -> list[str]:
    with captured(cat) as statements:
        question()
    statements = [s for s in statements if not probe(*s)]
    assert statements, "the question ran no query"
    explained = plans(cat, statements)
    text = "\n".join(explained)
    for index in uses:
        assert any(name in text for name in ALIASES.get(index, (index,))), \
            f"{index} not used:\n{text}"
    for table in never_whole:
        assert full_scans_of(explained, table) == [], text
    return explained


def test_the_whole_catalogues_groups_come_from_the_contents_index(filled) -> None:  # type: ignore[no-untyped-def]
    cat, _ = filled
    check(cat, lambda: list(cat.groups()), {"ix_contents_wasted", "ix_file_hashes_content"},
          never_whole=("file_hashes",))
    check(cat, lambda: cat.totals(), {"ix_contents_wasted"}, never_whole=("file_hashes",))


def test_a_folders_groups_are_a_range_of_the_path_index(filled) -> None:  # type: ignore[no-untyped-def]
    cat, root = filled
    check(cat, lambda: list(cat.groups(root / "a")),
          {"uq_file_hashes_host_path", "ix_file_hashes_content"}, never_whole=("file_hashes",))
    check(cat, lambda: list(cat.groups(root / "a", scope="within")),
          {"uq_file_hashes_host_path"}, never_whole=("file_hashes",))


def test_unique_reads_the_folder_its_contents_and_the_size_index(filled) -> None:  # type: ignore[no-untyped-def]
    cat, root = filled
    check(cat, lambda: list(cat.unique(root / "c" / "0.txt")),
          {"uq_file_hashes_host_path", "ix_file_hashes_size"}, never_whole=("file_hashes",))
    check(cat, lambda: list(cat.unique(root / "a")),
          {"uq_file_hashes_host_path", "ix_file_hashes_content"}, never_whole=("file_hashes",))


def test_stats_reads_the_kept_counts_and_the_contents_index(filled) -> None:  # type: ignore[no-untyped-def]
    cat, _ = filled
    check(cat, lambda: cat.stats(), {"ix_contents_wasted", "ix_file_hashes_content"})


def test_a_rescan_reads_its_rows_by_key_and_looks_sizes_up(filled) -> None:  # type: ignore[no-untyped-def]
    cat, root = filled
    with cat.db.engine.connect() as conn:
        def question() -> None:
            list(rows.rows_under(conn, cat.host, [str(root)], scan_id=0))
            rows.rows_of_sizes(conn, [3000, 3001])
            rows.outside_exists(conn, cat.host, [str(root / "a")])

        check(cat, question, {"uq_file_hashes_host_path", "ix_file_hashes_size"},
              never_whole=("file_hashes",))


def test_the_host_list_is_a_skip_scan(filled) -> None:  # type: ignore[no-untyped-def]
    cat, _ = filled
    assert cat.hosts() == ["nas", "testhost"]
    check(cat, lambda: cat.hosts(), {"uq_file_hashes_host_path"}, never_whole=("file_hashes",))
