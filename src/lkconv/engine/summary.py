"""The lines a training run prints before its first step (data summary and the resolved recipe) and after its last
(the network beside the majority-class and 1-NN baselines)."""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["summary_lines", "baseline_lines"]

_RECIPE_KEYS = ("model", "batch_size", "epochs", "lr", "warmup_epochs", "weight_decay", "drop_path_rate",
                "label_smoothing", "ema_decay", "mixup", "cutmix", "eval_every", "img_size", "budget")


def summary_lines(resolved, model: torch.nn.Module | None = None) -> list[str]:
    """Samples and classes per split, class balance, the input the adapter sees, threads and the recipe."""
    cfg, data, f = resolved.cfg, resolved.data, resolved.facts
    lines = [f"data: {cfg.data} ({cfg.modality}, task {data.task})",
             f"  train {f.n_train} samples, val {f.n_val} samples" + (f", {f.n_classes} classes" if f.n_classes else "")]
    if f.class_counts:
        lo, hi = min(f.class_counts), max(f.class_counts)
        lines.append(f"  class balance (train): {lo}-{hi} per class (largest/smallest {f.imbalance:.2f})")
    lines.append(f"  raw sample shape {list(f.raw_shape)}; adapter {data.adapter} "
                 + ", ".join(f"{k}={_short(v)}" for k, v in data.adapter_args.items()))
    for key, note in data.notes.items():
        if isinstance(note, (str, int, float)):
            lines.append(f"  {key}: {note}")
    lines.append(f"  threads: {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    auto = resolved.auto
    parts = []
    for key in _RECIPE_KEYS:
        value = resolved.recipe.get(key, getattr(cfg, key, None))
        parts.append(f"{key}={_short(value)}{'*' if key in auto else ''}")
    if cfg.model_args:
        parts.append(f"model_args={_short(cfg.model_args)}{'*' if 'model_args' in auto else ''}")
    if model is not None:
        parts.append(f"params={sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")
    lines.append("recipe (* = chosen by the automatic recipe): " + ", ".join(parts))
    lines += [f"  - {r}" for r in resolved.reasons]
    return lines


def baseline_lines(history: list[dict[str, Any]], baselines: dict[str, float], seconds: float) -> list[str]:
    accs = [r["val_accuracy"] for r in history if "val_accuracy" in r]
    if not accs:
        return []
    line = f"result: val accuracy {accs[-1]:.2%} (best {max(accs):.2%})"
    if "majority_accuracy" in baselines:
        line += f"; majority class {baselines['majority_accuracy']:.2%}"
    if "nn1_accuracy" in baselines:
        line += f"; 1-NN on the raw input {baselines['nn1_accuracy']:.2%}"
    return [line + f" (baselines on the same split, {seconds:.1f} s)"]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 6:
        return f"[{len(value)} values]"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
