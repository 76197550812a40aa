"""Fixtures: filled in by the part of the harness it names."""
