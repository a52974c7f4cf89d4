"""``dupfinder dedupe``, ``dupfinder undo`` and ``dupfinder journal``."""

from __future__ import annotations

import os
import sys

import click

from dupfinder.actions.apply import apply, describe
from dupfinder.actions.plan import ACTIONS, KEEP_POLICIES, plan, reclaimable
from dupfinder.actions.undo import undo
from dupfinder.cli import Context, cli, common_options, handle_errors, pass_ctx
from dupfinder.db import journal
from dupfinder.db.queries import iter_groups
from dupfinder.errors import DupfinderError, UsageError
from dupfinder.paths import absolute, db_roots, for_message, from_db, is_under
from dupfinder.units import human_size, parse_size


def _check_move_target(to: str | None, roots: list[str]) -> str | None:
    if to is None:
        raise UsageError("--action move needs --to DIR")
    target = absolute(to)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"--to {for_message(target)} is a file, not a folder")
    for r in roots or ["/"]:
        if is_under(target, r):
            raise UsageError(f"--to {for_message(target)} lies inside the scanned folder "
                             f"{for_message(r)}; choose a folder outside it")
    return target


@cli.command("dedupe")
@click.argument("paths", nargs=-1)
@click.option("--action", type=click.Choice(ACTIONS), required=True,
              help="What to do with each duplicate.")
@click.option("--to", "to_dir", default=None, metavar="DIR",
              help="Folder for --action move (files keep their full path below it).")
@click.option("--keep", type=click.Choice(KEEP_POLICIES), default="oldest", show_default=True,
              help="Which copy of each group stays.")
@click.option("--prefer", multiple=True, metavar="PATH",
              help="Keep copies under this folder first (repeatable, in order).")
@click.option("--min-size", default="1", help="Only groups of at least this size.")
@click.option("--apply", "do_apply", is_flag=True, help="Act (default: dry run).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
@pass_ctx
@handle_errors
def dedupe_cmd(ctx: Context, paths: tuple[str, ...], action: str, to_dir: str | None,
               keep: str, prefer: tuple[str, ...], min_size: str, do_apply: bool,
               yes: bool) -> None:
    """Plan (and with --apply make) one action per duplicate; one copy of each stays.

    Only this host's files are touched, and only after re-checking that each still equals
    the copy that stays. Every action is journaled; `dupfinder undo` reverses trash, move,
    hardlink and symlink actions.
    """
    roots = [absolute(p) for p in paths]
    minimum = parse_size(min_size, "--min-size")
    target = _check_move_target(to_dir, roots) if action == "move" else None
    if to_dir is not None and action != "move":
        raise UsageError("--to only goes with --action move")
    settings = ctx.settings()
    host = settings.host_label
    with ctx.opened() as db:
        with db.session() as s:
            groups = iter_groups(s, host, db_roots(roots), minimum)
            planned = plan(groups, action, keep, [absolute(p) for p in prefer], roots)
        total = reclaimable(planned)
        for p in planned:
            click.echo(describe(p))
        verb = "would move" if action == "move" else "would reclaim"
        click.echo(f"{len(planned)} actions planned; {verb} {human_size(total)}"
                   + ("" if do_apply else " (dry run: nothing changed; add --apply to act)"))
        if not do_apply or not planned:
            return
        if action == "delete":
            click.echo("warning: deleted files cannot be restored; `undo` cannot bring them "
                       "back (use --action trash to keep that option)", err=True)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("--apply asks for confirmation: run it in a terminal or add -y")
            if not click.confirm(f"Apply {len(planned)} actions ({human_size(total)})?",
                                 default=False):
                raise DupfinderError("nothing done", exit_code=1)
        options = {"action": action, "keep": keep, "prefer": list(prefer), "roots": roots,
                   "to": target, "min_size": minimum}
        outcome = apply(db, host, planned, options, target)
    for path, why in outcome.skipped:
        ctx.warn(f"skipped {for_message(path)}: {why}")
    for path, why in outcome.failed:
        ctx.warn(f"failed {for_message(path)}: {why}")
    click.echo(f"run {outcome.run_id}: {outcome.done} done, {len(outcome.skipped)} skipped, "
               f"{len(outcome.failed)} failed; {human_size(outcome.reclaimed)} reclaimed")
    if outcome.failed:
        sys.exit(1)


@cli.command("undo")
@click.argument("run_id", type=int, required=False)
@common_options
@pass_ctx
@handle_errors
def undo_cmd(ctx: Context, run_id: int | None) -> None:
    """Reverse the actions of a dedupe run (default: this host's latest)."""
    host = ctx.settings().host_label
    with ctx.opened() as db:
        with db.session() as s:
            run = journal.get_run(s, run_id) if run_id else journal.latest_run(s, host)
            if run is None:
                raise UsageError(f"no dedupe run {run_id}" if run_id else
                                 f"no dedupe run of host {host} to undo")
            if run.host != host:
                raise UsageError(f"run {run.id} belongs to host {run.host}; only its own "
                                 "host can undo it")
            rid = run.id
        outcome = undo(db, host, rid)
    for path in outcome.restored:
        click.echo(f"restored {for_message(path)}")
    for path, why in outcome.not_restored:
        click.echo(f"not restored {for_message(path)}: {why}")
    click.echo(f"run {rid}: {len(outcome.restored)} restored, "
               f"{len(outcome.not_restored)} could not be restored")
    if outcome.not_restored:
        sys.exit(1)


@cli.command("journal")
@click.argument("run_id", type=int, required=False)
@common_options
@pass_ctx
@handle_errors
def journal_cmd(ctx: Context, run_id: int | None) -> None:
    """List this host's dedupe runs, or the entries of one run."""
    host = ctx.settings().host_label
    with ctx.opened() as db, db.session() as s:
        if run_id is None:
            for r in journal.runs(s, host):
                when = r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "?"
                click.echo(f"#{r.id:<5} {when}  {r.action:8} {r.status:13} "
                           f"{r.files_planned} planned, {r.files_done} done, "
                           f"{r.files_skipped} skipped, {human_size(r.bytes_reclaimed)}")
            return
        if journal.get_run(s, run_id) is None:
            raise UsageError(f"no dedupe run {run_id}")
        for e in journal.entries(s, run_id):
            extra = f"  -> {for_message(from_db(e.stash_path))}" if e.stash_path else ""
            why = f"  ({e.message})" if e.message else ""
            click.echo(f"{e.seq:>5} {e.state:11} {e.action:8} "
                       f"{for_message(from_db(e.path))}{extra}{why}")
