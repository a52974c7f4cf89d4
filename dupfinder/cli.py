"""The ``dupfinder`` command line: a click group whose commands parse options, call one
:class:`dupfinder.Catalogue` method and print. The commands live in
:mod:`dupfinder.commands`; this module only assembles them, so nothing imports it back."""

from __future__ import annotations

import sys
from typing import Any

import click
from click.shell_completion import get_completion_class

from dupfinder import __version__
from dupfinder.commands.base import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Context,
    common_options,
    handle_errors,
    pass_ctx,
    stdout_to_devnull,
)
from dupfinder.commands.flags import flagged
from dupfinder.errors import mask_secrets, quiet_library_logs

PROG_NAME = "dupfinder"
COMPLETE_VAR = "_DUPFINDER_COMPLETE"  # what click reads: _{PROG_NAME}_COMPLETE
SHELLS = ("bash", "zsh", "fish")


class _StdoutClosed(Exception):  # noqa: N818 - not an error: the reader went away
    """stdout's reader went away (EPIPE). Carries a :class:`BrokenPipeError` past click's
    own handling of it (which, outside standalone mode, exits 1) to :func:`main`."""


# name -> (module, function, one-line summary). Commands are imported when they run, so
# `dupfinder --version` and `--help` load neither SQLAlchemy nor the library, which cost
# them most of their start-up when every command was imported up front.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "scan": ("scan", "scan_cmd", "Scan folders or files into the catalogue; find duplicates."),
    "dupes": ("query", "dupes_cmd", "List duplicate groups (text, fdupes, JSON or CSV)."),
    "stats": ("query", "stats_cmd", "Totals, the biggest wasters and the latest scans."),
    "report": ("query", "report_cmd", "Write a self-contained HTML report of the duplicates."),
    "unique": ("query", "unique_cmd", "Files under PATHs with no copy elsewhere (backup check)."),
    "folders": ("query", "folders_cmd", "Duplicate folders: whole subtrees with equal contents."),
    "dedupe": ("dedupe", "dedupe_cmd", "Plan, and with --apply make, one action per duplicate."),
    "apply": ("dedupe", "apply_cmd", "Carry out a plan file made by dedupe --save-plan."),
    "undo": ("dedupe", "undo_cmd", "Reverse the actions of a dedupe run."),
    "journal": ("dedupe", "journal_cmd", "List this host's dedupe runs, or one run's entries."),
    "merge": ("merge", "merge_cmd", "Copy another catalogue's hosts into this one."),
    "watch": ("watch", "watch_cmd", "Scan folders, then keep the catalogue current as files "
              "change."),
}


class _Group(click.Group):
    """The root group: commands load on first use (their summaries come from
    :data:`COMMANDS`), and a closed stdout anywhere below it (``--help`` included) reaches
    :func:`main` as :class:`_StdoutClosed`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import importlib

            module, attr, summary = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"dupfinder.commands.{module}"), attr)
            command.short_help = summary
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2] if name in COMMANDS
                 else self.commands[name].get_short_help_str(formatter.width))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError as exc:
            raise _StdoutClosed from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _StdoutClosed from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG_NAME)
@common_options
def cli() -> None:
    """dupfinder: find duplicate files and keep every scan in a database."""


@cli.group("config", short_help="Inspect the configuration.")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show", short_help="Print the settings in effect and where each came from.")
@common_options
@pass_ctx
@handle_errors
def config_show(ctx: Context) -> None:
    """Print the effective settings and where each came from (password masked)."""
    rows = ctx.settings().show()
    width = max(len(r.key) for r in rows)
    for row in rows:
        click.echo(f"{row.key.ljust(width)}  {row.value}  [{flagged(row.source)}]")


@cli.command("completion", short_help="Print the shell completion script (bash, zsh, fish).")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL: the one click generates for
    ``_DUPFINDER_COMPLETE=SHELL_source dupfinder``. To install it:

    \b
    bash: echo 'eval "$(dupfinder completion bash)"' >> ~/.bashrc
    zsh:  echo 'eval "$(dupfinder completion zsh)"' >> ~/.zshrc
    fish: dupfinder completion fish > ~/.config/fish/completions/dupfinder.fish
    """
    comp_cls = get_completion_class(shell)
    assert comp_cls is not None  # click knows every shell in SHELLS
    # as click writes it (bytes: no CRLF on Windows, and no extra newline)
    click.echo(comp_cls(cli, {}, PROG_NAME, COMPLETE_VAR).source().encode(), nl=False)




def _flush_stdout() -> None:
    """Flush stdout now, so that a closed pipe fails here and not at interpreter exit."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except ValueError:  # already closed
        pass


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; ``argv`` defaults to ``sys.argv[1:]``.

    A reader that closes stdout early (``dupfinder dupes | head -1``) ends the run quietly
    with exit status 141 (128 + SIGPIPE, what a shell reports for tools killed by SIGPIPE):
    nothing on stderr, and stdout points at /dev/null so the flush at exit cannot fail."""
    quiet_library_logs()
    try:
        try:
            _run(argv)
        finally:
            _flush_stdout()
    except (BrokenPipeError, _StdoutClosed):
        stdout_to_devnull()
        sys.exit(EXIT_BROKEN_PIPE)


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name=PROG_NAME, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # bare ``dupfinder`` (or ``dupfinder config``) asks for help: it is no error
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("dupfinder: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        click.echo(f"dupfinder: error: {mask_secrets(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
