"""``--include``/``--exclude``/``--exclude-from``/``--ignore-files``: gitignore patterns
relative to each scan root, with excluded folders pruned from the walk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from dupfinder.config import load_settings
from dupfinder.db.engine import open_database
from dupfinder.errors import UsageError
from dupfinder.scan import walk as walk_module
from dupfinder.scan.walk import Entry, WalkOptions, WalkProblems, walk
from tests.helpers import as_unprivileged, catalogue_rows, write


def build(root: Path, *names: str) -> Path:
    """Files (with one byte of content each) under ``root``."""
    for name in names:
        write(root / name, "x")
    return root


def found(*roots: Path, problems: WalkProblems | None = None, **opts: object) -> set[str]:
    """What a walk of ``roots`` finds, relative to the first root's parent."""
    base = roots[0].parent
    entries = walk([str(r) for r in roots], WalkOptions(**opts),  # type: ignore[arg-type]
                   problems if problems is not None else WalkProblems())
    return {os.path.relpath(e.path, base) for e in entries if isinstance(e, Entry)}


def cli_scan(cli, tmp_path: Path, *args: str) -> set[str]:
    """Run ``dupfinder scan ARGS`` into a fresh SQLite catalogue (a narrower rescan keeps
    what a wider scan found); the catalogued paths relative to ``tmp_path``."""
    url = f"sqlite:///{tempfile.mkdtemp(dir=tmp_path.parent)}/cat.db"
    res = cli("scan", *args, "--db-url", url, "-q", "-p", "1")
    assert res.code == 0, res.err
    db = open_database(load_settings(db_url=url), no_fallback=True)
    try:
        return {os.path.relpath(p, tmp_path) for p in catalogue_rows(db)}
    finally:
        db.dispose()


# ---------------------------------------------------------------- the command line


def test_cli_pattern_with_a_slash_is_relative_to_the_root(cli, tmp_path: Path) -> None:
    base = build(tmp_path / "base", "tree/py3/a.py", "tree/lib/py3/b.py", "tree/keep.py",
                 "py3/c.py")
    # a slash in the middle anchors at the root: only base/tree/py3
    assert cli_scan(cli, tmp_path, str(base), "--exclude", "tree/py3") == {
        "base/tree/lib/py3/b.py", "base/tree/keep.py", "base/py3/c.py"}


@pytest.mark.parametrize(("pattern", "left"), [
    ("py3", {"tree/keep.py"}),  # no slash: at any depth
    ("/py3", {"tree/keep.py", "tree/lib/py3/b.py"}),  # leading slash: at the root only
])
def test_cli_issue_example_scanning_tree(cli, tmp_path: Path, pattern: str,
                                         left: set[str]) -> None:
    tree = build(tmp_path / "tree", "py3/a.py", "lib/py3/b.py", "keep.py")
    assert cli_scan(cli, tmp_path, str(tree), "--exclude", pattern) == left


def test_cli_exclude_from_skips_comments_and_blank_lines(cli, tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.tmp", "keep.tmp", "b.txt", "#notes", "cache/c.txt",
                 "sub/cache/d.txt", "e.log")
    patterns = tmp_path / "excludes"
    patterns.write_text("# temporary files\n*.tmp\n\n!keep.tmp\n   \n# *.txt\n"
                        "**/cache/**\n\\#notes\n")
    # the file's patterns come first; --exclude ones after them (they win when both match)
    assert cli_scan(cli, tmp_path, str(tree), "--exclude-from", str(patterns),
                    "--exclude", "*.log") == {"tree/keep.tmp", "tree/b.txt"}


