"""The run's recipe: :func:`resolve_run` (the automatic recipe of :mod:`lkconv.engine.auto_recipe` applied to the
data), then :func:`resolve_recipe` for the values that follow from the others.

Recipe defaults from the reference (ImageNet-1K, 300 epochs, batch 4096), scaled for small data.

Scaling rules (ours): the learning rate follows the square-root rule for Adam from 4e-3 at batch 4096; drop path
is the reference rate times min(1, epochs / 100); mixup/CutMix only for images trained ≥ 100 epochs (they slow
short runs down more than they regularise); warm-up is min(5, epochs / 10) epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REFERENCE_RECIPE", "resolve_recipe", "resolve_run", "ResolvedRun"]

# model size -> (drop_path_rate, mixup, cutmix) of the reference ImageNet-1K recipe
REFERENCE_RECIPE: dict[str, tuple[float, float, float]] = {
    "a": (0.0, 0.3, 0.3), "f": (0.0, 0.3, 0.3), "p": (0.1, 0.3, 0.3), "n": (0.1, 0.5, 0.5),
    "t": (0.2, 0.8, 1.0), "s": (0.4, 0.8, 1.0), "b": (0.4, 0.8, 1.0), "l": (0.4, 0.8, 1.0), "xl": (0.4, 0.8, 1.0),
}


def _size_of(model_name: str | None) -> str | None:
    if not model_name:
        return None
    suffix = model_name.rsplit("_", 1)[-1]
    return suffix if suffix in REFERENCE_RECIPE else None


def resolve_recipe(cfg) -> dict[str, float]:
    """Concrete lr, drop_path_rate, mixup, cutmix and warmup_epochs for a config whose values may be None."""
    size = _size_of(cfg.model)
    dp_ref, mix_ref, cut_ref = REFERENCE_RECIPE.get(size, (0.1, 0.0, 0.0))
    long_image_run = cfg.modality == "image" and cfg.epochs >= 100
    return {
        "lr": cfg.lr if cfg.lr is not None else 4e-3 * math.sqrt(cfg.batch_size * cfg.accum_steps / 4096),
        "drop_path_rate": cfg.drop_path_rate if cfg.drop_path_rate is not None
        else round(dp_ref * min(1.0, cfg.epochs / 100), 4),
        "mixup": cfg.mixup if cfg.mixup is not None else (mix_ref if long_image_run else 0.0),
        "cutmix": cfg.cutmix if cfg.cutmix is not None else (cut_ref if long_image_run else 0.0),
        "warmup_epochs": cfg.warmup_epochs if cfg.warmup_epochs is not None else min(5.0, cfg.epochs / 10),
    }


@dataclass
class ResolvedRun:
    """A config with every "auto" value chosen, the data it was chosen for, and what was chosen and why."""

    cfg: Any  # TrainConfig with concrete values
    data: Any  # DataBundle
    recipe: dict[str, float]  # resolve_recipe(cfg)
    auto: dict[str, Any]  # the values the automatic recipe chose (not given by the user)
    reasons: list[str]
    facts: Any  # auto_recipe.DataFacts
    augmentation: dict[str, Any] = field(default_factory=dict)  # the augmentation keys in effect, and what they did

    def record(self) -> dict[str, Any]:
        """What ``config.yaml`` keeps under ``resolved``."""
        f = self.facts
        return {**self.recipe, "auto": self.auto, "reasons": list(self.reasons), "augmentation": self.augmentation,
                "data": {"n_train": f.n_train, "n_val": f.n_val, "class_counts": list(f.class_counts),
                         "raw_shape": list(f.raw_shape)}}


def resolve_run(cfg) -> ResolvedRun:
    """Reads the data and resolves every "auto" value (:mod:`lkconv.engine.auto_recipe`); given values win."""
    from ..modalities import build_data
    from .auto_recipe import augmentation_record, channel_stats, choose_recipe, data_facts, modality_defaults

    pre, reasons = modality_defaults(cfg)
    auto: dict[str, Any] = dict(pre)
    if pre:
        cfg = cfg.replace(**pre)
    data = build_data(cfg)
    facts = data_facts(cfg, data)
    chosen, why = choose_recipe(cfg, facts)
    reasons += why
    adapter_changes = chosen.pop("adapter_args", {})
    if adapter_changes:
        data.adapter_args = {**data.adapter_args, **adapter_changes}
        auto["adapter_args"] = dict(adapter_changes)
    if data.adapter == "timeseries" and data.adapter_args.get("norm") == "dataset" \
            and data.adapter_args.get("channel_mean") is None:
        mean, std = channel_stats(data.train, int(data.raw_shape[0]))
        data.adapter_args = {**data.adapter_args, "channel_mean": mean, "channel_std": std}
    auto.update(chosen)
    if chosen:
        cfg = cfg.replace(**chosen)
    return ResolvedRun(cfg=cfg, data=data, recipe=resolve_recipe(cfg), auto=auto, reasons=reasons, facts=facts,
                       augmentation=augmentation_record(cfg, data))
