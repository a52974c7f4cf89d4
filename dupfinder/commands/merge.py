"""``dupfinder merge``."""

from __future__ import annotations

import click

from dupfinder.commands.base import Context, common_options, handle_errors, pass_ctx
from dupfinder.merge import HostMerge


def _line(m: HostMerge, dry_run: bool) -> str:
    would = "would be " if dry_run else ""
    return (f"host {m.host}: {m.added:,} rows {would}added, {m.replaced:,} {would}replaced, "
            f"{m.removed:,} {would}removed ({m.kept:,} as they were); {m.scans:,} scans and "
            f"{m.runs:,} dedupe runs {would}copied")


@click.command("merge")
@click.argument("source_url", metavar="SOURCE_URL")
@click.option("--host", "hosts", multiple=True, metavar="LABEL",
              help="Merge only this host's files (repeatable; default: every host).")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@common_options
@pass_ctx
@handle_errors
def merge_cmd(ctx: Context, source_url: str, hosts: tuple[str, ...], dry_run: bool) -> None:
    """Copy the files (with their hashes), scans and dedupe journals of the catalogue at
    SOURCE_URL (a URL or a SQLite file) into the catalogue in use: bring a fallback home,
    or take the shared catalogue offline into a new SQLite file."""
    with ctx.opened() as cat:
        done = cat.merge(source_url, hosts=list(hosts) or None, dry_run=dry_run)
    for m in done:
        click.echo(_line(m, dry_run))
    if dry_run:
        click.echo("dry run: nothing was changed")
