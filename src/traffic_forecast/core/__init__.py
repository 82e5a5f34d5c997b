"""Shared by every layer: config and its loader, errors, atomic I/O, lineage, the CLI framework."""
