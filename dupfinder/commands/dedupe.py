"""``dupfinder dedupe``, ``dupfinder undo`` and ``dupfinder journal``."""

from __future__ import annotations

import sys

import click

from dupfinder.actions.apply import describe
from dupfinder.actions.plan import Plan
from dupfinder.catalogue import Catalogue
from dupfinder.commands.base import (
    Context,
    common_options,
    handle_errors,
    parse_reference,
    pass_ctx,
    reference_option,
)
from dupfinder.errors import UsageError
from dupfinder.output.formats import count
from dupfinder.paths import for_message
from dupfinder.states import Action, KeepPolicy, Scope
from dupfinder.units import human_size

RUN_ID = click.IntRange(1, 2**63 - 1)


@click.command("dedupe")
@click.argument("paths", nargs=-1)
@click.option("--action", type=click.Choice([a.value for a in Action]), required=True,
              help="What to do with each duplicate (reflink: a copy-on-write clone of the "
                   "kept file, on btrfs, XFS and the like).")
@click.option("--to", "to_dir", default=None, metavar="DIR",
              help="Folder for --action move (files keep their full path below it).")
@click.option("--keep", type=click.Choice([k.value for k in KeepPolicy]), default="oldest",
              show_default=True,
              help="Which copy of each group stays.")
@click.option("--prefer", multiple=True, metavar="PATH",
              help="Keep copies under this folder first (repeatable, in order).")
@click.option("--min-size", default="1", help="Only groups of at least this size.")
@click.option("--within", is_flag=True,
              help="Only duplicates among the files under the PATHs (default: also files "
                   "under them whose copies lie elsewhere, keeping the copy elsewhere).")
@reference_option
@click.option("--save-plan", "save_to", default=None, metavar="FILE",
              help="Write the plan as JSON to FILE for review and editing instead of acting "
                   "(carry it out with `dupfinder apply FILE`).")
@click.option("--apply", "do_apply", is_flag=True, help="Act (default: dry run).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
@pass_ctx
@handle_errors
def dedupe_cmd(ctx: Context, paths: tuple[str, ...], action: str, to_dir: str | None,
               keep: str, prefer: tuple[str, ...], min_size: str, within: bool,
               references: tuple[str, ...], save_to: str | None, do_apply: bool,
               yes: bool) -> None:
    """Plan (and with --apply make) one action per duplicate; one copy of each stays.

    Only this host's files are touched, and only after re-checking that each still equals
    the copy that stays. Every action is journaled; `dupfinder undo` reverses trash, move,
    hardlink, symlink and reflink actions.
    """
    if save_to is not None and do_apply:
        raise UsageError("--save-plan writes the plan instead of acting; leave out --apply")
    if do_apply and not yes and not sys.stdin.isatty():  # before printing a long plan
        raise UsageError("--apply asks for confirmation: run it in a terminal or add -y")
    with ctx.opened() as cat:
        plan = cat.plan_dedupe(action, paths, keep=keep, prefer=prefer, to=to_dir,
                               min_size=min_size,
                               reference=[parse_reference(r) for r in references],
                               scope=Scope.WITHIN if within else Scope.TOUCHING)
        if save_to is not None:
            cat.save_plan(plan, save_to)
            click.echo(f"wrote {for_message(save_to)}: {count(len(plan), 'action')}; "
                       f"review or edit it, then run `dupfinder apply {for_message(save_to)}`")
            return
        _carry_out(ctx, cat, plan, do_apply, yes)


def _carry_out(ctx: Context, cat: Catalogue, plan: Plan, do_apply: bool, yes: bool) -> None:
    """List a plan, then (asked to) confirm, apply and sum up."""
    for p in plan:
        click.echo(describe(p))
    verb = "would move" if plan.action == Action.MOVE else "would reclaim"
    click.echo(f"{count(len(plan), 'action')} planned; {verb} {human_size(plan.reclaimable)}"
               + ("" if do_apply else " (dry run: nothing changed; add --apply to act)"))
    if not do_apply or not len(plan):
        return
    if plan.action == Action.DELETE:
        click.echo("warning: deleted files cannot be restored; `undo` cannot bring them "
                   "back (use --action trash to keep that option)", err=True)
    if not yes and not click.confirm(
            f"Apply {count(len(plan), 'action')} ({human_size(plan.reclaimable)})?",
            default=False):
        click.echo("nothing done")
        return
    run = cat.apply(plan)
    for path, why in run.skipped:
        ctx.warn(f"skipped {for_message(path)}: {why}")
    for path, why in run.failed:
        ctx.warn(f"failed {for_message(path)}: {why}")
    click.echo(f"run {run.id}: {run.done} done, {len(run.skipped)} skipped, "
               f"{len(run.failed)} failed; {human_size(run.reclaimed)} reclaimed")
    if run.skipped:
        click.echo("skipped: " + "; ".join(
            f"{n} {why}" for why, n in run.skipped_by_reason().most_common()))
    if run.failed:
        sys.exit(1)


@click.command("apply")
@click.argument("plan_file", metavar="FILE")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
@pass_ctx
@handle_errors
def apply_cmd(ctx: Context, plan_file: str, yes: bool) -> None:
    """Carry out the entries left in a plan file written by `dedupe --save-plan`.

    Each file is re-verified against the copy it keeps, journaled, and can be undone, as
    with `dedupe --apply`; entries deleted from the file are not done.
    """
    if not yes and not sys.stdin.isatty():
        raise UsageError("apply asks for confirmation: run it in a terminal or add -y")
    with ctx.opened() as cat:
        _carry_out(ctx, cat, cat.load_plan(plan_file), True, yes)


@click.command("undo")
@click.argument("run_id", type=RUN_ID, required=False)
@common_options
@pass_ctx
@handle_errors
def undo_cmd(ctx: Context, run_id: int | None) -> None:
    """Reverse the actions of a dedupe run (default: this host's latest)."""
    with ctx.opened() as cat:
        result = cat.undo(run_id)
    if result.already_undone:
        click.echo(f"run {result.run_id} is already undone; nothing to do")
        return
    for path in result.restored:
        click.echo(f"restored {for_message(path)}")
    for path, why in result.not_restored:
        click.echo(f"not restored {for_message(path)}: {why}")
    click.echo(f"run {result.run_id}: {len(result.restored)} restored, "
               f"{len(result.not_restored)} could not be restored; "
               f"{human_size(result.restored_bytes)} restored")
    if result.not_restored:
        sys.exit(1)


@click.command("journal")
@click.argument("run_id", type=RUN_ID, required=False)
@common_options
@pass_ctx
@handle_errors
def journal_cmd(ctx: Context, run_id: int | None) -> None:
    """List this host's dedupe runs, or the entries of one run."""
    with ctx.opened() as cat:
        if run_id is None:
            for r in cat.runs():
                when = r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "?"
                click.echo(f"#{r.id:<5} {when}  {r.action:8} {r.status:13} "
                           f"{r.files_planned} planned, {r.files_done} done, "
                           f"{r.files_skipped} skipped, {human_size(r.bytes_reclaimed)}")
            return
        entries = cat.journal(run_id)
    for e in entries:
        extra = f"  -> {for_message(e.stash)}" if e.stash else ""
        why = f"  ({e.message})" if e.message else ""
        click.echo(f"{e.seq:>5} {e.state:11} {e.action:8} {for_message(e.path)}{extra}{why}")
