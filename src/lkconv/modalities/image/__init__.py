"""The image modality: folders of PNG/JPEG/BMP files (and in-memory arrays for built-in sets) for an
:class:`~lkconv.modalities.image.adapter.ImageAdapter`.

``modality_args``: ``aug`` (``rrc``, ``pad_crop`` or ``none``) and, for folders, ``channels`` (1 or 3; default: 3
when any file is in colour, else 1). With ``--task detect`` the folder contract is
:mod:`~lkconv.modalities.image.detect_data`'s (COCO annotations; ``channels`` only, default 3).
"""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers fashion-mnist
from . import data, detect_builtin, detect_data  # noqa: F401 - detect_builtin registers fashion-detect
from .adapter import IMAGENET_MEAN, IMAGENET_STD, ImageAdapter

__all__ = ["ImageModality", "ImageAdapter", "IMAGENET_MEAN", "IMAGENET_STD"]


@register_modality
class ImageModality(Modality):
    name = "image"
    adapter = ImageAdapter
    folder = data
    tasks = ("classify", "detect")

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        if task == "detect":
            return () if builtin else ("channels",)
        return ("aug",) if builtin else ("aug", "channels")

    def build_folder_data(self, cfg, *, eval_only: bool = False, class_names: list[str] | None = None):
        if cfg.task == "detect":
            return detect_data.build_detect_data(cfg, eval_only=eval_only, class_names=class_names)
        return data.build_data(cfg, eval_only=eval_only, class_names=class_names)

    def load_for_predict(self, path, preprocessing):
        if preprocessing.get("resize") == "letterbox":
            return detect_data.load_detect_for_predict(path, preprocessing)
        return data.load_for_predict(path, preprocessing)
