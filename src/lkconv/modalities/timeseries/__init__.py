"""The time-series modality: series files for classification, a table for forecasting, mapped to 2-D by a
:class:`~lkconv.modalities.timeseries.adapter.TimeSeriesAdapter`; options in :mod:`lkconv.modalities.timeseries.data`."""

from __future__ import annotations

from ..registry import Modality, register_modality
from . import builtin  # noqa: F401 - registers the sktime sets and airline
from . import data
from .adapter import MAPPINGS, TimeSeriesAdapter

__all__ = ["TimeSeriesModality", "TimeSeriesAdapter", "MAPPINGS"]


@register_modality
class TimeSeriesModality(Modality):
    name = "timeseries"
    label = "time-series"
    tasks = ("classify", "forecast")
    adapter = TimeSeriesAdapter
    folder = data

    def accepted_options(self, task: str, *, builtin: bool = False) -> tuple[str, ...]:
        return (data.FORECAST_OPTIONS if task == "forecast" else data.CLASSIFY_OPTIONS) + data.ADAPTER_OPTIONS
