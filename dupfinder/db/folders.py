"""Duplicate folders: folders whose whole subtree holds the same files as another folder's.

Rules
-----
* Two folders are duplicates when their subtrees hold the same *multiset of contents*: the
  same number of files and, file for file, the same content. Names and layout are ignored
  by default; ``same_names=True`` also requires the same relative paths (so the same
  layout). A folder with one file more, one file less or one file different is not a
  duplicate.
* Content is (size, hash algorithm, full hash); every empty file has the same content. A
  file with no full hash (its size or prefix matched no other inode, so the scanner did not
  read it in full) is its own inode: it matches only its hard links. So a folder whose files
  are hard links of another folder's files *is* a duplicate folder by content (its
  ``wasted`` bytes are then apparent size, not space a dedupe would free).
* A folder is a folder of a host: its files are that host's catalogue rows below it.
  Folders of one group may be on different hosts. Empty folders are not in the catalogue
  and play no part; a folder holding only an empty subfolder is just its files.
* Only folders the catalogue fully knows take part: at or below ``roots`` when given
  (applied on every host), otherwise at or below the folders each host has scanned (the
  catalogue holds only part of what lies above them).
* A folder that holds nothing but one subfolder has the same files as that subfolder; the
  pair is one set of files, never a duplicate of itself, and is reported as the upper one.
* Only the topmost matches are reported: a group is left out when each of its folders lies
  inside a folder that is itself in a duplicate group (the subfolders of two equal folders
  are equal too). A group with at least one folder that is not inside such a folder is
  reported with all its folders, so its ``wasted`` may overlap an enclosing group's.
* ``wasted`` is the size of all but one folder of the group.

Method
------
One streamed query reads the selected files (host, path, size, algorithm, full hash, device,
inode). Each folder gets a signature bottom-up (children before parents, linear in files
plus folders): (file count, total size, sum modulo 2**128 of a 128-bit BLAKE2b digest per
file content). With ``same_names`` the sum is a Merkle form: each file adds the digest of
(name, content) and each subfolder the digest of (name, its signature). Only folders are
held in memory, never files (a tree of every file made memory grow with the file count).
Folders with equal signatures are candidates; each reported group is then checked
exactly, reading its folders' files again (the sorted contents, or sorted (relative path,
content) pairs, compared), and split if a digest ever collided.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from dupfinder.db.bulk import stream_raw
from dupfinder.db.file_rows import under_roots
from dupfinder.db.models import FileHash, ScanMetadata
from dupfinder.db.stored_paths import DbPath, db_roots, from_db
from dupfinder.paths import is_under, outermost

F = FileHash
_MASK = (1 << 128) - 1


class FolderRef(NamedTuple):
    """A folder of one host."""

    path: str
    host: str


@dataclass
class FolderGroup:
    """Folders holding the same files: ``files`` and ``size`` are one folder's."""

    folders: list[FolderRef]
    files: int
    size: int
    wasted: int


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@dataclass
class _Folder:
    host: str
    path: str  # stored form
    parent: int | None
    count: int = 0
    size: int = 0
    total: int = 0  # the digest sum (mod 2**128)
    children: list[int] = field(default_factory=list)


def _content(host: str, size: int, algo: str | None, full: str | None, device: int,
             inode: int) -> tuple[Any, ...]:
    """What makes two files the same content (see the rules above)."""
    if size == 0:
        return (0,)
    if full is not None and algo is not None:
        return (size, algo, full)
    return ("inode", host, device, inode, size)  # never read in full: only its hard links


def _norm(root: str) -> str:
    return root.rstrip("/") or "/"


def _minimal(roots: Iterable[str]) -> list[str]:
    """The roots with every root below another one left out."""
    return outermost(_norm(r) for r in roots)


def _bounds(session: Session, roots: Sequence[str] | None, host: str | None
            ) -> dict[str | None, list[str]]:
    """host (None: every host) -> the stored-form folders below which folders count."""
    if roots:
        return {host: _minimal(db_roots(roots))}
    found: dict[str | None, set[str]] = defaultdict(set)
    stmt = select(ScanMetadata.host, ScanMetadata.roots)
    if host:
        stmt = stmt.where(ScanMetadata.host == host)
    for h, scanned in session.execute(stmt):
        found[h].update(db_roots(scanned or []))
    return {h: _minimal(rs) for h, rs in found.items() if rs}


def _condition(bounds: dict[str | None, list[str]]) -> ColumnElement[bool]:
    parts = []
    for h, rs in bounds.items():
        cond = under_roots([DbPath(r) for r in rs])
        parts.append(cond if h is None else and_(F.host == h, cond))
    return or_(*parts)


