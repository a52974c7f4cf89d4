"""dupfinder: a duplicate file finder that keeps every scan in a database.

The library is one object, :class:`Catalogue`; every type its methods return, and the
:class:`Reporter` they may be given, is named below.
Importing ``dupfinder`` is cheap (``dupfinder --version`` must not pay for SQLAlchemy), so
the names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = [
    "Action",
    "Catalogue",
    "ConfigError",
    "DatabaseError",
    "DatabaseUnreachable",
    "DupfinderError",
    "EntryRecord",
    "EntryState",
    "FolderGroup",
    "Group",
    "GroupFile",
    "GroupSort",
    "HostMerge",
    "KeepPolicy",
    "Plan",
    "Planned",
    "ReportInfo",
    "Reporter",
    "Roots",
    "Run",
    "RunRecord",
    "RunStatus",
    "SafetyError",
    "ScanOptions",
    "ScanStatus",
    "ScanSummary",
    "Stats",
    "Totals",
    "UndoResult",
    "UniqueFile",
    "UniqueTotals",
    "UsageError",
]

_WHERE = {
    "Catalogue": "dupfinder.catalogue",
    "Group": "dupfinder.db.queries",
    "GroupFile": "dupfinder.db.queries",
    "Stats": "dupfinder.db.queries",
    "Totals": "dupfinder.db.queries",
    "FolderGroup": "dupfinder.db.folders",
    "EntryRecord": "dupfinder.db.journal",
    "RunRecord": "dupfinder.db.journal",
    "UniqueFile": "dupfinder.db.unique",
    "UniqueTotals": "dupfinder.db.unique",
    "ReportInfo": "dupfinder.output.report",
    "HostMerge": "dupfinder.merge",
    "Plan": "dupfinder.actions.plan",
    "Planned": "dupfinder.actions.plan",
    "Run": "dupfinder.actions.apply",
    "UndoResult": "dupfinder.actions.undo",
    "ScanSummary": "dupfinder.scan.pipeline",
    "ScanOptions": "dupfinder.scan.options",
    "Roots": "dupfinder.scan.options",
    "Reporter": "dupfinder.reporting",
    **{name: "dupfinder.states" for name in (
        "Action", "EntryState", "GroupSort", "KeepPolicy", "RunStatus", "ScanStatus")},
    **{name: "dupfinder.errors" for name in (
        "ConfigError", "DatabaseError", "DatabaseUnreachable", "DupfinderError",
        "SafetyError", "UsageError")},
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dupfinder' has no attribute {name!r}")


if TYPE_CHECKING:
    from dupfinder.actions.apply import Run
    from dupfinder.actions.plan import Plan, Planned
    from dupfinder.actions.undo import UndoResult
    from dupfinder.catalogue import Catalogue
    from dupfinder.db.folders import FolderGroup
    from dupfinder.db.journal import EntryRecord, RunRecord
    from dupfinder.db.queries import Group, GroupFile, Stats, Totals
    from dupfinder.db.unique import UniqueFile, UniqueTotals
    from dupfinder.errors import (
        ConfigError,
        DatabaseError,
        DatabaseUnreachable,
        DupfinderError,
        SafetyError,
        UsageError,
    )
    from dupfinder.merge import HostMerge
    from dupfinder.output.report import ReportInfo
    from dupfinder.reporting import Reporter
    from dupfinder.scan.options import Roots, ScanOptions
    from dupfinder.scan.pipeline import ScanSummary
    from dupfinder.states import Action, EntryState, GroupSort, KeepPolicy, RunStatus, ScanStatus
