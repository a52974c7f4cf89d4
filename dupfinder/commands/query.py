"""``dupfinder dupes``, ``dupfinder stats`` and ``dupfinder report``."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click

from dupfinder.commands.base import (
    Context,
    common_options,
    handle_errors,
    parse_reference,
    pass_ctx,
    reference_option,
    utf8_stdout,
)
from dupfinder.errors import UsageError
from dupfinder.output import formats, lists
from dupfinder.output.formats import count, noun
from dupfinder.paths import absolute, display, for_message
from dupfinder.states import GroupSort, Scope
from dupfinder.units import human_size, parse_size


def _roots(paths: tuple[str, ...]) -> list[str] | None:
    """Absolute forms of the PATH arguments (they need not exist any more)."""
    return [absolute(p) for p in paths] or None


def _filters(f):  # type: ignore[no-untyped-def]
    f = click.option("--host", default=None, help="Only files of this host label.")(f)
    f = click.option("--min-size", default="0", help="Only groups of at least this size.")(f)
    f = click.option("--across", "scope", flag_value=Scope.ACROSS.value,
                     help="Only groups spanning two or more of the PATHs (their files there): "
                          "what the folders have in common.")(f)
    f = click.option("--within", "scope", flag_value=Scope.WITHIN.value,
                     help="Only files under the PATHs take part.")(f)
    f = click.option("--touching", "scope", flag_value=Scope.TOUCHING.value, default=True,
                     hidden=True)(f)
    return click.argument("paths", nargs=-1)(f)


@click.command("dupes")
@_filters
@click.option("-f", "--format", "fmt", type=click.Choice(formats.FORMATS), default="text",
              show_default=True, help="Output format.")
@click.option("--sort", type=click.Choice([s.value for s in GroupSort]), default="wasted",
              show_default=True,
              help="Order of the groups.")
@reference_option
@click.option("--show-host", is_flag=True,
              help="Text format: show each path's host label (default: only when the "
                   "catalogue holds files of several hosts).")
@common_options
@pass_ctx
@handle_errors
def dupes_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str,
              scope: str, references: tuple[str, ...], fmt: str, sort: str,
              show_host: bool) -> None:
    """List duplicate groups from the catalogue.

    With PATHs: every group with a file under a PATH, with all its files wherever they are
    (other folders, other hosts): what here exists elsewhere. --within: only the files under
    the PATHs; --across: only groups spanning two or more PATHs.
    """
    minimum = parse_size(min_size, "--min-size")
    roots = _roots(paths)
    with ctx.opened() as cat:
        if fmt == "text" and not show_host and host is None:
            # the host is noise when the catalogue holds one host's files (or --host's);
            # a group touching PATHs may list files of other hosts outside them
            show_host = len(cat.hosts()) > 1
        groups = cat.groups(roots, host=host, min_size=minimum, sort=sort, scope=scope,
                            reference=[parse_reference(r) for r in references])
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
                        "scope": scope, "host": host, "min_size": minimum, "sort": sort}
                n, wasted = formats.write_json(groups, out_text, meta)
    if fmt == "text":
        ctx.info(f"{count(n, 'group')}, {human_size(wasted)} wasted")


@click.command("stats")
@_filters
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many extensions, folders and scans to list.")
@common_options
@pass_ctx
@handle_errors
def stats_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str,
              scope: str, top: int) -> None:
    """Totals, top extensions and folders by wasted bytes, and the latest scans."""
    minimum = parse_size(min_size, "--min-size")
    roots = _roots(paths)
    with ctx.opened() as cat:
        st = cat.stats(roots, host=host, min_size=minimum, top=top, scope=scope)
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


@click.command("report")
@_filters
@reference_option
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Where to write the HTML report.")
@common_options
@pass_ctx
@handle_errors
def report_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, min_size: str,
               scope: str, references: tuple[str, ...], output: str) -> None:
    """Write a self-contained HTML report of the duplicates, optionally under paths."""
    minimum = parse_size(min_size, "--min-size")
    if os.path.isdir(output):
        raise UsageError(f"report: {for_message(output)} is a folder; give a file name such "
                         "as report.html")
    with ctx.opened() as cat:
        info = cat.report(output, _roots(paths), host=host, min_size=minimum, scope=scope,
                          reference=[parse_reference(r) for r in references])
    ctx.info(f"wrote {for_message(info.path)}: {count(info.groups, 'duplicate group')}, "
             f"{count(info.files, 'file')}, {human_size(info.bytes)}")


@click.command("unique")
@click.argument("paths", nargs=-1, required=True)
@click.option("--min-copies", type=click.IntRange(1, 1_000_000), default=1, show_default=True,
              help="List files with fewer than this many copies outside the PATHs.")
@click.option("--host", "hosts", multiple=True, metavar="LABEL",
              help="Count only copies on this host (repeatable; default: any host).")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "csv"]),
              default="text", show_default=True, help="Output format.")
@common_options
@pass_ctx
@handle_errors
def unique_cmd(ctx: Context, paths: tuple[str, ...], min_copies: int, hosts: tuple[str, ...],
               fmt: str) -> None:
    """This host's files under the PATHs with fewer than --min-copies copies outside them,
    on any host unless --host narrows it: which of my photos are not on the NAS? A hard link
    is not a copy; a file whose size no other file has is unique without being hashed."""
    roots = _roots(paths)
    with ctx.opened() as cat, utf8_stdout() as out:
        files = cat.unique(roots, min_copies=min_copies, hosts=hosts or None)
        n, nbytes = lists.write_unique(files, out, fmt)
    if fmt == "text":
        ctx.info(f"{count(n, 'file')} ({human_size(nbytes)}) with fewer than "
                 f"{count(min_copies, 'copy', 'copies')} elsewhere")


@click.command("folders")
@click.argument("paths", nargs=-1)
@click.option("--host", default=None, help="Only folders of this host label.")
@click.option("--same-names", is_flag=True,
              help="Also require the same relative paths (default: contents only).")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "csv"]),
              default="text", show_default=True, help="Output format.")
@common_options
@pass_ctx
@handle_errors
def folders_cmd(ctx: Context, paths: tuple[str, ...], host: str | None, same_names: bool,
                fmt: str) -> None:
    """Folders whose whole subtree holds the same files as another folder's (names ignored
    unless --same-names), topmost matches only, with file count, size and reclaimable
    bytes. A folder that differs by one file, or holds one more, is not a duplicate."""
    with ctx.opened() as cat:
        groups = cat.folders(_roots(paths), host=host, same_names=same_names)
    with utf8_stdout() as out:
        wasted = lists.write_folders(groups, out, fmt)
    if fmt == "text":
        ctx.info(f"{count(len(groups), 'group')} of duplicate folders, "
                 f"{human_size(wasted)} reclaimable")
