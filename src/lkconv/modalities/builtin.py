"""Built-in data sets (``--data builtin:NAME``): real data that installs from package registries.

Each entry says how to install it; ``make data`` installs them all. Nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from ..data.datasets import DataBundle, DataError

__all__ = ["BuiltinSet", "BUILTINS", "builtin_names", "load_builtin", "list_builtins", "prepare_builtin", "data_home",
           "register"]


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    modality: str
    task: str
    description: str
    size: str
    licence: str
    install: str
    available: Callable[[], bool]
    build: Callable[..., DataBundle]
    prepare: Callable[[], None] | None = None  # generates/unpacks the set from installed packages (make data)


BUILTINS: dict[str, BuiltinSet] = {}


def register(entry: BuiltinSet) -> BuiltinSet:
    BUILTINS[entry.name] = entry
    return entry


def data_home() -> Path:
    """Where prepared built-in sets live: ``$LKCONV_DATA_DIR`` or ``~/.cache/lkconv/data``."""
    import os

    return Path(os.environ.get("LKCONV_DATA_DIR") or Path.home() / ".cache" / "lkconv" / "data")


def prepare_builtin(name: str) -> None:
    """Runs a set's preparation step (generation from installed packages); a no-op for sets that need none."""
    _ensure_loaded()
    if name not in BUILTINS:
        raise DataError(f"unknown built-in data set {name!r}; available: {', '.join(builtin_names())}")
    entry = BUILTINS[name]
    if entry.prepare is not None:
        entry.prepare()


def _ensure_loaded() -> None:
    """Imports every modality; each registers its built-in sets."""
    from .registry import modality_names

    modality_names()


def builtin_names() -> list[str]:
    _ensure_loaded()
    return sorted(BUILTINS)


def list_builtins() -> list[dict]:
    _ensure_loaded()
    return [{"name": b.name, "modality": b.modality, "task": b.task, "size": b.size, "licence": b.licence,
             "installed": b.available(), "install": b.install, "description": b.description}
            for b in BUILTINS.values()]


def load_builtin(name: str, cfg) -> DataBundle:
    _ensure_loaded()
    if name not in BUILTINS:
        raise DataError(f"unknown built-in data set {name!r}; available: {', '.join(builtin_names())}")
    entry = BUILTINS[name]
    if entry.modality != cfg.modality:
        raise DataError(f"builtin:{name} is {entry.modality} data; use --modality {entry.modality}")
    if not entry.available():
        raise DataError(f"builtin:{name} is not installed; install it with `{entry.install}` (or `make data`)")
    return entry.build(cfg)
