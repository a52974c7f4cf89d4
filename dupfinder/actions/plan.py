"""Which copy of each group stays, what happens to the others, and the rules a plan obeys.

A plan only ever names this host's files (another host's files cannot be read, so they can
neither be verified nor touched), and a ``move`` plan's target lies outside every folder it
takes files from. :mod:`dupfinder.actions.apply` checks both again before acting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dupfinder.db import queries
from dupfinder.db.queries import Group, GroupFile
from dupfinder.db.selection import Reference, Selection
from dupfinder.errors import SafetyError, UsageError, param
from dupfinder.paths import absolute, display, for_message, in_trash, is_under
from dupfinder.states import Action, KeepPolicy
from dupfinder.units import parse_size

if TYPE_CHECKING:
    from dupfinder.db.engine import Database


@dataclass(frozen=True)
class Planned:
    """One action on one duplicate, with the copy that stays."""

    action: Action
    path: str
    kept: str
    size: int
    full_hash: str
    mtime_ns: int
    kept_mtime_ns: int
    device: int
    inode: int


@dataclass
class Plan:
    """What a dedupe run will do: one :class:`Planned` per duplicate, and the options that
    chose them (``roots`` are the folders the files were taken from)."""

    host: str
    action: Action
    keep: KeepPolicy
    prefer: list[str]
    roots: list[str]
    to: str | None
    min_size: int
    actions: list[Planned] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)

    def __iter__(self) -> Iterator[Planned]:
        return iter(self.actions)

    @property
    def reclaimable(self) -> int:
        """Bytes freed if every action succeeds: each duplicate inode counts once (``move``
        frees nothing on the whole, it only relocates)."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for p in self.actions:
            if p.action != Action.MOVE and (p.device, p.inode) not in seen:
                seen.add((p.device, p.inode))
                total += p.size
        return total

    def options(self) -> dict[str, Any]:
        """The plan's options as the journal records them."""
        return {"action": str(self.action), "keep": str(self.keep), "prefer": self.prefer,
                "roots": self.roots, "to": self.to, "min_size": self.min_size}


def _rank(path: str, folders: Sequence[str]) -> int:
    for i, folder in enumerate(folders):
        if is_under(path, folder):
            return i
    return len(folders)


def keeper(files: Sequence[GroupFile], keep: KeepPolicy, prefer: Sequence[str] = (),
           roots: Sequence[str] = (), linked: frozenset[str] = frozenset(),
           references: Sequence[Reference] = (), outside_first: bool = False) -> GroupFile:
    """The copy that stays: never one in a trash folder, nor a copy outside ``roots`` that
    is gone from disk (when ``outside_first``); then a file that symbolic links made by
    dedupe point to (so they never dangle), then one under a reference folder, then one
    under the first ``prefer`` folder, then (``outside_first``: deduping some folders
    against copies elsewhere) one outside ``roots``, then by policy, then by path (byte
    order), so the choice never depends on the order rows arrive in."""
    policy = KeepPolicy(keep)

    def inside(f: GroupFile) -> bool:
        return outside_first and any(is_under(f.path, r) for r in roots)

    def by_policy(f: GroupFile) -> tuple[int, ...]:
        if policy == KeepPolicy.OLDEST:
            return (f.mtime_ns,)
        if policy == KeepPolicy.NEWEST:
            return (-f.mtime_ns,)
        if policy == KeepPolicy.SHORTEST_PATH:
            return (len(f.path),)
        if policy == KeepPolicy.LONGEST_PATH:
            return (-len(f.path),)
        return (_rank(f.path, roots),)

    def stale(f: GroupFile) -> bool:
        # a copy outside the folders asked about that is gone since its own folder was
        # scanned: never the one to keep (inside them, a keeper gone since the scan makes
        # its group a skip, as the catalogue is out of date right where the user acts)
        return outside_first and not inside(f) and not os.path.isfile(f.path)

    return min(files, key=lambda f: (in_trash(f.path), stale(f), f.path not in linked,
                                     not any(r.holds(f.path, f.host) for r in references),
                                     _rank(f.path, prefer), inside(f),
                                     *by_policy(f), os.fsencode(f.path)))


