"""Evaluation and prediction on a finished (or running) run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data import build_data, load_for_predict
from .._atomic import atomic_write_text
from .config import TrainConfig
from .run_dir import RunDir, RunError, load_run
from .trainer import evaluate_model

__all__ = ["evaluate_run", "predict_files", "run_train_config"]


def run_train_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no config.yaml)")
    values = yaml.safe_load(path.read_text())
    values.pop("resolved", None)
    return TrainConfig.from_dict(values, source=str(path))


def evaluate_run(run_dir: str | Path, data: str | None = None, *, weights: str = "model",
                 batch_size: int | None = None) -> dict[str, Any]:
    """Evaluates a run's model on its validation split, or on ``data`` (a folder or builtin:NAME) with the run's
    classes and preprocessing; writes and returns ``metrics.json``."""
    run = RunDir(run_dir)
    model = load_run(run_dir, weights=weights)
    cfg = run_train_config(run_dir)
    pre = model.run_config.get("preprocessing", {})
    changes: dict[str, Any] = {"resume": False}
    if pre.get("img_size"):
        changes["img_size"] = pre["img_size"]
    if data is not None:
        changes["data"] = data
    cfg = cfg.replace(**changes)
    bundle = build_data(cfg, eval_only=data is not None, class_names=model.class_names)
    if data is not None and bundle.class_names != model.class_names:
        raise RunError(f"{data} has classes {bundle.class_names}, the run was trained on {model.class_names}")
    metrics = evaluate_model(model, bundle.val, batch_size=batch_size or cfg.batch_size, task=model.task)
    metrics = {**metrics, "data": cfg.data, "weights": weights}
    if "baselines" in bundle.notes:  # forecasting: the same errors for naive and seasonal-naive forecasts
        metrics["baselines"] = bundle.notes["baselines"]
    atomic_write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


@torch.no_grad()
def predict_files(run_dir: str | Path, files: list[str | Path], *, weights: str = "model",
                  top_k: int = 1) -> list[dict[str, Any]]:
    """One row per file, read with the run's preprocessing.

    Classification runs: ``{"file", "top"}`` with the ``top_k`` (class name, probability) pairs. Forecasting runs
    (``task == "forecast"``): ``{"file", "forecast"}``, where ``forecast`` maps each series (column) name to its
    ``horizon`` forecast values for the steps after the file's last ``lookback`` rows, in the data's units (the
    adapter's ``postprocess`` undoes the per-window normalisation); no softmax is applied.
    """
    model = load_run(run_dir, weights=weights)
    modality = model.run_config["modality"]
    pre = model.run_config.get("preprocessing", {})
    forecast = getattr(model, "task", "classify") == "forecast"
    out = []
    for f in files:
        x = load_for_predict(modality, f, pre)
        y = model(x[None]).float()[0]
        if forecast:
            horizon = int(pre["horizon"])
            names = list(pre.get("columns") or [f"series{i}" for i in range(y.numel() // horizon)])
            values = y.view(len(names), horizon).tolist()  # series-major: output s·H + h is series s, step h
            out.append({"file": str(f), "forecast": dict(zip(names, values))})
            continue
        probs = torch.softmax(y, dim=-1)
        p, idx = probs.topk(min(top_k, probs.numel()))
        out.append({"file": str(f), "top": [(model.class_names[i], float(q)) for q, i in zip(p.tolist(), idx.tolist())]})
    return out
