"""Verify, then act: delete, trash, hardlink, symlink or move one duplicate at a time.

The rules that keep data safe are checked here, where no caller can skip them: the plan is
this host's, names only files its catalogue holds, and chains no action onto a file another
entry keeps; a move target lies outside the scanned folders; one run at a time per machine
and per catalogue, and each action's two files locked until it is journaled
(:mod:`dupfinder.actions.locking`); every entry is journaled as ``planned`` before anything
is touched; right before each action the duplicate and the copy that stays are re-read and
compared byte for byte and shown to be two files. A run that fails is recorded
``failed`` (``interrupted`` on Ctrl-C or SIGTERM), never ``complete``, and the error that
ended it is the one raised.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

import send2trash

from dupfinder.actions import recover
from dupfinder.actions.fileops import (
    Skip,
    move_file,
    move_target,
    prove_distinct,
    replace_with_link,
    same_content,
)
from dupfinder.actions.locking import FileLocks, run_lock
from dupfinder.actions.plan import Plan, Planned, check_move_target
from dupfinder.actions.reflink import can_clone_here, clone_over
from dupfinder.actions.trash import find_in_trash
from dupfinder.db import journal
from dupfinder.db.engine import Database
from dupfinder.db.file_rows import catalogued_paths
from dupfinder.errors import SafetyError, UsageError, param
from dupfinder.paths import dot_segment, for_message, is_under
from dupfinder.reporting import SILENT, Reporter
from dupfinder.states import Action, EntryState, RunStatus


@dataclass
class Run:
    """What an applied run did."""

    id: int
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    reclaimed: int = 0

    def skipped_by_reason(self) -> Counter[str]:
        """How many files were skipped for each reason."""
        return Counter(why for _, why in self.skipped)


def verify(p: Planned) -> os.stat_result:
    """Check the duplicate and its keeper are still what the catalogue says and equal;
    returns the keeper's stat as it was while the bytes were compared (a hard link made
    later must still be of that file). Raises :class:`Skip` otherwise."""
    try:
        st = os.lstat(p.path)
        kst = os.lstat(p.kept)
    except FileNotFoundError as exc:
        which = "the copy that stays" if exc.filename == p.kept else "the file"
        raise Skip(f"{which} is gone") from exc
    if not stat.S_ISREG(st.st_mode) or not stat.S_ISREG(kst.st_mode):
        raise Skip("not a regular file any more")
    if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
        raise Skip("changed since the scan")
    if (kst.st_size, kst.st_mtime_ns) != (p.size, p.kept_mtime_ns):
        raise Skip("the copy that stays changed since the scan")
    if (st.st_dev, st.st_ino) == (kst.st_dev, kst.st_ino):
        raise Skip("already the same file as the copy that stays")
    if p.action == Action.HARDLINK and (
            (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
            != (kst.st_uid, kst.st_gid, stat.S_IMODE(kst.st_mode))):
        raise Skip("owner or permissions differ from the copy that stays (a hard link "
                   "would give it the keeper's)")
    if not same_content(p.path, p.kept):
        raise Skip("content differs from the copy that stays")
    after = os.lstat(p.kept)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (
            kst.st_ino, kst.st_size, kst.st_mtime_ns):
        raise Skip("the copy that stays changed while it was compared")
    return kst


def act(p: Planned, to_dir: str | None, tag: int, kept: os.stat_result) -> str | None:
    """Make one action; returns where a moved or trashed file went. ``kept`` is the
    keeper's stat from the byte check."""
    if p.action == Action.DELETE:
        os.unlink(p.path)
    elif p.action == Action.TRASH:
        st = os.lstat(p.path)
        send2trash.send2trash(p.path)
        return trashed_as(p, st)
    elif p.action == Action.HARDLINK:
        replace_with_link(p.path, p.kept, symbolic=False, tag=tag, expect=kept)
    elif p.action == Action.SYMLINK:
        replace_with_link(p.path, os.path.abspath(p.kept), symbolic=True, tag=tag)
    elif p.action == Action.MOVE:
        assert to_dir is not None
        return move_file(p.path, to_dir, tag)
    elif p.action == Action.REFLINK:
        clone_over(p.path, p.kept, tag)
    else:
        raise ValueError(f"unknown action {p.action!r}")
    return None


def trashed_as(p: Planned, st: os.stat_result) -> str | None:
    """Where send2trash put the file ``st`` was taken of (before trashing it).

    Not simply the newest trashed copy of its path: the trash records deletions to the
    second, so another run's copy of the same path trashed in the same second could be
    taken, and ``undo`` would then restore that other file. send2trash renames within a
    file system, so the file keeps its inode; a copy to the home trash from another file
    system is known by its content, equal to the copy that stays."""
    found = find_in_trash(p.path)
    for t in found:
        try:
            tst = os.lstat(t.stored)
        except OSError:
            continue
        if (tst.st_dev, tst.st_ino) == (st.st_dev, st.st_ino):
            return str(t.stored)
    for t in found:
        try:
            if os.path.getsize(t.stored) == p.size and same_content(str(t.stored), p.kept):
                return str(t.stored)
        except OSError:
            continue
    return None