def plan_groups(groups: Iterable[Group], action: Action, keep: KeepPolicy = KeepPolicy.OLDEST,
                prefer: Sequence[str] = (), roots: Sequence[str] = (),
                linked: frozenset[str] = frozenset(),
                references: Sequence[Reference] = ()) -> list[Planned]:
    """Actions for the duplicates under ``roots`` (everywhere when there are none) of every
    group; the keeper and its hard links are left alone (they are one file already), and so
    is every file under a reference folder. A group whose every copy lies in a trash folder
    is left alone too. A copy outside ``roots`` is kept in preference,
    so that deduping a folder against copies elsewhere empties the folder."""
    planned: list[Planned] = []
    for group in groups:
        kept = keeper(group.files, keep, prefer, roots, linked, references,
                      outside_first=bool(roots))
        if in_trash(kept.path):
            continue  # every copy is in a trash folder: none is kept, so none is touched
        for f in sorted(group.files, key=lambda f: os.fsencode(f.path)):
            if (f.device, f.inode) == (kept.device, kept.inode):
                continue
            if roots and not any(is_under(f.path, r) for r in roots):
                continue  # only files under the folders asked about are acted on
            if any(r.holds(f.path, f.host) for r in references):
                continue
            planned.append(Planned(Action(action), f.path, kept.path, group.size, group.hash,
                                   f.mtime_ns, kept.mtime_ns, f.device, f.inode))
    return planned


def check_move_target(to: str | None, roots: Sequence[str]) -> str:
    """The folder ``move`` puts files in, made absolute; it must exist as a folder or not at
    all, have no symbolic link in its path (a link there could redirect files into the
    scanned tree), and lie outside every folder in ``roots``."""
    if to is None:
        raise UsageError(f"{param('action')} move needs {param('to DIR')}")
    target = absolute(to)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{param('to')} {for_message(to)} is a file, not a folder")
    probe = target
    while probe != "/":
        if os.path.islink(probe):
            raise SafetyError(f"{param('to')} {for_message(to)}: {for_message(probe)} is a "
                              "symbolic link; give a path without links")
        probe = os.path.dirname(probe)
    real = os.path.realpath(target)
    for r in roots:
        # a root scanned through a link (``scan lnk``) holds the files of its target too
        if any(is_under(t, root) for t in (target, real)
               for root in {r, os.path.realpath(r)}):
            raise SafetyError(f"{param('to')} {for_message(to)} lies inside the scanned folder "
                              f"{for_message(r)}; choose a folder outside it")
    return target


def scanned_roots(db: Database, host: str) -> list[str]:
    """Every folder ``host`` has scanned into the catalogue (a move plan's target must lie
    outside all of them)."""
    with db.session() as s:
        return queries.scanned_roots(s, host)


@dataclass(frozen=True)
class PlanRequest:
    """What ``dedupe`` asks for, as :meth:`dupfinder.Catalogue.plan_dedupe` takes it."""

    action: Action
    roots: list[str]
    keep: KeepPolicy
    prefer: list[str]
    to: str | None
    min_size: int | str  # as given: checked after the target
    references: list[Reference]
    within: bool


def make_plan(db: Database, host: str, ask: PlanRequest,
              select: Callable[[list[str], int, bool, list[Reference]], Selection]) -> Plan:
    """The plan for ``ask`` over ``host``'s files, checked as a plan must be: ``to`` only
    with ``move`` and outside every scanned folder, references of this host only (another
    host's files cannot be compared byte for byte from here), and no file that a symbolic
    link of an earlier run points at. ``select(roots, min_size, within, references)`` is
    the question's selection."""
    from dupfinder.actions import recover

    if ask.to is not None and ask.action != Action.MOVE:
        raise UsageError(f"{param('to')} only goes with {param('action')} move")
    target = None
    if ask.action == Action.MOVE:
        target = check_move_target(ask.to, ask.roots or scanned_roots(db, host))
    minimum = parse_size(ask.min_size, param("min_size"))
    for r in ask.references:
        if r.host not in (None, host):
            raise SafetyError(f"{param('reference')} {r.host}:{display(r.folder)}: another host's "
                              "files cannot be compared byte for byte from here; dedupe "
                              "against a reference folder of this host")
    refs = [Reference(r.folder, host) for r in ask.references]
    linked = recover.symlink_targets(db, host)
    sel = select(ask.roots, minimum, ask.within, refs)
    with db.session() as s:
        groups = queries.iter_groups(s, sel._replace(host=host))
        actions = plan_groups(groups, ask.action, ask.keep, ask.prefer, ask.roots, linked,
                              refs)
    return Plan(host, ask.action, ask.keep, ask.prefer,
                (ask.roots or scanned_roots(db, host)) if ask.action == Action.MOVE
                else ask.roots,
                target, minimum, actions)
