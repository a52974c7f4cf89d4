"""The scan pipeline: walk -> sync with the catalogue -> prefix hash -> full hash."""
