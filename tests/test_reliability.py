"""Several hosts on one catalogue, crashes at random moments, a database that goes away."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dupfinder.config import load_settings
from dupfinder.db.engine import Database, open_database
from dupfinder.db.models import FileHash
from tests.helpers import blob, groups, hashes_committed, write
from tests.pg_server import PgServer

KILL_POINTS = 20


def start(*args: str) -> subprocess.Popen[str]:
    """``python -m dupfinder ARGS`` in its own process."""
    return subprocess.Popen([sys.executable, "-m", "dupfinder", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def duplicate_rows(db: Database) -> int:
    """Rows whose (host, path) appears more than once (the unique key makes this 0)."""
    with db.session() as s:
        dup = (select(FileHash.host, FileHash.path).group_by(FileHash.host, FileHash.path)
               .having(func.count() > 1).subquery())
        return s.scalar(select(func.count()).select_from(dup)) or 0


def make_tree(root: Path, seed: int = 7) -> set[frozenset[str]]:
    """A tree with duplicate pairs and triples, near-misses and unique files; returns the
    expected duplicate groups."""
    rnd = random.Random(seed)
    expected: set[frozenset[str]] = set()
    for i in range(120):
        data = blob(1000 + i, rnd.choice([3000, 9000, 40_000, 70_000]))
        copies = 3 if i % 4 == 0 else 2
        paths = {str(write(root / f"d{(i + c) % 7}/sub{c}/{i}-{c}.dat", data))
                 for c in range(copies)}
        expected.add(frozenset(paths))
    for i in range(60):  # same size as some duplicates, different content
        write(root / f"u/{i}.dat", blob(5000 + i, rnd.choice([3000, 9000, 40_000])))
    return expected


def open_url(url: str) -> Database:
    return open_database(load_settings(db_url=url), no_fallback=True)


# ------------------------------------------------------------------ many hosts


def test_four_concurrent_scanners_match_sequential_scans(tmp_path: Path, pg_server,
                                                          pg_url: str) -> None:
    """4 scanners with different host labels, overlapping and separate roots, at once."""
    tree = tmp_path / "tree"
    make_tree(tree)
    jobs = [("laptop", tree / "d0"), ("nas", tree), ("desktop", tree / "d1"),
            ("server", tree / "u")]
    seq_url = pg_server.set(database=pg_url.rsplit("/", 1)[1] + "_seq").render_as_string(
        hide_password=False)

    def run_round(url: str, concurrent: bool) -> None:
        def args(host: str, root: Path) -> list[str]:
            return ["scan", str(root), "--db-url", url, "--host-label", host, "-q",
                    "-p", "2", "-b", "25"]

        if concurrent:
            procs = [start(*args(h, r)) for h, r in jobs]
            results = [finish(p) for p in procs]
        else:
            results = [finish(start(*args(h, r))) for h, r in jobs]
        for code, _out, err in results:
            assert code == 0 and err == "", err

    # two rounds: a host can only hash its own files, so a group that spans hosts is
    # complete once every host has scanned after the others' rows arrived
    for _ in range(2):
        run_round(pg_url, concurrent=True)
        run_round(seq_url, concurrent=False)
    conc, seq = open_url(pg_url), open_url(seq_url)
    try:
        assert duplicate_rows(conc) == 0
        with conc.session() as s1, seq.session() as s2:
            count = select(func.count()).select_from(FileHash)
            assert s1.scalar(count) == s2.scalar(count)
        for host in (None, "laptop", "nas", "desktop", "server"):
            assert groups(conc, host) == groups(seq, host)
        assert len(groups(conc)) >= 120
    finally:
        conc.dispose()
        seq.dispose()
        from tests.conftest import _drop_database

        _drop_database(pg_server, seq_url.rsplit("/", 1)[1])


# ------------------------------------------------------------------ kill -9


@pytest.fixture
def fresh_urls(db_url: str, pg_server_if_needed: object, tmp_path: Path) -> Iterator[list[str]]:
    """KILL_POINTS database URLs of the parametrised backend (a fresh one per kill)."""
    if db_url.startswith("sqlite"):
        yield [f"sqlite:///{tmp_path}/k{i}.db" for i in range(KILL_POINTS)]
        return
    base = db_url.rsplit("/", 1)[0]
    names = [f"{db_url.rsplit('/', 1)[1]}_k{i}" for i in range(KILL_POINTS)]
    yield [f"{base}/{n}" for n in names]
    from tests.conftest import _drop_database

    for n in names:
        _drop_database(pg_server_if_needed, n)  # type: ignore[arg-type]


@pytest.fixture
def pg_server_if_needed(request: pytest.FixtureRequest, db_url: str) -> object:
    return request.getfixturevalue("pg_server") if db_url.startswith("postgresql") else None


def test_kill_9_at_20_random_moments_then_resume(tmp_path: Path, fresh_urls: list[str]) -> None:
    tree = tmp_path / "tree"
    expected = make_tree(tree)
    rnd = random.Random(20261124)
    args = ["scan", str(tree), "-q", "-p", "2", "-b", "8", "--host-label", "testhost"]
    # how long a whole scan takes here, so that kill moments spread over all its stages
    t0 = time.monotonic()
    code, _, err = finish(start(*args, "--db-url", f"sqlite:///{tmp_path}/timing.db"))
    assert code == 0, err
    duration = time.monotonic() - t0
    moments = sorted(rnd.uniform(0.05, duration) for _ in range(KILL_POINTS))
    survived = 0
    for url, moment in zip(fresh_urls, moments, strict=True):
        proc = start(*args, "--db-url", url)
        time.sleep(moment)
        proc.kill()
        proc.communicate(timeout=30)  # a worker left behind would hold the pipes open
        code, _, err = finish(start(*args, "--db-url", url))
        assert code == 0, f"resume after kill at {moment:.3f}s failed: {err}"
        db = open_url(url)
        try:
            assert groups(db) == expected, f"kill at {moment:.3f}s"
            assert duplicate_rows(db) == 0
        finally:
            db.dispose()
        survived += 1
    assert survived == KILL_POINTS


# ------------------------------------------------------------------ database lost


@pytest.fixture
def private_pg() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    server = PgServer(durable=True)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.cleanup()


def test_postgresql_stopped_mid_scan_then_resumed(tmp_path: Path, private_pg: PgServer) -> None:
    tree = tmp_path / "tree"
    expected = make_tree(tree)
    for i in range(150):  # more work so the scan is still hashing when the server stops
        write(tree / f"extra/{i}.bin", blob(9000 + i, 200_000))
        write(tree / f"extra2/{i}.bin", blob(9000 + i, 200_000))
        expected.add(frozenset({str(tree / f"extra/{i}.bin"), str(tree / f"extra2/{i}.bin")}))
    url = private_pg.url("lost_db").render_as_string(hide_password=False)
    # one file per batch: hundreds of commits, so the scan is surely mid-way when we pull
    # the plug however fast the machine is
    args = ["scan", str(tree), "--db-url", url, "--no-fallback", "-p", "2", "-b", "1",
            "-a", "sha256", "--host-label", "testhost"]
    db = open_url(url)
    proc = start(*args)
    deadline = time.monotonic() + 60
    while True:
        hashed = hashes_committed(db, "prefix")
        if hashed >= 20:
            break
        assert proc.poll() is None, f"scan ended before the server was stopped: {finish(proc)}"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    db.dispose()
    private_pg.stop("immediate")
    code, out, err = finish(proc)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("dupfinder: error: ")
    assert "p@ss" not in err
    private_pg.start()
    db = open_url(url)
    try:
        kept = hashes_committed(db, "prefix")
        assert kept >= hashed  # nothing committed was lost
        code, out, err = finish(start(*args))
        assert code == 0, err
        assert groups(db) == expected
        assert duplicate_rows(db) == 0
    finally:
        db.dispose()


# ------------------------------------------------------------ the faults this suite covers

# Every fault kind the suite provokes, with the test that provokes it. The kinds of issue 15
# ("never lose the last copy") each failed before their fix; the list is checked below, so
# a renamed or removed test cannot silently drop a kind.
FAULT_KINDS: dict[str, str] = {
    # actions: the last copy of a file
    "two dedupe runs at once with opposite keepers": "test_action_faults.py::test_two_runs_with_opposite_keepers_never_delete_both_copies",  # noqa: E501
    "the same file seen through an overlay mount": "test_action_safety.py::test_overlay_lower_file_is_not_deleted_for_its_own_merged_view",  # noqa: E501
    "the overlay's merged view as the duplicate": "test_action_safety.py::test_overlay_merged_view_is_not_deleted_for_its_lower_file",  # noqa: E501
    "a failure injected at every step of an action": "test_action_faults.py::test_a_failure_at_any_step_is_raised_recorded_and_undone",  # noqa: E501
    "kill -9 and SIGTERM during dedupe --apply": "test_action_faults.py::test_a_run_killed_mid_trash_is_interrupted_and_undone",  # noqa: E501
    "a delete after a symlink dedupe": "test_action_safety.py::test_delete_after_symlink_dedupe_keeps_the_link_target",  # noqa: E501
    "hardlink dedupe of files with other owners": "test_action_safety.py::test_hardlink_skips_a_duplicate_with_another_owner_or_mode",  # noqa: E501
    "a move across file systems losing the owner": "test_action_safety.py::test_move_across_file_systems_keeps_owner_and_mode_and_undo_too",  # noqa: E501
    "a full disk during a move": "test_action_safety.py::test_move_to_a_full_file_system_leaves_no_partial_file_and_retries",  # noqa: E501
    "--to as a symlink into the tree": "test_action_safety.py::test_to_that_is_a_symlink_into_the_tree_is_refused",  # noqa: E501
    "a symlink planted inside --to": "test_action_safety.py::test_symlink_planted_inside_to_is_not_followed",  # noqa: E501
    "undo of a trash run meeting another run's file": "test_action_faults.py::test_undo_restores_its_own_trashed_file_not_a_later_one_of_the_same_path",  # noqa: E501
    "two catalogues acting on one tree at once": "test_last_copy.py::test_two_catalogues_acting_at_once_never_delete_both_copies",  # noqa: E501
    "a link to the catalogue taking a second lock": "test_last_copy.py::test_the_catalogue_lock_is_one_for_a_link_to_the_catalogue",  # noqa: E501
    "a keeper edited after the byte check (reflink)": "test_reflink.py::test_a_keeper_edited_after_verification_is_not_cloned_over_the_duplicate",  # noqa: E501
    "a keeper replaced before the hard link": "test_reflink.py::test_a_keeper_replaced_before_the_hard_link_is_skipped",  # noqa: E501
    "'..' through a link in a plan's keeper": "test_last_copy.py::test_a_plan_keeper_with_dotdot_is_refused",  # noqa: E501
    "scan of lnk/..": "test_last_copy.py::test_scan_of_a_link_then_dotdot_catalogues_what_the_kernel_opens",  # noqa: E501
    "kill -9 during undo": "test_last_copy.py::test_undo_killed_with_sigkill_then_run_again_restores_everything",  # noqa: E501
    "undo cut off between a restore and its journal": "test_last_copy.py::test_undo_cut_off_between_restoring_a_file_and_journaling_it_finishes_next_time",  # noqa: E501
    "--to inside the tree through a linked root": "test_last_copy.py::test_move_target_inside_the_tree_through_a_linked_root_is_refused",  # noqa: E501
    "plan entries the catalogue never held": "test_last_copy.py::test_plan_entries_the_catalogue_never_held_are_skipped",  # noqa: E501
    "a plan chaining an action onto a kept file": "test_last_copy.py::test_a_plan_chaining_an_action_onto_a_kept_file_is_refused",  # noqa: E501
    "copies in trash folders": "test_last_copy.py::test_trash_folders_are_not_scanned_unless_asked",  # noqa: E501
    # scans
    "a FIFO where a catalogued file was": "test_scan_faults.py::test_a_fifo_where_a_catalogued_file_was_never_hangs_a_scan",  # noqa: E501
    "two scans racing over one rewritten file": "test_scan_faults.py::test_a_hash_read_before_another_scan_rewrote_the_file_is_not_stored",  # noqa: E501
    "hosts with skewed clocks": "test_scan_faults.py::test_hosts_with_skewed_clocks_still_complete_groups",  # noqa: E501
    "a folder that can be listed but not entered": "test_scan_faults.py::test_a_folder_that_can_be_listed_but_not_entered_keeps_its_rows",  # noqa: E501
    "the database refusing worker connections": "test_workers_faults.py::test_workers_refused_by_the_database_end_the_scan",  # noqa: E501
    "a worker that dies": "test_workers_faults.py::test_a_worker_that_dies_ends_the_scan",
    "every start method (forkserver)": "test_workers_faults.py::test_every_start_method_finds_the_same_groups",  # noqa: E501
    "kill -9 of a scan: no worker left": "test_workers_faults.py::test_workers_die_with_a_scan_killed_by_sigkill",  # noqa: E501
    "kill -9 at 20 moments of a scan": "test_reliability.py::test_kill_9_at_20_random_moments_then_resume",  # noqa: E501
    "PostgreSQL stopped mid-scan": "test_reliability.py::test_postgresql_stopped_mid_scan_then_resumed",  # noqa: E501
    "four concurrent scanners": "test_reliability.py::test_four_concurrent_scanners_match_sequential_scans",  # noqa: E501
    "a SQLite catalogue reached through a link": "test_scan_faults.py::test_a_sqlite_catalogue_reached_through_a_link_is_not_catalogued",  # noqa: E501
    # hostile names and bad input
    "an invalid byte against a literal \\xNN": "test_display.py::test_outputs_tell_an_undecodable_byte_from_a_backslash",  # noqa: E501
    "escape sequences and bidi controls in names": "test_display.py::test_text_output_escapes_controls_and_bidi",  # noqa: E501
    "names that JSON and CSV must carry exactly": "test_exact_names.py::test_deleting_all_but_the_first_of_each_group_deletes_only_copies",  # noqa: E501
    "a root whose name is not UTF-8, in the report": "test_display.py::test_scan_report_of_a_non_utf8_root",  # noqa: E501
    "null, nested and duplicate-key config files": "test_bad_input_low.py::test_duplicate_key_in_config_is_rejected",  # noqa: E501
    "absurd sizes and run ids": "test_scan_faults.py::test_run_ids_out_of_range_are_one_line_errors",  # noqa: E501
    "invalid connection settings never fall back": "test_bad_input_low.py::test_invalid_connection_setting_never_falls_back",  # noqa: E501
    "a read-only catalogue": "test_bad_input_low.py::test_read_only_sqlite_catalogue_serves_reading_commands",  # noqa: E501
    "40+ bad inputs": "test_bad_input.py::test_bad_input",
}


def test_the_suite_covers_every_listed_fault_kind() -> None:
    tests = Path(__file__).resolve().parent
    for kind, node in FAULT_KINDS.items():
        module, name = node.split("::")
        source = (tests / module).read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"{kind}: {node} does not exist"
    assert len(FAULT_KINDS) == 45  # the count the README's safety section states
