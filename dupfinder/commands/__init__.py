"""Subcommands of the ``dupfinder`` group, one module per area; importing registers them."""

from dupfinder.commands import dedupe, query, scan  # noqa: F401
