"""``dupfinder scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dupfinder.catalogue import Catalogue
from dupfinder.commands.base import Context, common_options, handle_errors, pass_ctx
from dupfinder.errors import UsageError
from dupfinder.output.formats import count
from dupfinder.paths import for_message
from dupfinder.scan.filters import load_exclude_from
from dupfinder.scan.hashing import ALGORITHMS, DEFAULT_ALGORITHM, DEFAULT_PREFIX_SIZE
from dupfinder.scan.pipeline import ScanOptions, ScanSummary
from dupfinder.units import human_size, parse_size

_SCAN_FLAGS = [
    click.option("-a", "--algorithm", default=DEFAULT_ALGORITHM, show_default=True,
                 type=click.Choice(list(ALGORITHMS)), help="Hash algorithm."),
    click.option("-p", "--processes", type=int, default=None,
                 help="Hashing processes (default: CPU count; 1 = no pool; at most 4 per "
                      "CPU, and never more than 64)."),
    click.option("-b", "--batch-size", type=int, default=1000, show_default=True,
                 help="Files per database batch."),
    click.option("-c", "--chunk-size", default="1MiB", show_default=True,
                 help="Read buffer size (e.g. 256k, 8MB)."),
    click.option("--min-size", default=None,
                 help="Smallest file size to consider [default: 1]."),
    click.option("--max-size", default=None, help="Largest file size to consider."),
    click.option("--include-empty", is_flag=True, help="Treat empty files as duplicates too."),
    click.option("--include", multiple=True, metavar="PATTERN",
                 help="Only files matching this gitignore pattern, relative to the root."),
    click.option("--exclude", multiple=True, metavar="PATTERN",
                 help="Skip files and folders matching this gitignore pattern, relative to "
                      "the root (excluded folders are not entered)."),
    click.option("--exclude-from", multiple=True, metavar="FILE",
                 help="Read --exclude patterns from FILE (gitignore syntax)."),
    click.option("--ignore-files", is_flag=True,
                 help="Honour .gitignore, .ignore and .dupfinderignore files in the tree."),
    click.option("--hidden/--no-hidden", default=True, show_default=True,
                 help="Include dot-files and dot-folders."),
    click.option("--include-trash", is_flag=True,
                 help="Also scan trash folders (.Trash-UID, ~/.local/share/Trash, "
                      "$RECYCLE.BIN, ...); a copy there is never the one kept."),
    click.option("--follow-links", is_flag=True, help="Follow symbolic links (loop-safe)."),
    click.option("--one-file-system", is_flag=True,
                 help="Stay on the file system of each root."),
    click.option("--max-depth", type=int, default=None,
                 help="Descend at most N levels (1 = only files directly in a root)."),
    click.option("--prefix-size", default=str(DEFAULT_PREFIX_SIZE), show_default=True,
                 help="Bytes hashed in the prefix stage."),
    click.option("--commit-interval", type=float, default=1.0, show_default=True,
                 metavar="SECONDS",
                 help="SQLite: commit finished hashes at least this often (what a killed "
                      "scan may lose; PostgreSQL's workers commit every batch)."),
    click.option("--start-method", type=click.Choice(["fork", "spawn", "forkserver"]),
                 default=None,
                 help="multiprocessing start method (default: the platform's)."),
]


def scan_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """The scan's filters and options, shared by ``scan`` and ``watch``; the command takes
    them as ``**flags`` (and nothing else that way) for :func:`options_of`."""
    for option in reversed(_SCAN_FLAGS):
        func = option(func)
    return func


def options_of(f: dict[str, Any]) -> ScanOptions:
    """The checked scan options of the flags ``f`` (what :func:`scan_flags` gave the
    command); bad input fails here, before anything is opened or written."""
    min_size = f["min_size"]
    if f["include_empty"] and min_size is not None and parse_size(min_size, "--min-size") > 0:
        raise UsageError("--include-empty conflicts with --min-size above 0")
    return Catalogue.scan_options(
        follow_links=f["follow_links"], one_file_system=f["one_file_system"],
        max_depth=f["max_depth"], min_size=0 if f["include_empty"] else (min_size or 1),
        max_size=f["max_size"], include=f["include"],
        exclude=load_exclude_from(f["exclude_from"]) + f["exclude"],
        ignore_files=f["ignore_files"], hidden=f["hidden"],
        include_trash=f["include_trash"], algorithm=f["algorithm"],
        batch_size=f["batch_size"], chunk_size=f["chunk_size"],
        prefix_size=f["prefix_size"], start_method=f["start_method"],
        processes=f["processes"], commit_interval=f["commit_interval"],
    )


@click.command("scan")
@click.argument("paths", nargs=-1, required=True)
@scan_flags
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the HTML report of duplicates to this file.")
@common_options
@pass_ctx
@handle_errors
def scan_cmd(ctx: Context, paths: tuple[str, ...], report_path: str | None,
             **flags: Any) -> None:
    """Scan folders or files into the catalogue and find the duplicates among them."""
    options = options_of(flags)
    roots = Catalogue.check_roots(paths)
    with ctx.opened() as cat:
        summary = cat.scan(roots, options)
        if ctx.verbose:
            for path, reason in summary.problems:
                ctx.warn(for_message(f"{path}: {reason}"))
        if report_path:
            cat.report(report_path, summary.roots)
        where = cat.url
    if not ctx.quiet:
        for line in summary_lines(summary, where):
            click.echo(line)


def summary_lines(s: ScanSummary, where: str) -> list[str]:
    """The end-of-scan summary for people."""
    c = s.sync
    total = sum(s.stage_seconds.values())
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in s.stage_seconds.items())
    lines = [
        f"scan {s.scan_id} {s.status} in {total:.2f}s ({where})",
        f"files: {c.seen} seen, {c.new} new, {c.changed} changed, {c.unchanged} unchanged, "
        f"{c.removed} removed",
        f"hashed: {count(s.files_hashed, 'file')}, {human_size(s.bytes_hashed)}; "
        f"{s.changed_during_read} changed while read (left for the next scan); "
        f"{count(len(s.problems), 'error')}" + (" (-v lists them)" if s.problems else ""),
        f"duplicates: {count(s.duplicate_groups, 'group')}, "
        f"{count(s.files_in_groups, 'file')}, {human_size(s.wasted_bytes)} wasted",
        f"stages: {stages}",
    ]
    return lines
