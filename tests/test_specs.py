"""Specs and tests cannot drift apart: every scenario names tests that exist."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted([*ROOT.glob("openspec/specs/*/spec.md"),
                *ROOT.glob("openspec/changes/*/specs/*/spec.md")])
TEST_LINE = re.compile(r"^- \*\*Test:\*\* (tests/[\w/]+\.py)::(test_\w+)\s*$")


@cache
def defined_tests(module: str) -> frozenset[str]:
    """Names of the top-level test functions of a test module (empty if it is missing)."""
    path = ROOT / module
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(n.name for n in tree.body
                     if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))


def parse(spec: Path) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """[(requirement, [(scenario, [test lines])])] of one spec file (REMOVED ones skipped)."""
    requirements: list[tuple[str, list[tuple[str, list[str]]]]] = []
    removed = False
    for line in spec.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            removed = line.startswith("## REMOVED")
        elif line.startswith("### Requirement:") and not removed:
            requirements.append((line.split(":", 1)[1].strip(), []))
        elif line.startswith("#### Scenario:") and requirements and not removed:
            requirements[-1][1].append((line.split(":", 1)[1].strip(), []))
        elif line.startswith("- **Test:**") and requirements and requirements[-1][1]:
            requirements[-1][1][-1][1].append(line.strip())
    return requirements


def test_there_are_specs() -> None:
    names = {p.parent.name for p in ROOT.glob("openspec/specs/*/spec.md")}
    assert {"file-discovery", "metadata-collection", "hash-calculation",
            "database-management", "scan-optimization", "multiprocessing-support",
            "query-outputs", "report-generation", "dedupe-actions"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_every_scenario_names_existing_tests(spec: Path) -> None:
    problems = []
    for requirement, scenarios in parse(spec):
        if not scenarios:
            problems.append(f"requirement {requirement!r} has no scenario")
        for scenario, tests in scenarios:
            if not tests:
                problems.append(f"scenario {scenario!r} names no test")
            for line in tests:
                m = TEST_LINE.match(line)
                if not m:
                    problems.append(f"malformed test line in {scenario!r}: {line}")
                elif m.group(2) not in defined_tests(m.group(1)):
                    problems.append(f"{scenario!r} names a missing test: {m.group(1)}::"
                                    f"{m.group(2)}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_missing_test(tmp_path: Path) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text("## Requirements\n\n### Requirement: X\nIt SHALL.\n\n#### Scenario: Y\n"
                    "- **WHEN** a\n- **THEN** b\n- **Test:** tests/test_specs.py::test_nope\n")
    [(_, [(_, [line])])] = parse(spec)
    m = TEST_LINE.match(line)
    assert m is not None and m.group(2) not in defined_tests(m.group(1))
