"""Files under some folders with too few copies elsewhere ("what exists only here?").

The files examined are one host's catalogue rows under the filesystem folders ``roots``. A
*copy* of such a file is another catalogued file with the same content that

* lies outside the roots, or on another host (the roots are folders of the examined host),
* is on one of the counted ``hosts`` (default: every host), and
* is a different inode: a hard link (same host, device and inode) is the same file, not a
  copy. Hard links of one inode outside the roots count as one copy.

Same content means the same size and, for a non-empty file, the same full hash by the same
algorithm (``hash_algo``). Empty files all have the same content and need no hash.

Rule for files that are not hashed yet (the scanner hashes a file only when its size
collides with another inode's, and reads it in full only when the prefix hashes collide too):
an outside file of the same size is a *possible* copy unless the hashes both sides have
prove the contents differ (different prefix hash or different full hash by the same
algorithm). A file whose known copies are fewer than ``min_copies`` is reported; it is
reported as ``undecided`` when its known plus possible copies would reach ``min_copies``,
i.e. when the answer depends on hashes not computed yet (a scan of both sides computes
them). In particular a file whose size no outside file has is unique without being hashed.

The cost follows the answer: the examined rows are a range of the (host, path) index, read
a page at a time; a hashed file's copies are the other rows of its content
(``ix_file_hashes_content``); possible copies are ranges of ``ix_file_hashes_size`` (rows of
the size not hashed, or by another algorithm, or with the same prefix and no full hash),
which a fully scanned catalogue leaves nearly empty. Results stream, ordered by path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from dupfinder.db.rows import CatalogRow, rows_under
from dupfinder.db.stored_paths import subtree_range, to_db
from dupfinder.paths import outermost

PAGE = 1000  # examined files per round of look-ups


class UniqueFile(NamedTuple):
    """A file under the roots with fewer than ``min_copies`` known copies outside them.

    ``copies`` counts the known copies (distinct inodes); ``undecided`` is true when files
    of the same size outside are not hashed enough to tell, and counting them as copies
    would reach ``min_copies``.
    """

    path: str
    host: str
    size: int
    copies: int
    undecided: bool


class UniqueTotals(NamedTuple):
    """How many reported files, and their bytes (each inode counted once)."""

    files: int
    bytes: int


class _Other(NamedTuple):
    """A catalogued file that may be a copy: who holds it, where, and its hashes."""

    host: str
    device: int
    inode: int
    key: str  # the stored path, as an order key
    algo: str | None
    prefix: str | None
    full: str | None


_FIELDS = "host, device, inode, path, hash_algo, prefix_hash, full_hash"


class _Question:
    """One ``unique`` question: the examined host and folders, the hosts that count."""

    def __init__(self, conn: Connection, roots: Sequence[str], host: str,
                 hosts: Iterable[str] | None, min_copies: int) -> None:
        self.conn, self.host, self.min_copies = conn, host, min_copies
        self.hosts = None if hosts is None else set(hosts)
        self.ranges = [(to_db(r), *subtree_range(to_db(r))) for r in roots]

    def outside(self, o: _Other) -> bool:
        """Whether ``o`` may count as a copy at all: outside the roots, on a counted host."""
        if self.hosts is not None and o.host not in self.hosts:
            return False
        if o.host != self.host:
            return True
        return not any(o.key == root or lo <= o.key < hi for root, lo, hi in self.ranges)

    def _rows(self, where: str, params: dict[str, object]) -> list[_Other]:
        found = self.conn.execute(text(f"SELECT {_FIELDS} FROM file_hashes WHERE {where}"),
                                  params)
        return [o for o in map(_Other._make, found.cursor.fetchall()) if self.outside(o)]

    def members(self, content_ids: list[int]) -> dict[int, list[_Other]]:
        """The outside files of these contents."""
        out: dict[int, list[_Other]] = {}
        for i in range(0, len(content_ids), 500):
            part = content_ids[i:i + 500]
            marks = ", ".join(f":c{n}" for n in range(len(part)))
            found = self.conn.execute(text(
                f"SELECT content_id, {_FIELDS} FROM file_hashes "
                f"WHERE content_id IN ({marks})"), {f"c{n}": c for n, c in enumerate(part)})
            for cid, *rest in found.cursor.fetchall():
                o = _Other(*rest)
                if self.outside(o):
                    out.setdefault(cid, []).append(o)
        return out

    def possible(self, size: int, algo: str | None, prefix: str | None, full: bool
                 ) -> list[_Other]:
        """Outside files of ``size`` whose hashes do not prove them another content than a
        file with these hashes (ranges of the size index)."""
        p = {"s": size, "a": algo, "p": prefix}
        if algo is None or prefix is None:  # no hash: every file of the size may be one
            return self._rows("size = :s", p)
        found = (self._rows("size = :s AND hash_algo IS NULL", p)
                 + self._rows("size = :s AND hash_algo < :a", p)
                 + self._rows("size = :s AND hash_algo > :a", p))
        same_prefix = "size = :s AND hash_algo = :a AND prefix_hash = :p"
        if full:  # a full hash by our algorithm proves either way; only one missing may not
            same_prefix += " AND full_hash IS NULL"
        return found + self._rows(same_prefix, p)


def _inodes(others: Iterable[_Other]) -> set[tuple[str, int, int]]:
    return {(o.host, o.device, o.inode) for o in others}


def unique_files(session: Session, roots: Sequence[str] | None, min_copies: int = 1,
                 hosts: Iterable[str] | None = None, *, host: str,
                 undecided: bool | None = None) -> Iterator[UniqueFile]:
    """Stream ``host``'s files under the filesystem folders ``roots`` that have fewer than
    ``min_copies`` known copies outside them, ordered by path.

    Copies on every host count unless ``hosts`` names the hosts that do (``host`` itself
    included: its files outside the roots count only when it is named). ``undecided``:
    None reports every such file, True only the undecided ones, False only the decided
    ones. No ``roots`` examines every file of the host (copies then lie on other hosts).
    """
    for f, copies, maybe in _examined(session, roots or ["/"], min_copies, hosts, host):
        if copies >= min_copies:
            continue
        is_undecided = copies + maybe >= min_copies
        if undecided is None or undecided == is_undecided:
            yield UniqueFile(f.path, host, int(f.size), copies, is_undecided)


def _examined(session: Session, roots: Sequence[str], min_copies: int,
              hosts: Iterable[str] | None, host: str
              ) -> Iterator[tuple[CatalogRow, int, int]]:
    """Each examined file with its known and possible copies (distinct inodes)."""
    conn = session.connection()
    # each file once, however the roots nest
    roots = sorted(outermost(roots), key=lambda r: to_db(r.rstrip("/") + "/"))
    q = _Question(conn, roots, host, hosts, min_copies)
    page: list[CatalogRow] = []
    for row in rows_under(conn, host, roots, scan_id=0):
        page.append(row)
        if len(page) >= PAGE:
            yield from _judge(q, page)
            page = []
    yield from _judge(q, page)


def _judge(q: _Question, page: list[CatalogRow]) -> Iterator[tuple[CatalogRow, int, int]]:
    hashed = sorted({r.content_id for r in page if r.content_id is not None and r.size})
    members = q.members(hashed) if hashed else {}
    empty: set[tuple[str, int, int]] | None = None
    looked: dict[tuple[int, str | None, str | None, bool], set[tuple[str, int, int]]] = {}
    for r in page:
        own = (q.host, r.device, r.inode)
        if r.size == 0:  # every empty file is the same content
            if empty is None:
                empty = _inodes(q._rows("size = 0", {}))
            yield r, len(empty - {own}), 0
            continue
        full = r.full is not None and r.algo is not None
        known = _inodes(members.get(r.content_id, [])) - {own} if full else set()
        key = (r.size, r.algo if r.prefix else None, r.prefix if r.algo else None, full)
        if key not in looked:
            looked[key] = _inodes(q.possible(*key))
        maybe = looked[key] - known - {own}
        yield r, len(known), len(maybe)


def unique_totals(session: Session, roots: Sequence[str] | None, min_copies: int = 1,
                  hosts: Iterable[str] | None = None, *, host: str,
                  undecided: bool | None = None) -> UniqueTotals:
    """(files, bytes) of what :func:`unique_files` reports: ``files`` counts paths;
    ``bytes`` counts each inode once (hard links under the roots take the space once)."""
    files = 0
    nbytes = 0
    seen: set[tuple[int, int]] = set()
    for f, copies, maybe in _examined(session, roots or ["/"], min_copies, hosts, host):
        if copies >= min_copies:
            continue
        is_undecided = copies + maybe >= min_copies
        if undecided is not None and undecided != is_undecided:
            continue
        files += 1
        if (f.device, f.inode) not in seen:
            seen.add((f.device, f.inode))
            nbytes += int(f.size)
    return UniqueTotals(files, nbytes)

