"""``Catalogue``: the library in one object. Every CLI command that reads or writes a
catalogue is a call to it (``config show`` only reads the settings).

    with Catalogue.open("sqlite:///catalogue.db") as cat:
        cat.scan(["~/Pictures"])
        for group in cat.groups(under="~/Pictures"):
            print(group.size, [f.path for f in group.files])

Methods take filesystem paths (``str``, ``pathlib.Path`` or ``bytes``) and return them as
``str`` (undecodable bytes as surrogate escapes, so ``open()`` accepts them). Nothing is
read from ``./config.json`` or the environment unless asked: pass ``config=`` a path, or
:meth:`Catalogue.from_lookup` for the command line's lookup order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dupfinder.config import Settings, load_settings
from dupfinder.db import queries
from dupfinder.db.engine import Database, open_database
from dupfinder.db.queries import Group, Stats, Totals
from dupfinder.db.selection import Reference, Selection
from dupfinder.errors import UsageError, param
from dupfinder.paths import PathArg, absolute
from dupfinder.reporting import SILENT, Reporter
from dupfinder.scan.options import Roots, ScanOptions, make_options, resolve_roots
from dupfinder.scan.pipeline import ScanSummary
from dupfinder.scan.pipeline import run_scan as _run_scan
from dupfinder.states import Action, GroupSort, KeepPolicy, Scope
from dupfinder.units import parse_size

if TYPE_CHECKING:  # the actions and the other questions load when first asked for
    from dupfinder.actions.apply import Run
    from dupfinder.actions.plan import Plan
    from dupfinder.actions.undo import UndoResult
    from dupfinder.db.folders import FolderGroup
    from dupfinder.db.journal import EntryRecord, RunRecord
    from dupfinder.db.unique import UniqueFile, UniqueTotals
    from dupfinder.merge import HostMerge
    from dupfinder.output.report import ReportInfo
    from dupfinder.watch.events import WatchEvent

Under = PathArg | Iterable[PathArg] | None
Refs = Iterable[PathArg | Reference]


def _tell_unmerged(db: Database, settings: Settings, say: Reporter) -> None:
    """Say so when the configured server is reached and the fallback file holds scans it
    lacks (only where the catalogue is the configured one, with a fallback)."""
    if settings.url_source is None and settings.fallback["enabled"]:
        from dupfinder.merge import unmerged_fallback

        notice = unmerged_fallback(db, settings.fallback_url().database or "")
        if notice:
            say.info(notice)


def _folders(under: Under) -> list[str] | None:
    """One folder or several, as absolute filesystem paths (None: everywhere)."""
    if under is None:
        return None
    if isinstance(under, str | bytes | os.PathLike):
        return [absolute(under)]
    folders = [absolute(p) for p in under]
    return folders or None


def _references(reference: Refs) -> list[Reference]:
    """Reference folders: plain paths (on any host) or :class:`Reference` values."""
    return [r._replace(folder=absolute(r.folder)) if isinstance(r, Reference)
            else Reference(absolute(r)) for r in reference]


class Catalogue:
    """An open catalogue: scans go in, duplicate groups, statistics and actions come out.

    Open it with :meth:`open` (or :meth:`from_lookup`), use it as a context manager or call
    :meth:`close`. ``host`` is the label this machine's files are recorded under.
    """

    def __init__(self, db: Database, settings: Settings, reporter: Reporter = SILENT) -> None:
        self.db = db
        self.settings = settings
        self.host = settings.host_label
        self.reporter = reporter

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, db_url: str | None = None, *, config: PathArg | Settings | None = None,
             host: str | None = None, fallback: bool = True,
             reporter: Reporter | None = None) -> Catalogue:
        """Open (creating if needed) the catalogue at ``db_url``, or the one a config file
        names, or the built-in default (PostgreSQL on localhost, SQLite when it is down).

        ``fallback=False`` makes an unreachable server an error. ``reporter`` hears the
        line said when falling back, and gets the bars of scans (by default nothing is
        said or shown).
        """
        if isinstance(config, Settings):
            settings = config
        else:
            settings = load_settings(None if config is None else os.fspath(config), db_url,
                                     host, lookup=False)
        if host:
            settings.host_label = host
        say = reporter or SILENT
        db = open_database(settings, no_fallback=not fallback, warn=say.info)
        _tell_unmerged(db, settings, say)
        return cls(db, settings, say)

    @classmethod
    def from_lookup(cls, db_url: str | None = None, *, config: str | None = None,
                    host: str | None = None, fallback: bool = True,
                    reporter: Reporter | None = None) -> Catalogue:
        """Open the catalogue as the command line does: ``--config``, ``$DUPFINDER_CONFIG``,
        ``./config.json``, the user's config folder; ``$DUPFINDER_DB_URL``."""
        settings = load_settings(config, db_url, host)
        return cls.open(config=settings, fallback=fallback, reporter=reporter)

    def close(self) -> None:
        """Close every pooled connection."""
        self.db.dispose()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Where the catalogue is, password masked."""
        return self.db.display_url

    @property
    def backend(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self.db.backend

    # ------------------------------------------------------------------ scanning

    scan_options = staticmethod(make_options)
    """Checked :class:`ScanOptions` from fields (:func:`~dupfinder.scan.options.make_options`)."""

    @staticmethod
    def check_roots(paths: Iterable[PathArg]) -> Roots:
        """The folders and files a scan of ``paths`` takes; a path that does not exist or
        cannot be read is a :class:`UsageError`. :meth:`scan` takes the result as it is."""
        return resolve_roots(paths)

    def scan(self, paths: Iterable[PathArg] | Roots, options: ScanOptions | None = None,
             **fields: Any) -> ScanSummary:
        """Scan ``paths`` into the catalogue and hash what may be duplicated.

        Options as for :meth:`scan_options` (or ready ``options``); the catalogue's
        reporter gets a bar per stage. The files that could not be read are in the
        summary's ``problems``. Raises KeyboardInterrupt (after recording the scan as
        interrupted) on Ctrl-C.
        """
        opts = options if options is not None else make_options(**fields)
        roots = paths if isinstance(paths, Roots) else resolve_roots(paths)
        return _run_scan(self.db, roots, self.host, opts, self.reporter)

    def watch(self, paths: Iterable[PathArg] | Roots, options: ScanOptions | None = None, *,
              settle: float = 1.0, rescan_every: float = 600.0,
              tell: Callable[[WatchEvent], None] | None = None) -> None:
        """Scan the folders ``paths``, then keep the catalogue current as files change
        under them, until Ctrl-C or SIGTERM (see :mod:`dupfinder.watch.loop`). ``tell``
        receives what the watch finds (new copies, groups that end) and does; the
        catalogue's reporter the initial scan's bars."""
        from dupfinder.watch.loop import WatchOptions, watch

        roots = paths if isinstance(paths, Roots) else resolve_roots(paths)
        watch(self.db, roots, self.host, options or ScanOptions(),
              WatchOptions(settle, rescan_every), tell or (lambda _event: None), self.reporter)

    # ------------------------------------------------------------------ questions

    def _selection(self, under: Under, host: str | None, min_size: int | str,
                   scope: Scope | str = Scope.TOUCHING, reference: Refs = (),
                   empty_ok: bool = False) -> Selection:
        """The selection for a question; a mistake in it is an error, not an empty answer:
        an empty catalogue, an unknown host, a folder that neither exists nor holds
        catalogued files."""
        folders = _folders(under)
        refs = _references(reference)
        with self.db.session() as s:
            queries.check_selection(s, host, (folders or []) + [r.folder for r in refs],
                                    empty_ok=empty_ok)
        return Selection(host, folders, parse_size(min_size, param("min_size")), Scope(scope), refs)

    def groups(self, under: Under = None, *, host: str | None = None,
               min_size: int | str = 0, sort: GroupSort | str = GroupSort.WASTED,
               scope: Scope | str = Scope.TOUCHING, reference: Refs = ()) -> Iterator[Group]:
        """Duplicate groups, streamed biggest waste first (or by ``size`` or ``count``).

        ``under`` (one folder or several) selects groups by ``scope``: ``touching`` (a
        file under a folder; all the group's files are listed, wherever they are),
        ``within`` (only files under the folders count) or ``across`` (groups spanning two
        or more of the folders). ``host`` keeps only that host's files; ``reference``
        folders (paths, or :class:`Reference` for a folder of one host) keep only groups
        with a file under one of them."""
        # checked now, not at the first group: a mistake must come before any output
        sel = self._selection(under, host, min_size, scope, reference)
        return self._groups(sel, GroupSort(sort))

    def _groups(self, sel: Selection, order: GroupSort) -> Iterator[Group]:
        with self.db.session() as s:
            yield from queries.iter_groups(s, sel, order)

    def totals(self, under: Under = None, *, host: str | None = None,
               min_size: int | str = 0, scope: Scope | str = Scope.TOUCHING,
               reference: Refs = ()) -> Totals:
        """Groups, files in groups and wasted bytes, counted by the database."""
        sel = self._selection(under, host, min_size, scope, reference)
        with self.db.session() as s:
            return queries.group_totals(s, sel)

    def stats(self, under: Under = None, *, host: str | None = None,
              min_size: int | str = 0, top: int = 10, scope: Scope | str = Scope.TOUCHING
              ) -> Stats:
        """Totals, the top extensions and folders by wasted bytes, and the latest scans
        (an empty catalogue is a fair question here: all zeros)."""
        sel = self._selection(under, host, min_size, scope, empty_ok=True)
        with self.db.session() as s:
            return queries.stats(s, sel, top)

    def report(self, output: PathArg, under: Under = None, *, host: str | None = None,
               min_size: int | str = 0, scope: Scope | str = Scope.TOUCHING,
               reference: Refs = ()) -> ReportInfo:
        """Write the self-contained HTML report to ``output``; returns what it holds."""
        from dupfinder.output.report import write_report  # Jinja2 only when asked

        sel = self._selection(under, host, min_size, scope, reference)
        from dupfinder.db.report_source import report_source

        return write_report(report_source(self.db, sel), os.fsdecode(os.fspath(output)))

    def hosts(self) -> list[str]:
        """The host labels the catalogue holds files of."""
        with self.db.session() as s:
            return queries.catalogue_hosts(s)

    def unique(self, under: Under, *, min_copies: int = 1, hosts: Iterable[str] | None = None
               ) -> Iterator[UniqueFile]:
        """This host's files under ``under`` with fewer than ``min_copies`` copies outside
        those folders (on any host, or on ``hosts``): the backup check. A hard link is not
        a copy; a file whose size nothing else has is unique without being hashed."""
        folders = _folders(under)
        if not folders:
            raise UsageError("unique needs at least one PATH")
        if min_copies < 1:
            raise UsageError(f"{param('min_copies')} must be at least 1, not {min_copies}")
        hosts = list(hosts) if hosts is not None else None
        with self.db.session() as s:  # a mistake comes before any output
            queries.check_selection(s, None, folders, hosts or ())
        return self._unique(folders, min_copies, hosts)

    def _unique(self, folders: list[str], min_copies: int, hosts: list[str] | None
                ) -> Iterator[UniqueFile]:
        from dupfinder.db.unique import unique_files

        with self.db.session() as s:
            yield from unique_files(s, folders, min_copies, hosts, host=self.host)

    def unique_totals(self, under: Under, *, min_copies: int = 1,
                      hosts: Iterable[str] | None = None) -> UniqueTotals:
        """Files and bytes :meth:`unique` would list."""
        from dupfinder.db.unique import unique_totals

        folders = _folders(under) or []
        with self.db.session() as s:
            return unique_totals(s, folders, min_copies,
                                 list(hosts) if hosts is not None else None, host=self.host)

    def folders(self, under: Under = None, *, host: str | None = None,
                same_names: bool = False) -> list[FolderGroup]:
        """Duplicate folders: whole subtrees holding the same contents (and, with
        ``same_names``, the same relative paths), topmost only, biggest waste first."""
        from dupfinder.db.folders import duplicate_folders

        roots = _folders(under)
        with self.db.session() as s:
            queries.check_selection(s, host, roots or [])
            return duplicate_folders(s, roots, host, same_names)

    # ------------------------------------------------------------------ actions

    def plan_dedupe(self, action: Action | str, under: Under = None, *,
                    keep: KeepPolicy | str = KeepPolicy.OLDEST, prefer: Iterable[PathArg] = (),
                    to: PathArg | None = None, min_size: int | str = 1,
                    reference: Refs = (), scope: Scope | str = Scope.TOUCHING) -> Plan:
        """One action per duplicate of this host's files under ``under`` (everywhere when
        none), including files whose copies lie elsewhere; one copy of each group stays:
        one in a ``reference`` folder (only groups with one are planned, and files there
        are never touched), else under a ``prefer`` folder, else outside ``under``, else by
        ``keep``. ``scope="within"``: only groups among the files under ``under``.
        Nothing is touched."""
        from dupfinder.actions.plan import PlanRequest, make_plan

        ask = PlanRequest(Action(action), _folders(under) or [], KeepPolicy(keep),
                          [absolute(p) for p in prefer],
                          None if to is None else os.fsdecode(os.fspath(to)),
                          min_size, _references(reference),
                          Scope(scope) == Scope.WITHIN)
        return make_plan(self.db, self.host, ask, lambda roots, minimum, within, refs:
                         self._selection(roots, None, minimum,
                                         Scope.WITHIN if within else Scope.TOUCHING, refs))

    def save_plan(self, plan: Plan, path: PathArg) -> None:
        """Write ``plan`` as a JSON file a person can review and edit."""
        from dupfinder.actions import planfile

        planfile.save_plan(plan, os.fsdecode(os.fspath(path)))

    def load_plan(self, path: PathArg) -> Plan:
        """Read a plan file for this host (malformed: :class:`UsageError`; another host's:
        :class:`SafetyError`). A move target is checked against every folder this host
        has scanned, whatever the file says its roots were."""
        from dupfinder.actions import planfile
        from dupfinder.actions.plan import scanned_roots

        plan = planfile.load_plan(os.fsdecode(os.fspath(path)), self.host)
        if plan.action == Action.MOVE:
            plan.roots = sorted(set(plan.roots) | set(scanned_roots(self.db, self.host)))
        return plan

    def apply(self, plan: Plan) -> Run:
        """Carry out a plan: verified, journaled, one run at a time per host; the
        catalogue's reporter gets a bar of the entries done."""
        from dupfinder.actions.apply import apply

        return apply(self.db, self.host, plan, self.reporter)

    def undo(self, run_id: int | None = None) -> UndoResult:
        """Reverse a run (default: this host's latest run that acted)."""
        from dupfinder.actions.undo import undo

        return undo(self.db, self.host, run_id)

    def merge(self, source_url: str, *, hosts: Iterable[str] | None = None,
              dry_run: bool = False) -> list[HostMerge]:
        """Copy the hosts (all, or ``hosts``) of the catalogue at ``source_url`` into this
        one: rows with their hashes, scans, dedupe runs and journals; per path the
        catalogue that saw it later wins (rules: :mod:`dupfinder.merge`)."""
        from dupfinder.merge import merge

        return merge(self.db, source_url, list(hosts) if hosts else None, dry_run, self.host)

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """This host's latest dedupe runs, newest first (a run whose process died is shown
        ``interrupted``)."""
        from dupfinder.actions import recover
        from dupfinder.db import journal

        recover.close_dead_runs_if_idle(self.db, self.host)
        with self.db.session() as s:
            return journal.runs(s, self.host, limit)

    def journal(self, run_id: int) -> list[EntryRecord]:
        """The entries of one run, with what a run that died actually did read back from
        the disk first (only for this host's runs)."""
        from dupfinder.actions import recover

        return recover.journal_of(self.db, self.host, run_id)
