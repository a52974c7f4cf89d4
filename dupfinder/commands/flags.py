"""The one table of the command line's flags for the library's fields: library errors name
the field a Python caller passed (``min_size``); the command line says the flag a person
typed (``--min-size``), so its messages read as they always have."""

from __future__ import annotations

from dupfinder.errors import DupfinderError, in_words

FLAGS = {
    "action": "--action",
    "batch_size": "-b/--batch-size",
    "chunk_size": "--chunk-size",
    "commit_interval": "--commit-interval",
    "config": "--config",
    "db_url": "--db-url",
    "exclude": "--exclude",
    "exclude_from": "--exclude-from",
    "host": "--host",
    "host_label": "--host-label",
    "include": "--include",
    "max_depth": "--max-depth",
    "max_size": "--max-size",
    "min_copies": "--min-copies",
    "min_size": "--min-size",
    "prefix_size": "--prefix-size",
    "processes": "-p/--processes",
    "reference": "--reference",
    "save_plan": "--save-plan",
    "to": "--to",
    "to DIR": "--to DIR",
}


def flagged(text: str) -> str:
    """``text`` (a message or a setting's source) with its fields shown as flags."""
    return in_words(text, FLAGS)


def error_line(exc: DupfinderError) -> str:
    """A library error's message as the command line says it."""
    return exc.worded(FLAGS)
