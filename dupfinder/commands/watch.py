"""``dupfinder watch``: the words (or JSON lines) for what the watch finds."""

from __future__ import annotations

import json
from typing import Any

import click

from dupfinder.catalogue import Catalogue
from dupfinder.commands.base import Context, common_options, handle_errors, pass_ctx
from dupfinder.commands.scan import options_of, scan_flags
from dupfinder.errors import UsageError
from dupfinder.output.formats import count, json_path, json_roots, json_text
from dupfinder.paths import display
from dupfinder.units import human_size, parse_duration
from dupfinder.watch.events import Said, WatchEvent

# a list of folders in a message shows this many, then how many more
SHOWN = 5


def _some(paths: list[str]) -> str:
    shown = ", ".join(display(p) for p in paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _every(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


def _other(e: WatchEvent) -> str:
    return f"{e.other_host}:{display(e.other)}" if e.other_host else display(e.other)


def words(e: WatchEvent, rescan_every: float) -> str:
    """One line for people about ``e``."""
    every = _every(rescan_every)
    match e.said:
        case Said.NEW_COPY:
            return f"new copy: {display(e.path)} = {_other(e)} ({human_size(e.size)})"
        case Said.NOT_DUPLICATED:
            where = f"{e.other_host}:{display(e.path)}" if e.other_host else display(e.path)
            return f"no copy left: {where} ({human_size(e.size)})"
        case Said.GROUP_GONE:
            return f"group gone: every copy of a {human_size(e.size)} file was removed"
        case Said.WATCHING:
            return (f"watching {count(e.count, 'folder')} under {_some(e.paths)} "
                    "(Ctrl-C stops)")
        case Said.OVERFLOW:
            return ("the kernel's event queue overflowed (fs.inotify.max_queued_events): "
                    f"rescanning {_some(e.paths)} so that nothing is missed")
        case Said.LIMIT:
            limit = f" ({e.count})" if e.count else ""
            return (f"the inotify watch limit fs.inotify.max_user_watches{limit} is reached: "
                    f"{count(len(e.paths), 'folder')} not watched ({_some(e.paths)}), "
                    f"rescanned every {every} instead; raise it with "
                    "'sysctl fs.inotify.max_user_watches=N'")
        case Said.ROOT_GONE:
            return (f"watched folder gone: {display(e.path)} (its rows stay in the catalogue; "
                    "the other folders are still watched)")
        case Said.ROOT_BACK:
            return f"watched folder back: {display(e.path)} (rescanned, watched again)"
        case Said.UNMOUNTED:
            return f"file system unmounted: {display(e.path)} (its rows stay in the catalogue)"
        case Said.NETWORK:
            return (f"on a network file system, which reports no changes made elsewhere: "
                    f"{_some(e.paths)}; rescanned every {every} (--rescan-every)")
        case Said.RESCAN:
            return f"rescanned {count(len(e.paths), 'unwatched folder')}"
        case Said.WAITING:
            return ("a dedupe, undo or merge of this host is at work: changes wait for its "
                    "end")
        case _:
            return f"updated: {count(e.count, 'path')} looked at, {count(e.moved, 'row')} moved"


def as_json(e: WatchEvent) -> str:
    """``e`` as one JSON line, exact paths."""
    doc: dict[str, Any] = {"event": e.said.name.lower()}
    if e.path:
        doc.update(json_path(e.path))
    if e.other:
        doc.update({f"other_{k}": v for k, v in json_path(e.other).items()})
    if e.other_host:
        doc["other_host"] = json_text(e.other_host)
    if e.said in (Said.NEW_COPY, Said.NOT_DUPLICATED, Said.GROUP_GONE):
        doc["size"] = e.size
    if e.said in (Said.WATCHING, Said.LIMIT, Said.UPDATED):
        doc["count"] = e.count
    if e.said is Said.UPDATED:
        doc["moved"] = e.moved
    if e.paths:
        doc.update({"paths" if k == "roots" else f"paths{k[5:]}": v
                    for k, v in json_roots(e.paths).items()})
    return json.dumps(doc, ensure_ascii=False)


# what goes to stderr for people even in JSON mode, and how loudly
WARNINGS = {Said.OVERFLOW, Said.LIMIT, Said.ROOT_GONE, Said.UNMOUNTED, Said.NETWORK}
FINDS = {Said.NEW_COPY, Said.NOT_DUPLICATED, Said.GROUP_GONE}
CHATTER = {Said.UPDATED, Said.RESCAN}  # -v only


@click.command("watch")
@click.argument("paths", nargs=-1, required=True)
@scan_flags
@click.option("--settle", default="1", show_default=True, metavar="SECONDS",
              help="Quiet time before a file written without a close is read.")
@click.option("--rescan-every", default="10m", show_default=True, metavar="TIME",
              help="Rescan what cannot be watched (watch limit, network file systems) "
                   "this often (e.g. 30s, 10m, 1h).")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: a line per find; json: a JSON line per event.")
@common_options
@pass_ctx
@handle_errors
def watch_cmd(ctx: Context, paths: tuple[str, ...], settle: str, rescan_every: str,
              fmt: str, **flags: Any) -> None:
    """Scan folders, then keep the catalogue current as files change, until Ctrl-C."""
    options = options_of(flags)
    settle_s = parse_duration(settle, "--settle")
    every = parse_duration(rescan_every, "--rescan-every")
    if every <= 0:
        raise UsageError(f"invalid --rescan-every '{rescan_every}': must be above 0")
    roots = Catalogue.check_roots(paths)

    def tell(e: WatchEvent) -> None:
        if fmt == "json":
            if e.said not in CHATTER or ctx.verbose:
                click.echo(as_json(e))
            if e.said in WARNINGS:
                ctx.warn(words(e, every))
        elif e.said in FINDS:
            click.echo(words(e, every))
        elif e.said in WARNINGS:
            ctx.warn(words(e, every))
        elif e.said not in CHATTER or ctx.verbose:
            ctx.info(words(e, every))

    with ctx.opened() as cat:
        cat.watch(roots, options, settle=settle_s, rescan_every=every, tell=tell)
