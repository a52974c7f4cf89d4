"""Outputs: duplicate groups as text, fdupes, JSON and CSV, and the HTML report."""
