"""The walk's findings, staged in a temporary table so that the database compares them with
the catalogue: new, changed, unchanged and gone files, with nothing held in Python.

A rescan used to load every catalogued row under its roots into a dict (about 350 B per file:
424 MB at 1M files). Here the walk's rows go into a temporary table in batches, and set-based
statements do the rest: a join on (host, path) counts and upserts what is new or changed
(on SQLite in chunks of ``CHUNK_ROWS`` committed one by one, so the WAL stays small and an
interrupted sync keeps what it wrote), and an anti-join finds what is gone.

Callers give and get filesystem paths; the stored form is made here.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from dupfinder.db import contents
from dupfinder.db.bulk import TempTables, fresh_temp_table, pages_by_seq, signed64
from dupfinder.db.engine import Database
from dupfinder.db.files import on_conflict, under
from dupfinder.db.models import FileHash, PathText
from dupfinder.db.paths import from_db, to_db

F = FileHash
CHUNK_ROWS = 50_000  # rows per upsert statement and commit
# rows per insert (COPY) into the staging table: one per 1000 rows cost PostgreSQL 2.7 s of
# a 200k-file rescan, mostly in commits
STAGE_ROWS = 10_000

_walked = Table(
    "dupfinder_walked", MetaData(),
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    # the catalogue's own path type: on PostgreSQL a join between two collations can use
    # neither side's index (the anti-join of a 200k-file rescan ran for over 10 minutes)
    Column("path", PathText), Column("name", Text), Column("size", BigInteger),
    Column("mtime_ns", BigInteger), Column("device", BigInteger), Column("inode", BigInteger),
    Column("nlink", Integer),
    Column("selected", Boolean),  # false: seen but left out by a filter; its row stays
    prefixes=["TEMPORARY"],
)
_by_path = Index("dupfinder_walked_path", _walked.c.path)
_gone = Table(  # the catalogue rows the walk did not report
    "dupfinder_gone", MetaData(),
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("id", BigInteger), Column("path", PathText),
    prefixes=["TEMPORARY"],
)
# the characters COPY's text format escapes (a path may hold any of them but NUL)
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_text(text: str) -> str:
    """``text`` as a field of COPY's text format (most paths need no change)."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


_FIELDS = ("path", "name", "size", "mtime_ns", "device", "inode", "nlink", "selected")


class Walked(NamedTuple):
    """One path the walk reported: a selected regular file with its metadata, or a path the
    filters left out (``selected`` false; only ``path`` matters then)."""

    path: str
    name: str = ""
    size: int = 0
    mtime_ns: int = 0
    device: int = 0
    inode: int = 0
    nlink: int = 0
    selected: bool = False


class Counts(NamedTuple):
    """What comparing the walk with the catalogue found."""

    seen: int
    new: int
    changed: int
    unchanged: int


