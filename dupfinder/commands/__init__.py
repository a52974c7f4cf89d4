"""Subcommands of the ``dupfinder`` group, one module per area; importing registers them."""

from dupfinder.commands import scan  # noqa: F401
