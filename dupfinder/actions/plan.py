"""Which copy of each group stays, and what happens to the others."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dupfinder.db.queries import Group, GroupFile
from dupfinder.paths import is_under

ACTIONS = ("delete", "trash", "hardlink", "symlink", "move")
KEEP_POLICIES = ("oldest", "newest", "shortest-path", "longest-path", "first-root")


@dataclass(frozen=True)
class Planned:
    """One action on one duplicate, with the copy that stays."""

    action: str
    path: str
    kept: str
    size: int
    full_hash: str
    mtime_ns: int
    kept_mtime_ns: int
    device: int
    inode: int


def _rank(path: str, folders: Sequence[str]) -> int:
    for i, folder in enumerate(folders):
        if is_under(path, folder):
            return i
    return len(folders)


def keeper(files: Sequence[GroupFile], keep: str, prefer: Sequence[str] = (),
           roots: Sequence[str] = ()) -> GroupFile:
    """The copy that stays: under the first ``--prefer`` folder if any, then by policy, then
    by path (byte order), so the choice never depends on the order rows arrive in."""
    def policy(f: GroupFile) -> tuple[int, ...]:
        if keep == "oldest":
            return (f.mtime_ns,)
        if keep == "newest":
            return (-f.mtime_ns,)
        if keep == "shortest-path":
            return (len(f.path),)
        if keep == "longest-path":
            return (-len(f.path),)
        if keep == "first-root":
            return (_rank(f.path, roots),)
        raise ValueError(f"unknown keep policy {keep!r}")

    return min(files, key=lambda f: (_rank(f.path, prefer), *policy(f), os.fsencode(f.path)))


def plan(groups: Iterable[Group], action: str, keep: str = "oldest",
         prefer: Sequence[str] = (), roots: Sequence[str] = ()) -> list[Planned]:
    """Actions for every duplicate of every group; the keeper and its hard links are left
    alone (they are one file already)."""
    planned: list[Planned] = []
    for group in groups:
        kept = keeper(group.files, keep, prefer, roots)
        for f in sorted(group.files, key=lambda f: os.fsencode(f.path)):
            if (f.device, f.inode) == (kept.device, kept.inode):
                continue
            planned.append(Planned(action, f.path, kept.path, group.size, group.hash,
                                   f.mtime_ns, kept.mtime_ns, f.device, f.inode))
    return planned


def reclaimable(planned: Iterable[Planned]) -> int:
    """Bytes freed if every action succeeds: each duplicate inode counts once (``move``
    frees nothing on the whole, it only relocates)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in planned:
        if p.action != "move" and (p.device, p.inode) not in seen:
            seen.add((p.device, p.inode))
            total += p.size
    return total
