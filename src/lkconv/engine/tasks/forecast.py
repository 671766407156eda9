"""Forecasting: the next ``horizon`` steps of every series, mean squared error, MAE, values in the data's units."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import Task, register_task

__all__ = ["ForecastTask"]


@register_task
class ForecastTask(Task):
    name = "forecast"
    output_layout = ("(batch, series * horizon) forecast values in the data's units, series-major (output s*H + h is "
                     "series s, step h), for the steps after the input window")
    best_metric = "val_mae"
    higher_is_better = False
    eval_sum_names = ("squared_error", "absolute_error", "count")

    def num_outputs(self, data) -> int:
        return int(data.notes.get("num_outputs", 1))

    def loss(self, output: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        return F.mse_loss(output.float(), target.float())

    def eval_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        err = output - target.float()
        return [err.square().sum().item(), err.abs().sum().item(), err.numel()]

    def eval_metrics(self, sums: list[float]) -> dict[str, float]:
        sq, ab, n = sums
        return {"mse": sq / n, "mae": ab / n, "loss": sq / n}

    def decode(self, output: torch.Tensor, run_config: dict[str, Any], *, top_k: int = 1) -> dict[str, Any]:
        """``{"forecast": {series: [horizon values]}}`` for the steps after the file's last ``lookback`` rows; the
        adapter's ``postprocess`` has already undone the per-window normalisation, and no softmax is applied."""
        pre = run_config.get("preprocessing", {})
        horizon = int(pre["horizon"])
        names = list(pre.get("columns") or [f"series{i}" for i in range(output.numel() // horizon)])
        values = output.view(len(names), horizon).tolist()  # series-major: output s·H + h is series s, step h
        return {"forecast": dict(zip(names, values))}

    def format_prediction(self, row: dict[str, Any]) -> list[str]:
        return [f"{row['file']}\t{name}\t" + " ".join(f"{v:.6g}" for v in values)
                for name, values in row["forecast"].items()]
