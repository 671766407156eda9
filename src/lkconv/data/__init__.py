"""Data: file readers (``readers/``), folder datasets per the data contract, and the built-in sets."""

from __future__ import annotations

from pathlib import Path

from .datasets import DataBundle, DataError

__all__ = ["build_data", "DataBundle", "DataError"]


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The train/val datasets for a :class:`~lkconv.engine.config.TrainConfig` (``data`` is PATH or builtin:NAME).

    With ``eval_only`` (``lkconv eval --data``) only ``val`` is built: a folder's val/ or test/ split, or all of it,
    labelled with the trained run's ``class_names``; a built-in set gives its test split.
    """
    if cfg.data.startswith("builtin:"):
        from .builtin import load_builtin

        return load_builtin(cfg.data.split(":", 1)[1], cfg)
    path = Path(cfg.data)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if cfg.modality == "image":
        from .image import build_image_data

        return build_image_data(cfg, eval_only=eval_only, class_names=class_names)
    raise DataError(f"modality {cfg.modality!r} has no folder reader yet")


def load_for_predict(modality: str, path: str | Path, preprocessing: dict):
    """One file as the raw sample a trained run's adapter expects (the same preprocessing as validation)."""
    if modality == "image":
        from .image import load_image_for_predict

        return load_image_for_predict(path, preprocessing)
    raise DataError(f"predict does not support modality {modality!r} yet")
