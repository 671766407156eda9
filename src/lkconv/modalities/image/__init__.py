"""The image modality: folders of PNG/JPEG/BMP files (and in-memory arrays for built-in sets) for an
:class:`~lkconv.modalities.image.adapter.ImageAdapter`.

Tasks: ``classify`` (class folders), ``segment`` (``images/`` + ``masks/`` folders, see :mod:`.segment`) and ``detect``
(COCO annotations, see :mod:`.detect_data`).

``modality_args``: ``aug`` (``rrc``, ``pad_crop`` or ``none``; for segment ``scale_crop`` or ``none``; none for
detect), for classification ``flip`` (true, false, auto) and ``color`` (photometric strength), and, for folders,
``channels`` (1 or 3; default: 3 when any file is in colour, else 1; for detect 3).
"""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin, detect_builtin, segment_builtin  # noqa: F401 - register fashion-mnist, -detect, -on-photos
from . import data, detect_data, segment
from .adapter import IMAGENET_MEAN, IMAGENET_STD, ImageAdapter

__all__ = ["ImageModality", "ImageAdapter", "IMAGENET_MEAN", "IMAGENET_STD"]


@register_modality
class ImageModality(Modality):
    name = "image"
    adapter = ImageAdapter
    folder = data
    tasks = ("classify", "segment", "detect")

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        base = {"classify": ("aug", "flip", "color"), "segment": ("aug",), "detect": ()}[task]
        return base if builtin else base + ("channels",)

    def build_folder_data(self, cfg, *, eval_only: bool = False, class_names: list[str] | None = None):
        """Class folders (classify), images/ + masks/ folders (segment, :mod:`.segment`) or COCO annotations
        (detect, :mod:`.detect_data`)."""
        if cfg.task == "segment":
            return segment.build_segment_data(cfg, eval_only=eval_only, class_names=class_names)
        if cfg.task == "detect":
            return detect_data.build_detect_data(cfg, eval_only=eval_only, class_names=class_names)
        return data.build_data(cfg, eval_only=eval_only, class_names=class_names)

    def load_for_predict(self, path, preprocessing):
        if preprocessing.get("task") == "segment":
            return segment.load_for_predict(path, preprocessing)
        if preprocessing.get("resize") == "letterbox":
            return detect_data.load_detect_for_predict(path, preprocessing)
        return data.load_for_predict(path, preprocessing)