def apply(db: Database, host: str, plan: Plan, reporter: Reporter = SILENT) -> Run:
    """Journal every planned action, then verify and make them one by one.

    Raises :class:`SafetyError` for a plan that is not this host's or whose move target
    lies inside the scanned folders, or while another run is going on; KeyboardInterrupt
    after recording the run as interrupted."""
    if plan.host != host:
        raise SafetyError(f"the plan was made for host {plan.host}; only that host's own "
                          f"files can be acted on (this is {host})")
    check_entries(plan)
    target = check_move_target(plan.to, plan.roots) if plan.action == Action.MOVE else None
    if plan.action == Action.REFLINK:
        _check_clonable(plan)
    with run_lock(db, host):
        recover.close_dead_runs(db, host)
        linked = recover.symlink_targets(db, host)
        with db.session() as s:
            known = catalogued_paths(s, host, [q for p in plan for q in (p.path, p.kept)])
            run_id = journal.start_run(s, host, plan.action, plan.options(), os.getpid())
            ids = journal.add_entries(s, run_id, [_new_entry(p, target) for p in plan])
            s.commit()
        run = Run(run_id)
        rules = _EntryRules(linked, known, plan.roots)
        try:
            with reporter.bar(str(plan.action), total=len(ids)) as bar:
                for entry_id, p in zip(ids, plan, strict=True):
                    _one(db, host, entry_id, p, target, rules, run)
                    bar.update()
            _finish_complete(db, run_id)
        except BaseException as exc:
            status = RunStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt) \
                else RunStatus.FAILED
            recover.close_run_quietly(db, run_id, status)
            raise
    return run


def _finish_complete(db: Database, run_id: int) -> None:
    """Record the run ``complete``. Called inside the run's ``try`` because recording it
    can fail too (or be cut short by Ctrl-C / SIGTERM): the run is then closed ``failed``
    (``interrupted``) at once, instead of staying ``running`` until a later command finds
    it dead."""
    with db.session() as s:
        journal.finish_run(s, run_id, RunStatus.COMPLETE)
        s.commit()


def _check_clonable(plan: Plan) -> None:
    """A reflink plan none of whose files can be cloned is one error up front, not one skip
    per file: one probe clone per file system the duplicates are on."""
    reasons: dict[int, str | None] = {}
    for p in plan:
        folder = os.path.dirname(p.path)
        try:
            dev = os.stat(folder).st_dev
        except OSError:
            continue
        if dev not in reasons:
            reasons[dev] = can_clone_here(folder)
        if reasons[dev] is None:
            return
    if reasons:
        first = next(iter(reasons.values()))
        raise UsageError(f"{param('action')} reflink: no file of the plan can be cloned here "
                         f"({first}); reflinks need a file system such as btrfs or XFS, "
                         "with the copy that stays on the same one")


def _new_entry(p: Planned, to_dir: str | None) -> journal.NewEntry:
    try:
        st = os.lstat(p.path)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    except OSError:
        mode = uid = gid = None
    stash = move_target(to_dir, p.path) if p.action == Action.MOVE and to_dir else None
    return journal.NewEntry(p.action, p.path, p.kept, p.size, p.full_hash, p.mtime_ns,
                            mode, uid, gid, stash)


def check_entries(plan: Plan) -> None:
    """Refuse a plan that no dedupe makes but a hand-edited one can: a path with ``.`` or
    ``..`` (the text and the kernel may name two files), or an entry acting on a file that
    another entry keeps (a symbolic link to Y and a delete of Y would leave the link
    dangling and no copy)."""
    kept = {p.kept for p in plan}
    for p in plan:
        for path in (p.path, p.kept):
            if dot_segment(path):
                raise SafetyError(f"{for_message(path)}: a plan's paths may not hold '.' or "
                                  "'..' segments")
        if p.path in kept:
            raise SafetyError(f"the plan acts on {for_message(p.path)}, which another of its "
                              "entries keeps: remove one of the two entries")


@dataclass(frozen=True)
class _EntryRules:
    """What each entry is checked against before its files are even locked: symbolic links
    made by earlier runs, the files this host's catalogue holds, the plan's folders."""

    linked: frozenset[str]
    catalogued: set[str]
    roots: list[str]

    def refuse(self, p: Planned) -> str | None:
        """Why ``p`` must be skipped, or None."""
        if p.path in self.linked:
            return "symbolic links made by an earlier dedupe run point to it"
        if p.path not in self.catalogued:
            return "not a file this host's catalogue holds (scan it first)"
        if p.kept not in self.catalogued:
            return "the copy that stays is not a file this host's catalogue holds"
        if self.roots and not any(is_under(p.path, r) for r in self.roots):
            return "outside the plan's folders"
        return None


def _one(db: Database, host: str, entry_id: int, p: Planned, to_dir: str | None,
         rules: _EntryRules, run: Run) -> EntryState:
    # the files stay locked until the entry's outcome is committed
    with db.session() as s, ExitStack() as held:
        try:
            refused = rules.refuse(p)
            if refused:
                raise Skip(refused)
            held.enter_context(FileLocks(p.path, p.kept))
            kept = verify(p)
            prove_distinct(p.path, p.kept, entry_id)
            stash = act(p, to_dir, entry_id, kept)
        except Skip as why:
            journal.set_state(s, entry_id, EntryState.SKIPPED, str(why))
            run.skipped.append((p.path, str(why)))
            state = EntryState.SKIPPED
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            journal.set_state(s, entry_id, EntryState.FAILED, reason)
            run.failed.append((p.path, reason))
            state = EntryState.FAILED
        else:
            recover.record_done(s, host, p.action, p.path, p.kept)
            journal.set_state(s, entry_id, EntryState.DONE, stash=stash)
            run.done += 1
            if p.action != Action.MOVE:
                run.reclaimed += p.size
            state = EntryState.DONE
        s.commit()
    return state


def describe(p: Planned) -> str:
    """One line for a planned action."""
    return f"{p.action:8} {for_message(p.path)}  (keeps {for_message(p.kept)})"