def test_cli_missing_exclude_from_is_a_one_line_usage_error(cli, tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a")
    db_file = tmp_path / "never.db"
    missing = tmp_path / "no-such-excludes"
    res = cli("scan", str(tree), "--exclude-from", str(missing), "--db-url",
              f"sqlite:///{db_file}")
    assert res.code == 2
    assert res.err == (f"dupfinder: error: --exclude-from {missing}: "
                       "No such file or directory\n")
    assert not db_file.exists()


def test_cli_bad_pattern_is_a_usage_error(cli, tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a")
    db_file = tmp_path / "never.db"
    res = cli("scan", str(tree), "--exclude", "!", "--db-url", f"sqlite:///{db_file}")
    assert res.code == 2
    assert res.err == "dupfinder: error: bad --exclude pattern: '!'\n"
    assert not db_file.exists()
    with pytest.raises(UsageError, match="bad include pattern"):  # the field, not the flag
        WalkOptions(include=("ok", "bad\\"))


def test_cli_ignore_files(cli, tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.log", "sub/b.log", "sub/keep.log", "c.txt")
    write(tree / ".gitignore", "*.log\n")
    write(tree / "sub/.gitignore", "!keep.log\n")
    everything = {"tree/a.log", "tree/sub/b.log", "tree/sub/keep.log", "tree/c.txt",
                  "tree/.gitignore", "tree/sub/.gitignore"}
    assert cli_scan(cli, tmp_path, str(tree)) == everything  # off by default
    assert cli_scan(cli, tmp_path, str(tree), "--ignore-files") == everything - {
        "tree/a.log", "tree/sub/b.log"}


def test_cli_include_keeps_only_matching_files(cli, tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.txt", "deep/b.txt", "secret.txt", "c.bin",
                 "docs/d.bin")
    assert cli_scan(cli, tmp_path, str(tree), "--include", "*.txt", "--include",
                    "!secret.txt", "--include", "docs/") == {
        "tree/a.txt", "tree/deep/b.txt", "tree/docs/d.bin"}


# ---------------------------------------------------------------- the patterns


def test_double_star_folder_contents(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "cache/a", "x/y/cache/b", "x/cache", "cachefile", "c")
    assert found(tree, exclude=("**/cache/**",)) == {"tree/x/cache", "tree/cachefile",
                                                     "tree/c"}


def test_glob_and_negation_last_match_wins(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.tmp", "sub/b.tmp", "keep.tmp", "sub/keep.tmp", "c")
    assert found(tree, exclude=("*.tmp",)) == {"tree/c"}
    assert found(tree, exclude=("*.tmp", "!keep.tmp")) == {
        "tree/keep.tmp", "tree/sub/keep.tmp", "tree/c"}
    # the order matters, as in a .gitignore
    assert found(tree, exclude=("!keep.tmp", "*.tmp")) == {"tree/c"}


def test_trailing_slash_matches_folders_only(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "logs/a", "sub/logs/b", "other/logs", "c")
    assert found(tree, exclude=("logs/",)) == {"tree/other/logs", "tree/c"}
    assert found(tree, exclude=("logs",)) == {"tree/c"}


def test_leading_slash_anchors_at_the_root(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "build/a", "src/build/b", "build.txt")
    assert found(tree, exclude=("/build",)) == {"tree/src/build/b", "tree/build.txt"}
    assert found(tree, exclude=("build",)) == {"tree/build.txt"}


def test_patterns_apply_to_each_root(tmp_path: Path) -> None:
    one = build(tmp_path / "one", "build/a", "x")
    two = build(tmp_path / "two", "build/b", "x")
    assert found(one, two, exclude=("/build",)) == {"one/x", "two/x"}
    # an absolute path under a root (the old form) means that root's folder, no other's
    assert found(one, two, exclude=(f"{one}/build", f"{two}/*", f"!{two}/x")) == {
        "one/x", "two/x"}


def test_include_is_matched_relative_to_the_root(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a/b.txt", "x/a/c.txt", "d.txt")
    assert found(tree, include=("a/*.txt",)) == {"tree/a/b.txt"}
    assert found(tree, include=("*.txt",), exclude=("a/",)) == {"tree/d.txt"}


# ---------------------------------------------------------------- ignore files


def test_nested_ignore_files_deeper_overrides(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.log", "build/x", "keep.log",
                 "sub/b.log", "sub/keep.log", "sub/build/y", "sub/deep/c.log", "sub/deep/d.dat",
                 "other/e.dat")
    write(tree / ".gitignore", "# root\n*.log\nbuild/\n")
    write(tree / "sub/.gitignore", "!keep.log\n!build/\n")
    write(tree / "sub/deep/.ignore", "*.dat\n")
    write(tree / "sub/deep/.gitignore", "!c.log\n")
    got = found(tree, ignore_files=True)
    assert got == {
        "tree/.gitignore", "tree/sub/.gitignore", "tree/sub/deep/.ignore",
        "tree/sub/deep/.gitignore",  # the ignore files themselves are catalogued
        "tree/sub/keep.log",  # re-included by the deeper file, not at the top
        "tree/sub/build/y",  # the folder re-included below the root
        "tree/sub/deep/c.log",
        "tree/other/e.dat",  # sub/deep/.ignore applies only to sub/deep and below
    }
    assert "tree/a.log" in found(tree)  # ignore files are only read when asked


def test_ignore_file_precedence_in_one_folder_and_command_line(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.bak", "b.bak", ".gitignore")
    write(tree / ".gitignore", "*.bak\n")
    write(tree / ".ignore", "!a.bak\n")
    write(tree / ".dupfinderignore", "!b.bak\n.*\n")
    assert found(tree, ignore_files=True) == {"tree/a.bak", "tree/b.bak"}
    # the command line has the last word, and can exclude the ignore files too
    assert found(tree, ignore_files=True, exclude=("a.bak", "!.gitignore")) == {
        "tree/b.bak", "tree/.gitignore"}


def test_bad_line_in_an_ignore_file_is_reported_and_skipped(tmp_path: Path) -> None:
    tree = build(tmp_path / "tree", "a.tmp", "b")
    write(tree / ".gitignore", "*.tmp\n!\n")
    problems = WalkProblems()
    assert found(tree, problems=problems, ignore_files=True) == {"tree/b", "tree/.gitignore"}
    assert [p for p, _ in problems.errors] == [str(tree)]
    assert problems.unreadable == []


# ---------------------------------------------------------------- pruning


def test_excluded_folders_are_never_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    tree = build(tmp_path / "tree", "node_modules/a/b", "src/node_modules/c", "src/d",
                 "src/build/e")
    write(tree / ".gitignore", "build/\n")
    listed: list[str] = []
    real = os.scandir

    def scandir(path: str) -> object:
        listed.append(os.path.relpath(path, tmp_path))
        return real(path)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    assert found(tree, exclude=("node_modules",), ignore_files=True) == {
        "tree/src/d", "tree/.gitignore"}
    assert sorted(listed) == ["tree", "tree/src"]


def test_an_unreadable_excluded_folder_is_no_error(shared_tmp: Path) -> None:
    tree = build(shared_tmp / "tree", "secret/a", "sub/private/b", "c")
    for folder, dirs, files in os.walk(shared_tmp):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), 65534, 65534)
    (tree / "secret").chmod(0o000)
    (tree / "sub/private").chmod(0o000)

    def run(exclude: tuple[str, ...]) -> tuple[set[str], list[str]]:
        problems = WalkProblems()
        return found(tree, problems=problems, exclude=exclude), problems.unreadable

    files, unreadable = as_unprivileged(lambda: run(()))
    assert files == {"tree/c"} and len(unreadable) == 2  # the folders really are locked
    assert as_unprivileged(lambda: run(("/secret/", "private"))) == ({"tree/c"}, [])
