"""Data: file readers (``readers/``), folder datasets per the data contract, and the built-in sets.

Each modality has one module here (``image.py``, ``audio.py``, ``timeseries.py``, ``pointcloud.py``,
``video.py``) that provides::

    build_data(cfg, *, eval_only=False, class_names=None) -> DataBundle
    load_for_predict(path, preprocessing: dict) -> torch.Tensor   # one raw sample, as validation sees it

and registers its built-in sets with :func:`lkconv.data.builtin.register`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from .datasets import DataBundle, DataError

__all__ = ["build_data", "load_for_predict", "modality_module", "DataBundle", "DataError", "MODALITY_MODULES"]

MODALITY_MODULES = ("image", "audio", "timeseries", "pointcloud", "video")


def modality_module(modality: str) -> ModuleType:
    if modality not in MODALITY_MODULES:
        raise DataError(f"unknown modality {modality!r}; accepted: {', '.join(MODALITY_MODULES)}")
    try:
        return importlib.import_module(f"{__name__}.{modality}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{modality}":
            raise DataError(f"modality {modality!r} has no data module yet") from e
        raise


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The train/val datasets for a :class:`~lkconv.engine.config.TrainConfig` (``data`` is PATH or builtin:NAME).

    With ``eval_only`` (``lkconv eval --data``) only ``val`` is needed: a folder's val/ or test/ split, or all of
    it, labelled with the trained run's ``class_names``; a built-in set gives its test split.
    """
    if cfg.data.startswith("builtin:"):
        from .builtin import load_builtin

        return load_builtin(cfg.data.split(":", 1)[1], cfg)
    path = Path(cfg.data)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    return modality_module(cfg.modality).build_data(cfg, eval_only=eval_only, class_names=class_names)


def load_for_predict(modality: str, path: str | Path, preprocessing: dict):
    """One file as the raw sample a trained run's adapter expects (the same preprocessing as validation)."""
    return modality_module(modality).load_for_predict(path, preprocessing)
