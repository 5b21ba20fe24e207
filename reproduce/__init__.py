"""Reproduce the paper's Table 1 and Table 2 (docs/tables.md); ``python -m reproduce`` is the command line."""
