"""The ``dupfinder`` command line: a click group whose commands parse options, call one
:class:`dupfinder.Catalogue` method and print. The commands live in
:mod:`dupfinder.commands`; this module only assembles them, so nothing imports it back."""

from __future__ import annotations

import sys

import click

from dupfinder import __version__
from dupfinder.commands import dedupe, query, scan
from dupfinder.commands.base import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Context,
    common_options,
    handle_errors,
    pass_ctx,
)
from dupfinder.errors import mask_secrets, quiet_library_logs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dupfinder")
@common_options
def cli() -> None:
    """dupfinder: find duplicate files and keep every scan in a database."""


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@common_options
@pass_ctx
@handle_errors
def config_show(ctx: Context) -> None:
    """Print the effective settings and where each came from (password masked)."""
    rows = ctx.settings().show()
    width = max(len(r.key) for r in rows)
    for row in rows:
        click.echo(f"{row.key.ljust(width)}  {row.value}  [{row.source}]")


for command in (scan.scan_cmd, query.dupes_cmd, query.stats_cmd, query.report_cmd,
                dedupe.dedupe_cmd, dedupe.undo_cmd, dedupe.journal_cmd):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; ``argv`` defaults to ``sys.argv[1:]``."""
    quiet_library_logs()
    try:
        cli.main(args=argv, prog_name="dupfinder", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dupfinder: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        click.echo(f"dupfinder: error: {mask_secrets(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
