"""Imports every model family so that their variants register (one line per family file)."""

from . import unireplknet  # noqa: F401