class WalkTable(TempTables):
    """A temporary table of one walk, on a connection of its own. Use as a context manager:
    :meth:`add` batches while walking (on SQLite every ``CHUNK_ROWS`` staged rows are
    compared and written at once), then :meth:`finish`, :meth:`gone` and :meth:`delete`.

    Not shared between threads: one thread makes, uses and closes it (SQLite connections
    belong to the thread that opened them)."""

    tables = (_walked, _gone)

    def __init__(self, db: Database, host: str, scan_id: int = 0, now: datetime | None = None,
                 progress: Callable[[int], Any] | None = None) -> None:
        super().__init__(db)
        self.host, self.progress = host, progress
        self.params = {"host": host, "scan_id": scan_id, "now": now or datetime.now(UTC)}
        self.counts = Counts(0, 0, 0, 0)
        self._added = self._written = 0  # staged rows; rows compared (seq is 1, 2, ...)
        self._waiting: list[Walked] = []

    def __enter__(self) -> WalkTable:
        fresh_temp_table(self._open(), _walked)  # its index comes once the rows are in
        return self

    def add(self, rows: Sequence[Walked]) -> None:
        """Stage the walk's rows (held until ``STAGE_ROWS`` are waiting); once
        ``CHUNK_ROWS`` are staged, compare them with the catalogue and write what is new
        or changed."""
        self._waiting.extend(rows)
        if len(self._waiting) >= STAGE_ROWS:
            self._stage()

    def _stage(self) -> None:
        rows, self._waiting = self._waiting, []
        if not rows:
            return
        dbapi = self.conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            if self.conn.dialect.name == "postgresql":
                # COPY's text format, written directly: the csv module took 1.1 s of a
                # 200k-file sync, these lines 0.3 s
                buf = io.StringIO("".join([
                    f"{_copy_text(to_db(r.path))}\t{_copy_text(to_db(r.name))}\t"
                    f"{r.size}\t{r.mtime_ns}\t"
                    f"{signed64(r.device)}\t{signed64(r.inode)}\t{r.nlink}\t"
                    f"{'t' if r.selected else 'f'}\n" for r in rows]))
                cursor.copy_expert(f"COPY {_walked.name} ({', '.join(_FIELDS)}) FROM STDIN",
                                   buf)
            else:
                marks = ", ".join("?" * len(_FIELDS))
                cursor.executemany(
                    f"INSERT INTO {_walked.name} ({', '.join(_FIELDS)}) VALUES ({marks})",
                    [(to_db(r.path), to_db(r.name), r.size, r.mtime_ns, signed64(r.device),
                      signed64(r.inode), r.nlink, r.selected) for r in rows])
        finally:
            cursor.close()
        self.conn.commit()
        self._added += len(rows)
        if self.conn.dialect.name == "postgresql":
            return  # compared in one statement at the end (see _write)
        while self._added - self._written >= CHUNK_ROWS:
            self._write(self._written + CHUNK_ROWS)

    def finish(self) -> Counts:
        """Compare and write what is still staged; returns the counts of the whole walk."""
        self._stage()
        if self.conn.dialect.name == "postgresql":
            # nothing gathers statistics for a temporary table by itself; the joins below
            # are planned with them
            self.conn.execute(text(f"ANALYZE {_walked.name}"))
        self._write(self._added)
        _by_path.create(self.conn)  # for the anti-join of gone(); built once, sorted
        self.conn.commit()
        return self.counts

    def _write(self, upto: int) -> None:
        """Count, then upsert what is new or changed, among staged rows (written, upto].

        SQLite joins by looking each staged path up in the catalogue's index, and goes a
        chunk at a time so that its WAL stays small. PostgreSQL hash-joins the staged rows
        with the whole catalogue, and would do so once per chunk (quadratic at 1M files):
        there the whole walk is compared in one statement."""
        if upto <= self._written:
            return
        count_stmt, upsert_stmt, changed_stmt = _statements(self.conn.dialect.name)
        chunk = {**self.params, "lo": self._written, "hi": upto}
        row = self.conn.execute(count_stmt, chunk).one()
        if row.new or row.changed:  # an unchanged chunk costs one join, not two
            touched = set(self.conn.scalars(changed_stmt, chunk)) if row.changed else set()
            self.conn.execute(upsert_stmt, chunk)
            contents.refresh(self.conn, touched)
        self.conn.commit()
        c = self.counts
        self.counts = Counts(c.seen + row.seen, c.new + row.new, c.changed + row.changed,
                             c.unchanged + row.seen - row.new - row.changed)
        if self.progress:
            self.progress(upto - self._written)
        self._written = upto

    def gone(self, roots: Sequence[str]) -> Iterator[tuple[int, str]]:
        """(id, path) of the host's rows under ``roots`` that the walk did not report.

        One anti-join copies them into a temporary table, read back a page at a time by
        key (each page its own short read). Paging the anti-join itself by id cost a full
        pass per page on PostgreSQL: minutes at 200k files."""
        conn = self.conn
        fresh_temp_table(conn, _gone)
        t = _walked.c
        conn.execute(insert(_gone).from_select(["id", "path"], select(F.id, F.path).where(
            F.host == self.host, under(roots), ~exists().where(t.path == F.path))))
        conn.commit()
        for rows in pages_by_seq(conn, _gone, ["id", "path"]):
            for _, fid, path in rows:
                yield fid, from_db(path)

    def delete(self, ids: Sequence[int]) -> int:
        """Remove catalogue rows by id; committed."""
        if not ids:
            return 0
        touched = contents.ids_of_rows(self.conn, ids)
        n = self.conn.execute(delete(F).where(F.id.in_(ids))).rowcount or 0
        contents.refresh(self.conn, touched)
        self.conn.commit()
        return n


@functools.cache
def _statements(dialect: str) -> tuple[Any, Any, Any]:
    """The chunk's counting query, its upsert, and the contents of the rows it changes:
    staged rows in (lo, hi], joined with the host's catalogue rows by path."""
    w = _walked.c
    joined = _walked.outerjoin(F, and_(F.host == bindparam("host"), F.path == w.path))
    differs = or_(F.size != w.size, F.mtime_ns != w.mtime_ns, F.device != w.device,
                  F.inode != w.inode)
    in_chunk = and_(w.selected, w.seq > bindparam("lo"), w.seq <= bindparam("hi"))
    count = (select(func.count().label("seen"),
                    func.coalesce(func.sum(case((F.id.is_(None), 1), else_=0)), 0)
                    .label("new"),
                    func.coalesce(func.sum(case((and_(F.id.is_not(None), differs), 1),
                                                else_=0)), 0).label("changed"))
             .select_from(joined).where(in_chunk))
    now = bindparam("now", type_=DateTime(timezone=True))
    host = bindparam("host", type_=Text())
    rows = (select(host, w.path, w.name, w.size, w.mtime_ns, w.device, w.inode, w.nlink,
                   bindparam("scan_id", type_=BigInteger()), now, now)
            .select_from(joined).where(in_chunk, or_(F.id.is_(None), differs)))
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(F.__table__)
    upsert = on_conflict(insert.from_select(
        ["host", "path", "name", "size", "mtime_ns", "device", "inode", "nlink", "scan_id",
         "first_seen", "last_seen"], rows))
    changed = (select(F.content_id).select_from(joined)
               .where(in_chunk, F.content_id.is_not(None), differs))
    return count, upsert, changed
