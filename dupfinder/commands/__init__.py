"""The subcommands, one module per area; :mod:`dupfinder.cli` adds them to the group."""
