"""The video modality: folders of clips (PyAV) laid out as one 2-D map by a
:class:`~lkconv.modalities.video.adapter.VideoAdapter`; options in :mod:`lkconv.modalities.video.data`."""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers moving-fashion
from . import data
from .adapter import VIDEO_LAYOUTS, VideoAdapter

__all__ = ["VideoModality", "VideoAdapter", "VIDEO_LAYOUTS"]


@register_modality
class VideoModality(Modality):
    name = "video"
    adapter = VideoAdapter
    folder = data

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        return data.DATA_OPTIONS + data.ADAPTER_OPTIONS + (data.BUILTIN_OPTIONS if builtin else ())
