"""One event in named stages, and the rules it is decided by."""
