"""The catalogue rows a scan compares its walk with, and writes.

A rescan reads the host's rows under its roots in (host, path) order, a page at a time by
key (:func:`rows_under`), while the walk yields the same order: the two are compared by a
merge join in :mod:`dupfinder.scan.sync`, with nothing of the catalogue held in memory.
What the comparison finds is written by a :class:`RowWriter` in key order
and in bulk: new rows inserted, changed rows updated (their hashes and content cleared),
gone rows removed, the contents of changed and removed rows recounted in the same
transaction, everything committed at least once a second.

Callers give and get filesystem paths; the stored form is made here. :attr:`CatalogRow.key`
is that form as an opaque key: the order in which the index holds the rows.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, text

from dupfinder.db import contents
from dupfinder.db.bulk import signed64
from dupfinder.db.stored_paths import DbPath, from_db, subtree_range, to_db

PAGE = 5000  # rows per read
FLUSH_ROWS = 20_000  # rows written before a commit, at the latest
_COLUMNS = ("id, path, size, mtime_ns, device, inode, nlink, prefix_hash, full_hash, "
            "hash_algo, content_id")


class CatalogRow(NamedTuple):
    """A catalogued file as a rescan sees it."""

    id: int
    key: str  # the catalogue's order key of the path
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int
    prefix: str | None
    full: str | None
    algo: str | None
    content_id: int | None

    @property
    def path(self) -> str:
        """The filesystem path."""
        return from_db(self.key)


def _page(conn: Connection, where: str, params: dict[str, Any]) -> list[CatalogRow]:
    result = conn.execute(text(f"SELECT {_COLUMNS} FROM file_hashes WHERE {where} "
                               f"ORDER BY path LIMIT {PAGE}"), params)
    # the driver's own tuples: a SQLAlchemy row per catalogue row cost more than the read
    return list(map(CatalogRow._make, result.cursor.fetchall()))


def rows_under(conn: Connection, host: str, roots: Sequence[str], scan_id: int,
               in_key_order: bool = False) -> Iterator[CatalogRow]:
    """The host's rows under ``roots`` (in the walk's order) in (host, path) order, a page
    at a time. Rows this scan has written are left out: they are behind the walk already.
    A root's own row comes before the rows below it; ``in_key_order`` reads every root's
    own row and subtree in the order of their keys instead (a file ``a/b-x`` sorts
    between ``a/b`` and ``a/b/``), as a walk of parts of the roots yields them."""
    mine = "host = :host AND (scan_id IS NULL OR scan_id != :scan)"
    spans: list[tuple[str, str | None]] = []  # (the key, None) or [lo, hi)
    for root in roots:
        key = to_db(root)
        lo, hi = subtree_range(key)
        spans += [(key, None), (lo, hi)]
    if in_key_order:
        spans.sort()
    for lo, hi in spans:
        params: dict[str, Any] = {"host": host, "scan": scan_id, "root": lo}
        if hi is None:
            yield from _page(conn, f"{mine} AND path = :root", params)
            continue
        last, first = lo, True
        while True:
            cmp = ">=" if first else ">"
            page = _page(conn, f"{mine} AND path {cmp} :last AND path < :hi",
                         {**params, "last": last, "hi": hi})
            yield from page
            if len(page) < PAGE:
                break
            last, first = page[-1].key, False


def outside_exists(conn: Connection, host: str, roots: Sequence[str]) -> bool:
    """Whether the catalogue holds any row that a walk of ``roots`` by ``host`` does not
    cover: another host's, or this host's outside the roots (each gap a range of the
    index, looked at for one row)."""
    for other in ("host < :h", "host > :h"):  # each a seek ("!=" read the whole index)
        if conn.execute(text(f"SELECT 1 FROM file_hashes WHERE {other} LIMIT 1"),
                        {"h": host}).first() is not None:
            return True
    for lo, lo_open, hi in _gaps([to_db(r) for r in roots]):
        conds = ["host = :h"]
        if lo is not None:
            conds.append("path > :lo" if lo_open else "path >= :lo")
        if hi is not None:
            conds.append("path < :hi")
        if conn.execute(text(f"SELECT 1 FROM file_hashes WHERE {' AND '.join(conds)} LIMIT 1"),
                        {"h": host, "lo": lo, "hi": hi}).first() is not None:
            return True
    return False


def _gaps(roots: list[str]) -> list[tuple[str | None, bool, str | None]]:
    """The key ranges (lo, lo excluded?, hi excluded) that no root covers: a root covers
    its own key and the range of the keys below it."""
    covered: list[tuple[str, str, bool]] = []  # (start, end, end included)
    for root in roots:
        lo, hi = subtree_range(DbPath(root))
        covered += [(root, root, True), (lo, hi, False)]
    covered.sort()
    gaps: list[tuple[str | None, bool, str | None]] = []
    pos: str | None = None
    pos_open = False  # whether pos itself is covered
    for start, end, end_in in covered:
        if pos is None or start > pos:
            gaps.append((pos, pos_open, start))
        if pos is None or end > pos or (end == pos and end_in):
            pos, pos_open = end, end_in
    gaps.append((pos, pos_open, None))
    return gaps


class SizeRow(NamedTuple):
    """A catalogued file of a size the walk has: what deciding on hashing it needs."""

    id: int
    host: str
    path: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    prefix: str | None
    full: str | None
    algo: str | None


def rows_of_sizes(conn: Connection, sizes: Iterable[int]) -> list[SizeRow]:
    """Every row of these sizes (through ``ix_file_hashes_size``)."""
    wanted = sorted(set(sizes))
    out: list[SizeRow] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        marks = ", ".join(f":s{n}" for n in range(len(chunk)))
        for r in conn.execute(text(
                "SELECT id, host, path, size, mtime_ns, device, inode, prefix_hash, "
                f"full_hash, hash_algo FROM file_hashes WHERE size IN ({marks})"),
                {f"s{n}": s for n, s in enumerate(chunk)}):
            out.append(SizeRow(r[0], r[1], from_db(r[2]), *r[3:]))
    return out


class NewRow(NamedTuple):
    """A file the walk found that the catalogue does not hold (or held as another file);
    ``key`` is its path's order key (:func:`dupfinder.db.stored_paths.order_key`), which is the
    stored form."""

    path: str
    key: str
    name: str
    size: int
    mtime_ns: int
    device: int
    inode: int
    nlink: int


class RowWriter:
    """Writes what a sync finds, on the sync's connection, in bulk and in key order.

    :meth:`add`, :meth:`change` and :meth:`remove` queue; every ``FLUSH_ROWS`` queued rows
    or ``interval`` seconds they are written and committed, and ``on_ids`` gets the
    catalogue ids of the rows added and changed, (id, row) in key order."""

    def __init__(self, conn: Connection, host: str, scan_id: int, now: datetime,
                 on_ids: Any, interval: float = 1.0) -> None:
        self.conn, self.host, self.scan_id, self.now = conn, host, scan_id, now
        self.on_ids, self.interval = on_ids, interval
        self.adds: list[NewRow] = []
        self.changes: list[tuple[int, NewRow, int | None]] = []
        self.removes: list[tuple[int, int | None]] = []
        self.removed = 0
        self._since = time.monotonic()
        self._pg = conn.dialect.name == "postgresql"

    def add(self, row: NewRow) -> None:
        self.adds.append(row)
        self._maybe_flush()

    def change(self, row_id: int, row: NewRow, content_id: int | None) -> None:
        self.changes.append((row_id, row, content_id))
        self._maybe_flush()

    def remove(self, row_id: int, content_id: int | None) -> None:
        self.removes.append((row_id, content_id))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        queued = len(self.adds) + len(self.changes) + len(self.removes)
        if queued >= FLUSH_ROWS or (queued and time.monotonic() - self._since >= self.interval):
            self.flush()

    def flush(self) -> None:
        """Write and commit everything queued."""
        adds, changes, removes = self.adds, self.changes, self.removes
        self.adds, self.changes, self.removes = [], [], []
        self._since = time.monotonic()
        if not (adds or changes or removes):
            return
        if not self.conn.in_transaction():  # the raw cursors below must be inside it
            self.conn.begin()
        ids: list[tuple[int, NewRow]] = []
        if adds:
            ids.extend(self._insert(adds))
        if changes:
            self._update(changes)
            ids.extend((rid, row) for rid, row, _ in changes)
        touched = {cid for _, _, cid in changes} | {cid for _, cid in removes}
        if removes:
            rids = sorted(rid for rid, _ in removes)
            for i in range(0, len(rids), 500):
                part = rids[i:i + 500]
                marks = ", ".join(f":r{n}" for n in range(len(part)))
                self.removed += self.conn.execute(
                    text(f"DELETE FROM file_hashes WHERE id IN ({marks})"),
                    {f"r{n}": r for n, r in enumerate(part)}).rowcount or 0
        contents.refresh(self.conn, touched)
        self.conn.commit()
        if ids:
            ids.sort(key=lambda pair: pair[1].key)
            self.on_ids(ids)

    def _values(self, row: NewRow) -> tuple[Any, ...]:
        return (self.host, row.key, to_db(row.name), row.size, row.mtime_ns,
                signed64(row.device), signed64(row.inode), row.nlink, self.scan_id)

    def _insert(self, rows: list[NewRow]) -> list[tuple[int, NewRow]]:
        """Insert new rows; returns their ids. A row a concurrent scan of the same host
        inserted meanwhile is left as that scan wrote it (and to that scan to hash)."""
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        by_key = {r.key: r for r in rows}
        try:
            if self._pg:
                cursor.execute("CREATE TEMP TABLE IF NOT EXISTS dupfinder_new (host TEXT, "
                               "path TEXT COLLATE \"C\", name TEXT, size BIGINT, "
                               "mtime_ns BIGINT, device BIGINT, inode BIGINT, nlink INTEGER, "
                               "scan_id BIGINT) ON COMMIT DELETE ROWS")
                host, scan = _copy_field(self.host), self.scan_id
                buf = io.StringIO("".join([  # COPY's text format: only the names may need escapes
                    f"{host}\t{_copy_field(r.key)}\t{_copy_field(to_db(r.name))}\t{r.size}\t"
                    f"{r.mtime_ns}\t{signed64(r.device)}\t{signed64(r.inode)}\t{r.nlink}\t"
                    f"{scan}\n" for r in rows]))
                cursor.copy_expert("COPY dupfinder_new FROM STDIN", buf)
                cursor.execute(
                    "INSERT INTO file_hashes (host, path, name, size, mtime_ns, device, inode, "
                    "nlink, scan_id, first_seen, last_seen) SELECT host, path, name, size, "
                    "mtime_ns, device, inode, nlink, scan_id, %(now)s, %(now)s FROM "
                    "dupfinder_new ORDER BY path ON CONFLICT (host, path) DO NOTHING "
                    "RETURNING id, path",
                    {"now": self.now})
                found = cursor.fetchall()
                cursor.execute("TRUNCATE dupfinder_new")
            else:
                stamp = self.now.strftime("%Y-%m-%d %H:%M:%S.%f")
                before = dbapi.total_changes
                cursor.executemany(
                    "INSERT INTO file_hashes (host, path, name, size, mtime_ns, device, inode, "
                    "nlink, scan_id, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    f"'{stamp}', '{stamp}') ON CONFLICT (host, path) DO NOTHING",
                    [self._values(r) for r in rows])
                if dbapi.total_changes - before == len(rows):
                    # every row went in, in order, inside this write transaction: SQLite gave
                    # them the rowids after the largest, one by one
                    last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
                    return list(zip(range(last - len(rows) + 1, last + 1), rows, strict=True))
                keys = sorted(by_key)
                cursor.execute("SELECT id, path FROM file_hashes WHERE host = ? AND path >= ? "
                               "AND path <= ? AND scan_id = ?",
                               (self.host, keys[0], keys[-1], self.scan_id))
                found = cursor.fetchall()
        finally:
            cursor.close()
        return [(rid, by_key[key]) for rid, key in found if key in by_key]

    def _update(self, changes: list[tuple[int, NewRow, int | None]]) -> None:
        """A changed file takes its new metadata and loses its hashes and content."""
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        values = sorted(((rid, to_db(r.name), r.size, r.mtime_ns, signed64(r.device),
                          signed64(r.inode), r.nlink) for rid, r, _ in changes))
        try:
            if self._pg:  # one statement per batch (psycopg2's executemany is one per row)
                from psycopg2.extras import execute_values

                execute_values(cursor, (
                    "UPDATE file_hashes AS f SET name = v.name, size = v.size, "
                    "mtime_ns = v.mtime_ns, device = v.device, inode = v.inode, "
                    f"nlink = v.nlink, scan_id = {int(self.scan_id)}, last_seen = "
                    f"'{self.now.isoformat()}'::timestamptz, prefix_hash = NULL, "
                    "full_hash = NULL, hash_algo = NULL, content_id = NULL FROM (VALUES %s) "
                    "AS v(id, name, size, mtime_ns, device, inode, nlink) WHERE f.id = v.id"),
                    values, page_size=len(values))
            else:
                stamp = self.now.strftime("%Y-%m-%d %H:%M:%S.%f")
                cursor.executemany(
                    "UPDATE file_hashes SET name = ?2, size = ?3, mtime_ns = ?4, device = ?5, "
                    f"inode = ?6, nlink = ?7, scan_id = {int(self.scan_id)}, "
                    f"last_seen = '{stamp}', prefix_hash = NULL, full_hash = NULL, "
                    "hash_algo = NULL, content_id = NULL WHERE id = ?1", values)
        finally:
            cursor.close()


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_field(text: str) -> str:
    """A text field of COPY's text format (most need no change)."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))
