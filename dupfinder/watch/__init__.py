"""``dupfinder watch``: the catalogue kept current from the kernel's file events."""
