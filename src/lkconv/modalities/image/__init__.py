"""The image modality: folders of PNG/JPEG/BMP files (and in-memory arrays for built-in sets) for an
:class:`~lkconv.modalities.image.adapter.ImageAdapter`.

``modality_args``: ``aug`` (``rrc``, ``pad_crop`` or ``none``), ``flip`` (true, false, auto), ``color`` (photometric
strength) and, for folders, ``channels`` (1 or 3; default: 3
when any file is in colour, else 1).
"""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers fashion-mnist
from . import data
from .adapter import IMAGENET_MEAN, IMAGENET_STD, ImageAdapter

__all__ = ["ImageModality", "ImageAdapter", "IMAGENET_MEAN", "IMAGENET_STD"]


@register_modality
class ImageModality(Modality):
    name = "image"
    adapter = ImageAdapter
    folder = data

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        return ("aug", "flip", "color") if builtin else ("aug", "flip", "color", "channels")
