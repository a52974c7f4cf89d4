"""``dupfinder dupes``, ``dupfinder stats`` and ``dupfinder report``."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click

from dupfinder.commands.base import Context, common_options, handle_errors, pass_ctx, utf8_stdout
from dupfinder.errors import UsageError
from dupfinder.output import formats
from dupfinder.output.formats import count, noun
from dupfinder.paths import absolute, display, for_message
from dupfinder.states import GroupSort
from dupfinder.units import human_size, parse_size


def _roots(paths: tuple[str, ...]) -> list[str] | None:
    """Absolute forms of the PATH arguments (they need not exist any more)."""
    return [absolute(p) for p in paths] or None


def _filters(f):  # type: ignore[no-untyped-def]
    f = click.option("--host", default=None, help="Only files of this host label.")(f)
    f = click.option("--min-size", default="0", help="Only groups of at least this size.")(f)
    return click.argument("paths", nargs=-1)(f)


@click.command("dupes", short_help="List duplicate groups (text, fdupes, JSON or CSV).")
@_filters
@click.option("-f", "--format", "fmt", type=click.Choice(formats.FORMATS), default="text",
              show_default=True, help="Output format.")
@click.option("--sort", type=click.Choice([s.value for s in GroupSort]), default="wasted",
              show_default=True,
              help="Order of the groups.")
@click.option("--show-host", is_flag=True,
              help="Text format: show each path's host label (default: only when the "
                   "catalogue holds files of several hosts).")
@common_options
@pass_ctx
@handle_errors
def dupes_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str, fmt: str,
              sort: str, show_host: bool) -> None:
    """List duplicate groups from the catalogue, optionally only under given paths."""
    minimum = parse_size(min_size, "--min-size")
    roots = _roots(paths)
    with ctx.opened() as cat:
        if fmt == "text" and not show_host and host is None:
            # the host is noise when every file is this one host's (or --host's)
            show_host = cat.stats(roots, min_size=minimum, top=0).hosts > 1
        groups = cat.groups(roots, host=host, min_size=minimum, sort=sort)
        if fmt == "fdupes":
            out = sys.stdout.buffer
            formats.write_fdupes(groups, out)
            out.flush()
            return
        with utf8_stdout() as out_text:
            if fmt == "text":
                n, wasted = formats.write_text(groups, out_text, show_host=show_host)
            elif fmt == "csv":
                n, wasted = formats.write_csv(groups, out_text)
            else:
                meta = {"generated": datetime.now(UTC).isoformat(), "roots": roots,
                        "host": host, "min_size": minimum, "sort": sort}
                n, wasted = formats.write_json(groups, out_text, meta)
    if fmt == "text":
        ctx.info(f"{count(n, 'group')}, {human_size(wasted)} wasted")


@click.command("stats", short_help="Totals, the biggest wasters and the latest scans.")
@_filters
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many extensions, folders and scans to list.")
@common_options
@pass_ctx
@handle_errors
def stats_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str,
              top: int) -> None:
    """Totals, top extensions and folders by wasted bytes, and the latest scans."""
    minimum = parse_size(min_size, "--min-size")
    roots = _roots(paths)
    with ctx.opened() as cat:
        st = cat.stats(roots, host=host, min_size=minimum, top=top)
    echo = click.echo
    echo(f"files:            {st.files} ({human_size(st.bytes)}) on {count(st.hosts, 'host')}")
    echo(f"duplicate groups: {st.groups} ({count(st.files_in_groups, 'file')})")
    echo(f"wasted:           {human_size(st.wasted)} ({count(st.wasted, 'byte')})")
    echo("\ntop extensions by wasted bytes:")
    for e in st.top_extensions:
        echo(f"  {human_size(e.wasted):>10}  {e.files:>7} {noun(e.files, 'file'):<5}  "
             f"{display(e.name)}")
    echo("\ntop folders by wasted bytes:")
    for d in st.top_folders:
        echo(f"  {human_size(d.wasted):>10}  {d.files:>7} {noun(d.files, 'file'):<5}  "
             f"{display(d.name)}")
    echo("\nlatest scans:")
    for sc in st.scans:
        when = sc.started_at.strftime("%Y-%m-%d %H:%M") if sc.started_at else "?"
        echo(f"  #{sc.id:<5} {when}  {display(sc.host):<16} {sc.status:<11} "
             f"{sc.files_seen:>8} {noun(sc.files_seen, 'file'):<5}  "
             f"{', '.join(display(r) for r in sc.roots or [])}")


@click.command("report", short_help="Write a self-contained HTML report of the duplicates.")
@_filters
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Where to write the HTML report.")
@common_options
@pass_ctx
@handle_errors
def report_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str,
               output: str) -> None:
    """Write a self-contained HTML report of the duplicates, optionally under paths."""
    minimum = parse_size(min_size, "--min-size")
    if os.path.isdir(output):
        raise UsageError(f"report: {for_message(output)} is a folder; give a file name such "
                         "as report.html")
    with ctx.opened() as cat:
        info = cat.report(output, _roots(paths), host=host, min_size=minimum)
    ctx.info(f"wrote {for_message(info.path)}: {count(info.groups, 'duplicate group')}, "
             f"{count(info.files, 'file')}, {human_size(info.bytes)}")
