"""Which files and groups a question is about: host, folders, size, scope, references.

Folders select groups in one of three ways (:class:`dupfinder.states.Scope`): groups that
touch a folder, shown with all their files wherever they are ("what here exists
elsewhere"); only the files within the folders; or groups spanning two or more of the
folders, with their files there ("what do these folders have in common"). Reference folders
keep only groups with a file under one of them (on a given host, or any).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, func, literal, or_
from sqlalchemy.sql.expression import Label

from dupfinder.db.file_rows import under
from dupfinder.db.models import FileHash
from dupfinder.states import Scope

F = FileHash


class Reference(NamedTuple):
    """A reference folder: files under it are originals, kept and never acted on."""

    folder: str
    host: str | None = None  # None: that folder on any host

    def condition(self, hosts: Sequence[str] | None = None) -> ColumnElement[bool]:
        """SQL: the file lies under this reference folder (with ``hosts``, the catalogue's,
        as ranges of the (host, path) index)."""
        if self.host is not None:
            return and_(F.host == self.host, under([self.folder]))
        return under([self.folder], hosts)

    def holds(self, path: str, host: str) -> bool:
        """Whether the file at ``path`` on ``host`` lies under this reference folder."""
        from dupfinder.paths import is_under

        return (self.host is None or self.host == host) and is_under(path, self.folder)


class Selection(NamedTuple):
    """Which files a read looks at: one host's, under some folders (selecting groups by
    ``scope``), of a minimum size, in groups that have a file in a reference folder."""

    host: str | None = None
    roots: Sequence[str] | None = None
    min_size: int = 0
    scope: Scope = Scope.WITHIN
    references: Sequence[Reference] = ()

    def file_conditions(self, folders: bool = True) -> list[ColumnElement[bool]]:
        """SQL: the file is of the host, of the size and (``folders``) under the folders."""
        conds: list[ColumnElement[bool]] = [F.size >= self.min_size]
        if self.host:
            conds.append(F.host == self.host)
        if self.roots and folders:
            conds.append(under(self.roots))
        return conds

    def member_conditions(self) -> list[ColumnElement[bool]]:
        """SQL: the file may be a member of a group (folders only limit the members
        within and across them; groups touching a folder keep all their files). The size
        is the content's, checked once per group, so a group's files come from
        ``ix_file_hashes_content`` alone."""
        conds: list[ColumnElement[bool]] = []
        if self.host:
            conds.append(F.host == self.host)
        if self.roots and self.scope != Scope.TOUCHING:
            conds.append(under(self.roots))
        return conds

    def inode_flags(self) -> list[Label[Any]]:
        """Per-inode columns (1 or 0) that the group conditions add up."""
        flags: list[Label[Any]] = []
        if self.roots and self.scope == Scope.TOUCHING:
            flags.append(_flag(under(self.roots), "in_roots"))
        if self.roots and self.scope == Scope.ACROSS:
            flags.extend(_flag(under([r]), f"in_root_{i}") for i, r in enumerate(self.roots))
        if self.references:
            flags.append(_flag(or_(*(r.condition() for r in self.references)), "in_refs"))
        return flags

    def group_conditions(self, per_inode: Any) -> list[ColumnElement[bool]]:
        """HAVING conditions on a group of the per-inode rows."""
        c = per_inode.c
        conds: list[ColumnElement[bool]] = []
        if self.roots and self.scope == Scope.TOUCHING:
            conds.append(func.max(c.in_roots) > 0)
        if self.roots and self.scope == Scope.ACROSS:
            spanned = sum((func.max(c[f"in_root_{i}"]) for i in range(len(self.roots))),
                          literal(0))
            conds.append(spanned >= 2)
        if self.references:
            conds.append(func.max(c.in_refs) > 0)
        return conds


def _flag(cond: ColumnElement[bool], name: str) -> Label[Any]:
    return func.max(case((cond, 1), else_=0)).label(name)


EVERYTHING = Selection()
