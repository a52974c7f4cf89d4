"""The library API: one object, filesystem paths in and out, safety rules no caller can skip.

These tests are the examples of ``dupfinder.Catalogue``; every one runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dupfinder import (
    Catalogue,
    DatabaseUnreachable,
    DupfinderError,
    SafetyError,
    UsageError,
)
from tests.helpers import HOST, blob, tree_checksums, write

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using dupfinder from Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has no Python example"
    return match.group(1)


def test_the_readme_example_runs_as_written(db_url: str, tmp_path: Path) -> None:
    code = readme_example()
    assert len(code.strip().splitlines()) <= 11  # "a 10-line example" (and its import)
    folder = tmp_path / "photos"
    write(folder / "a.jpg", blob(1, 5000))
    write(folder / "copy of a.jpg", blob(1, 5000))
    write(folder / "b.jpg", blob(2, 5000))
    before = tree_checksums(folder)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), db_url, str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"5000 ['{folder}/a.jpg', '{folder}/copy of a.jpg']" in done.stdout
    assert re.search(r"1 groups; run \d+ trashed 1 files", done.stdout)
    assert tree_checksums(folder) == before  # the example undoes what it did


def test_version_loads_neither_sqlalchemy_nor_the_library() -> None:
    # `dupfinder --version` (and --help) import the commands only when they run
    probe = ("import sys\n"
             "from dupfinder.cli import main\n"
             "try:\n"
             "    main(['--version'])\n"
             "except SystemExit:\n"
             "    pass\n"
             "loaded = sorted(m for m in sys.modules\n"
             "                if m.split('.')[0] == 'sqlalchemy' or m == 'dupfinder.catalogue')\n"
             "print('loaded:', loaded)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout, done.stdout


def test_every_type_a_catalogue_method_returns_is_exported() -> None:
    import dupfinder

    named: set[str] = set()
    for name, member in vars(Catalogue).items():
        fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if name.startswith("_") or not callable(fn):
            continue
        # the annotations as written (catalogue.py imports some types only for the checker)
        named |= set(re.findall(r"\b([A-Z]\w+)", str(fn.__annotations__.get("return", ""))))
    named -= {"None", "Iterator", "Catalogue"}
    assert named and named <= set(dupfinder.__all__), named - set(dupfinder.__all__)
    assert all(getattr(dupfinder, n).__name__ == n for n in named)


def test_paths_in_and_out_are_filesystem_paths(cat: Catalogue, tmp_path: Path) -> None:
    # an undecodable byte and a backslash in folder names: the stored form escapes both,
    # and a query by folder must still find exactly the files below it
    raw = os.fsencode(tmp_path) + b"/caf\xe9"
    odd = tmp_path / "back\\slash"
    write(os.fsdecode(raw + b"/one"), b"same bytes")
    write(os.fsdecode(raw + b"/two"), b"same bytes")
    write(odd / "one", b"other bytes")
    write(odd / "two", b"other bytes")
    write(tmp_path / "back\\slashx" / "three", b"other bytes")  # a sibling, not below
    cat.scan([tmp_path])
    by_bytes = list(cat.groups(under=raw))
    assert [[f.path for f in g.files] for g in by_bytes] == [
        [os.fsdecode(raw + b"/one"), os.fsdecode(raw + b"/two")]]
    for f in by_bytes[0].files:
        assert Path(f.path).read_bytes() == b"same bytes"  # open() takes what came back
    assert [g.files[0].path for g in cat.groups(under=os.fsdecode(raw))] == \
        [os.fsdecode(raw + b"/one")]
    (inside,) = cat.groups(under=odd, scope="within")
    assert [f.path for f in inside.files] == [str(odd / "one"), str(odd / "two")]
    assert cat.totals(under=Path(odd), scope="within") == (1, 2, len(b"other bytes"))
    (touching,) = cat.groups(under=odd)  # the group with all its files, wherever they are
    assert [f.path for f in touching.files] == [
        str(odd / "one"), str(odd / "two"), str(tmp_path / "back\\slashx" / "three")]


def test_a_plan_acts_only_on_its_own_hosts_files(cat: Catalogue, db_url: str,
                                                 tmp_path: Path) -> None:
    write(tmp_path / "t/a", b"twin")
    write(tmp_path / "t/b", b"twin")
    cat.scan([tmp_path / "t"])
    plan = cat.plan_dedupe("delete", tmp_path / "t")
    assert len(plan) == 1
    with Catalogue.open(db_url, host="another-machine", fallback=False) as other, \
            pytest.raises(SafetyError, match="only that host's own files"):
        other.apply(plan)
    assert (tmp_path / "t/a").exists() and (tmp_path / "t/b").exists()


def test_a_move_target_inside_the_scanned_folders_is_refused(cat: Catalogue,
                                                             tmp_path: Path) -> None:
    write(tmp_path / "t/a", b"twin")
    write(tmp_path / "t/b", b"twin")
    cat.scan([tmp_path / "t"])
    with pytest.raises(SafetyError, match="inside the scanned folder"):
        cat.plan_dedupe("move", tmp_path / "t", to=tmp_path / "t/moved")
    # a plan changed after it was made is checked again when it is applied
    plan = cat.plan_dedupe("move", tmp_path / "t", to=tmp_path / "elsewhere")
    plan.to = str(tmp_path / "t/moved")
    with pytest.raises(SafetyError, match="inside the scanned folder"):
        cat.apply(plan)
    assert not (tmp_path / "t/moved").exists()
    assert (tmp_path / "t/a").exists() and (tmp_path / "t/b").exists()


def test_only_a_runs_own_host_may_undo_it(cat: Catalogue, db_url: str, tmp_path: Path
                                          ) -> None:
    write(tmp_path / "t/a", b"twin")
    write(tmp_path / "t/b", b"twin")
    cat.scan([tmp_path / "t"])
    run = cat.apply(cat.plan_dedupe("trash", tmp_path / "t"))
    assert run.done == 1
    with Catalogue.open(db_url, host="another-machine", fallback=False) as other, \
            pytest.raises(SafetyError, match="only its own host can undo it"):
        other.undo(run.id)
    assert cat.undo(run.id).restored == [str(tmp_path / "t/b")]


def test_library_errors_carry_no_exit_code_and_the_cli_maps_them(cli, db_url: str) -> None:
    assert not hasattr(UsageError("x"), "exit_code")
    assert issubclass(SafetyError, UsageError) and issubclass(UsageError, DupfinderError)
    quiet = cli("dedupe", "--action", "move", "--db-url", db_url)
    assert quiet.code == 2 and "Traceback" not in quiet.err
    assert quiet.err.strip() == "dupfinder: error: --action move needs --to DIR"
    loud = cli("-vv", "dedupe", "--action", "move", "--db-url", db_url)
    assert loud.code == 2 and "Traceback (most recent call last)" in loud.err
    assert loud.err.strip().splitlines()[-1] == "dupfinder: error: --action move needs --to DIR"


def test_opening_reads_no_config_file_or_environment_unless_asked(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("config.json").write_text("{ not json")  # in the current folder
    monkeypatch.setenv("DUPFINDER_DB_URL", "sqlite:////nonexistent/folder/x.db")
    monkeypatch.setenv("DUPFINDER_HOST_LABEL", "from-the-environment")
    with Catalogue.open(db_url, host=HOST) as cat:
        assert cat.host == HOST
    with Catalogue.open(db_url) as cat:
        assert cat.host == socket.gethostname()
    with pytest.raises(DupfinderError, match="config.json"):
        Catalogue.from_lookup(db_url)  # the command line's lookup order does read it


def test_an_unreachable_server_is_its_own_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DatabaseUnreachable, match=f"127.0.0.1:{port}"):
        Catalogue.open(f"postgresql://u:pw@127.0.0.1:{port}/x", fallback=False)
