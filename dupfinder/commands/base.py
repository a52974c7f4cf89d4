"""What every command shares: the common options, the context that opens the catalogue,
and the one place where library errors become a line on stderr and an exit code."""

from __future__ import annotations

import functools
import io
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from dupfinder.catalogue import Catalogue
    from dupfinder.config import Settings
    from dupfinder.db.selection import Reference

from dupfinder.commands.flags import error_line, flagged
from dupfinder.errors import DupfinderError, UsageError, mask_secrets, one_line
from dupfinder.paths import absolute, for_message

# Exit codes, shared by every command.
EXIT_ERROR = 1  # a runtime failure (database unreachable, I/O error, ...)
EXIT_USAGE = 2  # bad input: a missing path, a bad option, a bad config file
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader closed stdout early (``| head``)


def exit_code(exc: DupfinderError) -> int:
    """The exit code for a library error: 2 for bad input, 1 for everything else."""
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR


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
        """The effective settings for this invocation (the command line's lookup order)."""
        from dupfinder.config import load_settings  # loaded when a command needs it

        return load_settings(self.config, self.db_url, self.host_label)

    def catalogue(self) -> Catalogue:
        """Open the catalogue (with fallback unless ``--no-fallback``)."""
        from dupfinder.catalogue import Catalogue

        # the fallback notice is information (-q silences it): the scan's summary names
        # the database in use anyway
        from dupfinder.commands.progress import TerminalBars

        return Catalogue.open(config=self.settings(), fallback=not self.no_fallback,
                              reporter=TerminalBars(self.warn, self.info, bars=not self.quiet))

    @contextmanager
    def opened(self) -> Iterator[Catalogue]:
        """The catalogue for the length of a ``with`` block, closed afterwards."""
        cat = self.catalogue()
        try:
            yield cat
        finally:
            cat.close()

    def warn(self, line: str) -> None:
        """One line to stderr (shown even with ``-q``: warnings matter)."""
        click.echo(mask_secrets(flagged(line)), err=True)

    def info(self, line: str) -> None:
        """A line to stderr unless ``-q``."""
        if not self.quiet:
            click.echo(mask_secrets(flagged(line)), err=True)


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
                     help="Fail instead of falling back to SQLite when the configured "
                          "PostgreSQL server is down (a --db-url never falls back)."),
        click.option("--host-label", metavar="NAME", expose_value=False,
                     callback=_store("host_label"),
                     help="Label for this machine's files (default: hostname)."),
        click.option("-v", "--verbose", count=True, expose_value=False,
                     callback=_store("verbose"),
                     help="More detail (repeatable; -vv shows tracebacks of errors)."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_store("quiet"),
                     help="Only errors and results."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one line on stderr and an exit code; never a traceback
    (unless -vv). SIGTERM ends a command as Ctrl-C does, so scans and action runs record
    themselves as interrupted."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = click.get_current_context().ensure_object(Context).verbose
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return func(*args, **kwargs)
        except DupfinderError as exc:
            if verbose >= 2:
                traceback.print_exc()
            click.echo(f"dupfinder: error: {error_line(exc)}", err=True)
            sys.exit(exit_code(exc))
        except KeyboardInterrupt:
            click.echo("dupfinder: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, BrokenPipeError):
            raise  # a closed stdout is handled once, in cli.main
        except Exception as exc:  # noqa: BLE001 - last line of defence for the user
            if verbose >= 2:
                traceback.print_exc()
            name = type(exc).__name__
            click.echo(f"dupfinder: error: {name}: {one_line(exc)}", err=True)
            sys.exit(EXIT_ERROR)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def stdout_to_devnull() -> None:
    """After EPIPE on stdout: point file descriptor 1 at /dev/null, so that what is still
    buffered (and the flush at interpreter exit) goes nowhere instead of failing again, as
    Python's documentation on SIGPIPE recommends."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not a real file (tests capture into memory): nothing will flush to fd 1
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def utf8_stdout() -> Iterator[TextIO]:
    """stdout as UTF-8 text with ``\n`` line ends whatever the locale, for streaming many
    lines; always detached from ``sys.stdout.buffer`` afterwards, a closed pipe included."""
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                           line_buffering=False, write_through=False)
    try:
        yield out
        out.flush()
    except BrokenPipeError:
        stdout_to_devnull()  # so that detach()'s flush cannot fail again
        raise
    finally:
        with suppress(BrokenPipeError, ValueError):  # ValueError: the buffer was closed
            out.detach()


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def reference_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--reference [HOST:]DIR``, repeatable."""
    return click.option(
        "--reference", "references", multiple=True, metavar="[HOST:]DIR",
        help="Reference folder (of HOST, or of any host; repeatable): only groups with a "
             "file under one; dedupe keeps that copy and never touches files there.")(f)


def parse_reference(text: str) -> Reference:
    """``DIR`` (any host) or ``HOST:DIR`` (that host's folder; DIR absolute or ``~``)."""
    from dupfinder.db.selection import Reference


    host, sep, folder = text.partition(":")
    if sep and "/" not in host and (not host or not folder):
        # "HOST:" or ":DIR" is a slip, not a folder with a colon in its name (./:DIR is)
        raise UsageError(f"--reference {for_message(text)}: malformed reference; give DIR "
                         "or HOST:DIR")
    if sep and host and "/" not in host and folder.startswith(("/", "~")):
        return Reference(absolute(folder), host)
    return Reference(absolute(text))
