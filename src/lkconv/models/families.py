"""Imports every model family so that their variants register (one line per family file)."""

from . import unireplknet  # noqa: F401
from . import replknet  # noqa: F401
from . import inceptionnext  # noqa: F401
from . import lsnet  # noqa: F401
from . import sequence  # noqa: F401
