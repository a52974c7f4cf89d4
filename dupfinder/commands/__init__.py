"""Subcommands of the ``dupfinder`` group, one module per area; importing registers them."""

from dupfinder.commands import query, scan  # noqa: F401
