"""Evaluation and prediction: a model over a dataset, and a finished (or running) run directory on data or files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write_text
from ..data.datasets import DataError, skipped_files_warning
from ..modalities import build_data, load_for_predict
from .batches import batch_loader, epoch_batches
from .config import TrainConfig
from .device import choose_precision, loader_settings, model_device, move_batch, resolve_device
from .distributed import DistInfo
from .run_dir import RunDir, RunError, load_run
from .tasks import get_task

__all__ = ["evaluate_model", "evaluate_run", "predict_files", "prediction_lines", "run_train_config",
           "expand_inputs"]


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset, *, batch_size: int, task: str = "classify", info: DistInfo | None = None,
                   num_workers: int | None = 0, amp: bool | None = False,
                   device: torch.device | None = None) -> dict[str, float]:
    """The task's metrics (loss and accuracy, or MSE/MAE, …) over ``dataset``, summed over processes.

    Batches go to ``device`` (default: where the model's parameters are); ``amp=None`` autocasts on CUDA only
    (see :func:`lkconv.engine.device.choose_precision`); ``num_workers=None`` chooses the loader workers.
    """
    info = info or DistInfo()
    device = device or model_device(model)
    settings = loader_settings(device, num_workers)
    scorer = get_task(task)
    was = model.training
    model.eval()
    batches = epoch_batches(len(dataset), batch_size, 0, 0, shuffle=False, drop_last=False)
    mine = batches[info.rank :: info.world_size] if info.enabled else batches
    acc = scorer.eval_accumulator()
    precision = choose_precision(device, amp)
    for x, y in batch_loader(dataset, mine, settings.num_workers, settings):
        x, y = move_batch(x, y, device, non_blocking=settings.non_blocking)
        with precision.autocast():
            out = model(x).float()
        acc.add(out, y)
    model.train(was)
    return acc.result(info)


def run_train_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no config.yaml)")
    values = RunDir(run_dir).recorded_config()  # a damaged file is a RunError naming it
    return TrainConfig.from_dict(values, source=str(path))


def evaluate_run(run_dir: str | Path, data: str | None = None, *, weights: str = "model",
                 batch_size: int | None = None, device: str | torch.device = "auto") -> dict[str, Any]:
    """Evaluates a run's model on its validation split, or on ``data`` (a folder or builtin:NAME) with the run's
    classes and preprocessing, on ``device`` (see :func:`lkconv.engine.device.resolve_device`; fp32 everywhere);
    writes and returns ``metrics.json``."""
    run = RunDir(run_dir)
    target = resolve_device(device)
    model = load_run(run_dir, weights=weights).to(target)
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
    metrics = evaluate_model(model, bundle.val, batch_size=batch_size or cfg.batch_size, task=model.task,
                             device=target)
    metrics = {**metrics, "data": cfg.data, "weights": weights}
    if "baselines" in bundle.notes:  # forecasting: the same errors for naive and seasonal-naive forecasts
        metrics["baselines"] = bundle.notes["baselines"]
    skipped = skipped_files_warning(bundle)  # files that passed the scan but not decoding: replaced, so say so
    if skipped:
        metrics["warning"] = skipped
    atomic_write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files to predict: each file as given, each directory replaced by the files under it (sorted, hidden files and
    folders left out)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise RunError(f"{p} is a directory with no files to predict")
            out.extend(found)
        elif not p.exists():
            raise FileNotFoundError(f"{p} not found")
        else:
            out.append(p)
    return out


@torch.no_grad()
def predict_files(run_dir: str | Path, files: list[str | Path], *, weights: str = "model", top_k: int = 1,
                  errors: list[tuple[str, str]] | None = None, device: str | torch.device = "auto",
                  out_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per file, read with the run's preprocessing and decoded by the run's task.

    Classification runs: ``{"file", "top"}`` with the ``top_k`` (class name, probability) pairs. Forecasting runs:
    ``{"file", "forecast"}``, mapping each series (column) name to its ``horizon`` forecast values in the data's
    units (see :meth:`lkconv.engine.tasks.forecast.ForecastTask.decode`). A directory stands for the files under it.

    Segmentation runs: ``{"file", "mask", "overlay", "classes"}``; the mask and overlay PNGs are written under
    ``out_dir`` (default ``RUN/predictions``).

    A file that cannot be read raises a :class:`DataError` naming it; when ``errors`` is a list, the file's
    ``(name, reason)`` is appended to it instead and the other files are still predicted.
    """
    target = resolve_device(device)
    model = load_run(run_dir, weights=weights).to(target)
    task = get_task(model.task)
    modality = model.run_config["modality"]
    pre = model.run_config.get("preprocessing", {})
    out = []
    where = Path(out_dir) if out_dir is not None else Path(run_dir) / "predictions"
    for f in expand_inputs(files):
        try:
            x = load_for_predict(modality, f, pre)
        except Exception as e:  # noqa: BLE001 - any decoder error: the file is not usable by this run
            reason = str(e) if isinstance(e, DataError) else f"{type(e).__name__}: {e}"
            if errors is None:
                raise DataError(f"cannot read {f}: {reason}") from e
            errors.append((str(f), reason))
            continue
        y = task.predict_output(model, x[None].to(target), model.run_config, f).cpu()
        row = {"file": str(f), **task.decode(y, model.run_config, top_k=top_k)}
        task.write_outputs(row, f, where, model.run_config)
        out.append(row)
    return task.finish_predictions(out, model.run_config, where)


def prediction_lines(run_dir: str | Path, rows: list[dict[str, Any]]) -> list[str]:
    """The ``lkconv predict`` output lines of :func:`predict_files` rows of ``run_dir``."""
    task = get_task(RunDir(run_dir).model_config().get("task", "classify"))
    return [line for row in rows for line in task.format_prediction(row)]
