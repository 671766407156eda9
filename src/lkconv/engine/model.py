"""The one place where a run's network is assembled: modality adapter + backbone, from a ``config.json`` dict.

Training builds its model through :func:`build_model_for_data` (which writes that dict), and everything after
training (:func:`~lkconv.engine.run_dir.load_run`, evaluation, export, benchmarks) through :func:`build_model`.
"""

from __future__ import annotations

from typing import Any

from ..modalities import ModalityAdapter, PerceptionModel, build_adapter
from .tasks import get_task

__all__ = ["build_model", "build_model_for_data"]


def build_model(model_config: dict[str, Any], *, adapter: ModalityAdapter | None = None,
                drop_path_rate: float | None = None) -> PerceptionModel:
    """The adapter + backbone a run's ``config.json`` describes (random weights).

    Args:
        model_config: ``model``, ``model_args``, ``adapter``, ``adapter_args`` of a run's ``config.json``.
        adapter: an adapter already built from ``adapter_args`` (training builds it first to learn its arguments;
            building it again would draw its initial weights twice).
        drop_path_rate: overrides the saved rate (0, the inference value) for training.
    """
    if adapter is None:
        adapter = build_adapter(model_config["adapter"], **model_config["adapter_args"])
    model_args = dict(model_config["model_args"])
    if drop_path_rate is not None:
        model_args["drop_path_rate"] = drop_path_rate
    task = get_task(model_config.get("task", "classify"))
    return PerceptionModel(adapter, task.build_network(model_config["model"], model_args))


def build_model_for_data(cfg, data, recipe: dict) -> tuple[PerceptionModel, dict[str, Any]]:
    """The adapter + backbone for this data, and the ``config.json`` content that rebuilds it."""
    adapter = build_adapter(data.adapter, **data.adapter_args)
    model_args = {"num_classes": get_task(data.task).num_outputs(data), "in_chans": adapter.out_chans,
                  "drop_path_rate": recipe["drop_path_rate"], **cfg.model_args}
    model_config = {
        "model": cfg.model, "model_args": {**model_args, "drop_path_rate": 0.0}, "adapter": data.adapter,
        "adapter_args": adapter.config(), "task": data.task, "class_names": list(data.class_names),
        "modality": cfg.modality, "raw_shape": list(data.raw_shape), "preprocessing": data.preprocessing,
    }
    return build_model(model_config, adapter=adapter, drop_path_rate=model_args["drop_path_rate"]), model_config
