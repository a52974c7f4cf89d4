"""Benchmark scripts for dupfinder (run from the repository root: ``python -m bench.NAME``).

Nothing here is a test: the scripts measure, print and never assert on timings.
"""