class _Tree:
    """Every folder with its file count, size and digest sum, built from a stream of file
    rows (the files themselves are not kept)."""

    def __init__(self, bounds: dict[str | None, list[str]], same_names: bool) -> None:
        self.bounds, self.same_names = bounds, same_names
        self.folders: list[_Folder] = []
        self.index: dict[tuple[str, str], int | None] = {}

    def folder(self, host: str, path: str) -> int | None:
        """The folder's index, registering it and its parents up to its root (None: the
        folder lies above every root)."""
        key = (host, path)
        if key in self.index:
            return self.index[key]
        roots = self.bounds.get(host, self.bounds.get(None, []))
        top = next((r for r in roots if is_under(path, r)), None)
        if top is None:
            self.index[key] = None
            return None
        parent = None
        if path != top:
            up = path.rpartition("/")[0] or "/"
            parent = self.folder(host, up)
        i = len(self.folders)
        self.folders.append(_Folder(host, path, parent))
        self.index[key] = i
        if parent is not None:
            self.folders[parent].children.append(i)
        return i

    def add(self, host: str, path: str, size: int, algo: str | None, full: str | None,
            device: int, inode: int) -> None:
        folder, _, name = path.rpartition("/")
        i = self.folder(host, folder or "/")
        if i is None:
            return
        digest = _digest(_encode(repr(_content(host, size, algo, full, device, inode))))
        if self.same_names:
            digest = _digest(b"f" + _encode(name) + b"\0" + digest.to_bytes(16, "big"))
        f = self.folders[i]
        f.total += digest
        f.count += 1
        f.size += size

    def signatures(self) -> list[tuple[int, int, int]]:
        """Each folder's (files, size, digest sum), children before parents."""
        folders = self.folders
        for i in sorted(range(len(folders)), key=lambda k: -len(folders[k].path)):
            f = folders[i]
            f.total &= _MASK
            if f.parent is None:
                continue
            p = folders[f.parent]
            p.count += f.count
            p.size += f.size
            if self.same_names:
                name = f.path.rpartition("/")[2]
                p.total += _digest(b"d" + _encode(name) + b"\0" + f.count.to_bytes(8, "big")
                                   + f.size.to_bytes(8, "big") + f.total.to_bytes(16, "big"))
            else:
                p.total += f.total
        return [(f.count, f.size, f.total) for f in folders]


def _exact(session: Session, folder: _Folder, same_names: bool) -> tuple[Any, ...]:
    """The folder's sorted contents (with relative paths when ``same_names``), read again
    from the catalogue: only the folders of candidate groups are ever read twice."""
    stmt = select(F.path, F.size, F.hash_algo, F.full_hash, F.device, F.inode).where(
        F.host == folder.host, under_roots([DbPath(folder.path)]))
    start = len(folder.path.rstrip("/")) + 1
    out: list[Any] = []
    for path, size, algo, full, device, inode in stream_raw(session, stmt):
        content = repr(_content(folder.host, size, algo, full, device, inode))  # sortable
        out.append((path[start:], content) if same_names else content)
    return tuple(sorted(out))


def duplicate_folders(session: Session, roots: Sequence[str] | None = None,
                      host: str | None = None, same_names: bool = False) -> list[FolderGroup]:
    """Groups of folders holding the same files, topmost matches only, most wasted bytes
    first (rules in the module's documentation). ``roots`` are filesystem folders (on every
    host, or on ``host`` only)."""
    bounds = _bounds(session, roots, host)
    if not bounds:
        return []
    conds = [_condition(bounds)]
    if host:
        conds.append(F.host == host)
    stmt = select(F.host, F.path, F.size, F.hash_algo, F.full_hash, F.device, F.inode
                  ).where(*conds)
    tree = _Tree(bounds, same_names)
    for row in stream_raw(session, stmt):
        tree.add(*row)
    sigs = tree.signatures()
    folders = tree.folders

    by_sig: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, sig in enumerate(sigs):
        f = folders[i]
        # a folder that is all of its parent is one set of files with it: keep the parent
        if f.count and (f.parent is None or sigs[f.parent] != sig):
            by_sig[sig].append(i)
    groups = [members for members in by_sig.values() if len(members) > 1]
    in_group = {i for members in groups for i in members}

    covered = [False] * len(folders)  # lies inside a folder of some group
    for i in sorted(range(len(folders)), key=lambda k: len(folders[k].path)):
        p = folders[i].parent
        covered[i] = p is not None and (covered[p] or p in in_group)

    result: list[FolderGroup] = []
    for members in groups:
        if all(covered[i] for i in members):
            continue
        exact: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i in members:
            exact[_exact(session, folders[i], same_names)].append(i)
        for same in exact.values():
            if len(same) < 2:
                continue
            first = folders[same[0]]
            refs = sorted((FolderRef(from_db(folders[i].path), folders[i].host) for i in same),
                          key=lambda r: (r.host, r.path))
            result.append(FolderGroup(refs, first.count, first.size,
                                      first.size * (len(same) - 1)))
    result.sort(key=lambda g: (-g.wasted, -g.size, g.folders))
    return result
