"""dupfinder: a duplicate file finder that keeps every scan in a database."""

__version__ = "0.1.0"
