"""The point-cloud modality: folders of meshes and point files projected to images by a
:class:`~lkconv.modalities.pointcloud.adapter.PointCloudAdapter`; options in :mod:`lkconv.modalities.pointcloud.data`."""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers cgal-shapes
from . import data
from .adapter import PointCloudAdapter

__all__ = ["PointCloudModality", "PointCloudAdapter"]


@register_modality
class PointCloudModality(Modality):
    name = "pointcloud"
    adapter = PointCloudAdapter
    folder = data

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        return data.DATA_OPTIONS + data.ADAPTER_OPTIONS + (data.BUILTIN_OPTIONS if builtin else ())
