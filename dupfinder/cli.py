"""The ``dupfinder`` command line: thin click wrappers over the library functions."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from dupfinder import __version__
from dupfinder.config import Settings, load_settings
from dupfinder.db.engine import Database, open_database
from dupfinder.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DupfinderError,
    mask_secrets,
    one_line,
    quiet_library_logs,
)


@dataclass
class Context:
    """Options shared by every command."""

    config: str | None = None
    db_url: str | None = None
    no_fallback: bool = False
    host_label: str | None = None
    verbose: int = 0
    quiet: bool = False

    def settings(self) -> Settings:
        """The effective settings for this invocation."""
        return load_settings(self.config, self.db_url, self.host_label)

    def database(self) -> Database:
        """Open the catalogue (with fallback unless ``--no-fallback``)."""
        return open_database(self.settings(), no_fallback=self.no_fallback, warn=self.warn)

    @contextmanager
    def opened(self) -> Iterator[Database]:
        """The catalogue for the length of a ``with`` block, disposed afterwards."""
        db = self.database()
        try:
            yield db
        finally:
            db.dispose()

    def warn(self, line: str) -> None:
        """One line to stderr (shown even with ``-q``: warnings matter)."""
        click.echo(mask_secrets(line), err=True)

    def info(self, line: str) -> None:
        """A line to stderr unless ``-q``."""
        if not self.quiet:
            click.echo(mask_secrets(line), err=True)


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        obj = ctx.ensure_object(Context)
        if value not in (None, False, 0):
            setattr(obj, name, value)
        return value

    return callback


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options accepted by the group and by every command (``dupfinder scan --db-url ...``)."""
    opts = [
        click.option("--config", "config", metavar="PATH", expose_value=False,
                     callback=_store("config"), help="Config file (default: lookup order)."),
        click.option("--db-url", metavar="URL", expose_value=False, callback=_store("db_url"),
                     help="Database URL; overrides the config file and $DUPFINDER_DB_URL."),
        click.option("--no-fallback", is_flag=True, expose_value=False,
                     callback=_store("no_fallback"),
                     help="Fail instead of falling back to SQLite when PostgreSQL is down."),
        click.option("--host-label", metavar="NAME", expose_value=False,
                     callback=_store("host_label"),
                     help="Label for this machine's files (default: hostname)."),
        click.option("-v", "--verbose", count=True, expose_value=False,
                     callback=_store("verbose"), help="More detail (repeatable)."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_store("quiet"),
                     help="Only errors and results."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one line on stderr and an exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DupfinderError as exc:
            click.echo(f"dupfinder: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dupfinder: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:  # noqa: BLE001 - last line of defence for the user
            name = type(exc).__name__
            click.echo(f"dupfinder: error: {name}: {one_line(exc)}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


pass_ctx = click.make_pass_decorator(Context, ensure=True)


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
    width = max(len(r[0]) for r in rows)
    for key, value, source in rows:
        click.echo(f"{key.ljust(width)}  {value}  [{source}]")


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


import dupfinder.commands  # noqa: E402,F401  (registers the subcommands on ``cli``)
