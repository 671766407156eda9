"""The audio modality: folders of WAV/FLAC/OGG clips for an :class:`~lkconv.modalities.audio.adapter.AudioAdapter`
(log-mel maps); options in :mod:`lkconv.modalities.audio.data`."""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers keywords, sonic-samples
from . import data
from .adapter import AUDIOSET_MEAN, AUDIOSET_STD, AudioAdapter

__all__ = ["AudioModality", "AudioAdapter", "AUDIOSET_MEAN", "AUDIOSET_STD"]


@register_modality
class AudioModality(Modality):
    name = "audio"
    adapter = AudioAdapter
    folder = data

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        return data.DATA_OPTIONS + data.ADAPTER_OPTIONS
