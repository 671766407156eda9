"""Classification: one class per sample, cross-entropy (label smoothing, mixup/cutmix), accuracy, top-k output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import Task, register_task

__all__ = ["ClassifyTask"]


@register_task
class ClassifyTask(Task):
    name = "classify"
    output_layout = "(batch, classes) logits in class_names order; softmax gives probabilities"
    best_metric = "val_accuracy"
    higher_is_better = True
    mixes_batches = True
    train_sum_names = ("correct",)
    eval_sum_names = ("loss", "correct", "count")

    def num_outputs(self, data) -> int:
        return len(data.class_names)

    def loss(self, output: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        if target.dim() == 2:  # soft targets from mixup/cutmix
            return torch.sum(-target * F.log_softmax(output.float(), dim=-1), dim=-1).mean()
        return F.cross_entropy(output.float(), target, label_smoothing=smoothing)

    def train_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        return [(output.detach().argmax(-1) == target).sum().item()]

    def train_metrics(self, sums: list[float], seen: float) -> dict[str, float]:
        return {"train_accuracy": sums[0] / seen}

    def eval_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        return [F.cross_entropy(output, target, reduction="sum").item(), (output.argmax(-1) == target).sum().item(),
                target.numel()]

    def eval_metrics(self, sums: list[float]) -> dict[str, float]:
        loss_sum, correct, n = sums
        return {"loss": loss_sum / n, "accuracy": correct / n}

    def decode(self, output: torch.Tensor, run_config: dict[str, Any], *, top_k: int = 1) -> dict[str, Any]:
        probs = torch.softmax(output, dim=-1)
        p, idx = probs.topk(min(top_k, probs.numel()))
        names = run_config["class_names"]
        return {"top": [(names[i], float(q)) for q, i in zip(p.tolist(), idx.tolist())]}

    def format_prediction(self, row: dict[str, Any]) -> list[str]:
        return [f"{row['file']}\t" + "  ".join(f"{c} {p:.3f}" for c, p in row["top"])]
