"""The task interface and registry: what a run predicts, how it learns it, how it is scored and how it is written.

A task owns the backbone's output size, the training loss, the train/validation metrics (as sums that add up over
batches and processes), which validation metric picks ``best.safetensors``, and how ``predict`` decodes one output
and prints it. The engine asks the task and never branches on its name, so a new task (segment, detect, …) is one
new module with a registered subclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["Task", "SumAccumulator", "register_task", "get_task", "task_names"]

_REGISTRY: dict[str, "Task"] = {}


class Task:
    """Base of every task. Subclasses set ``name``, ``best_metric`` and ``higher_is_better`` and implement the
    methods below."""

    name: str = ""
    best_metric: str = ""  # the validation row key (``val_...``) that decides the best epoch
    higher_is_better: bool = True
    mixes_batches: bool = False  # whether mixup/cutmix apply (they need class targets)
    train_sum_names: tuple[str, ...] = ()  # what :meth:`train_sums` returns, in order
    eval_sum_names: tuple[str, ...] = ()  # what :meth:`eval_sums` returns, in order; the last is the count
    # (a task may return more, e.g. one sum per class: evaluation adds up whatever list the batches return)

    def num_outputs(self, data) -> int:
        """The backbone's output size (``num_classes`` of ``create_model``) for a :class:`DataBundle`."""
        raise NotImplementedError

    def build_network(self, model_name: str, model_args: dict[str, Any]) -> torch.nn.Module:
        """The network after the adapter: by default the registered model itself (a dense task wraps it in a head)."""
        from ...models import create_model

        return create_model(model_name, **model_args)

    #: What the network's output holds (shape and meaning), for the ONNX file's ``output_layout`` metadata.
    output_layout: str = ""

    def predict_output(self, model: torch.nn.Module, x: torch.Tensor, run_config: dict[str, Any],
                       source: Path) -> torch.Tensor:
        """The output for one file (``x``: its raw sample as a batch of one) that :meth:`decode` reads."""
        return model(x).float()[0]

    def write_outputs(self, row: dict[str, Any], source: Path, out_dir: Path, run_config: dict[str, Any]) -> None:
        """Writes per-file prediction files (masks, drawings) under ``out_dir`` and names them in ``row``; most
        tasks only print."""

    def loss(self, output: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The training loss of one batch (``target`` may be soft class targets when ``mixes_batches``)."""
        raise NotImplementedError

    def train_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        """Per-batch sums for the training metrics (added over the epoch and over processes)."""
        return []

    def train_metrics(self, sums: list[float], seen: float) -> dict[str, float]:
        """The epoch's training metrics (row keys ``train_...``) from the summed :meth:`train_sums`."""
        return {}

    def eval_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        """Per-batch sums for evaluation; the last entry is the number of values they are averaged over."""
        raise NotImplementedError

    def eval_metrics(self, sums: list[float]) -> dict[str, float]:
        """Evaluation metrics (``loss`` among them) from the summed :meth:`eval_sums`."""
        raise NotImplementedError

    def eval_accumulator(self) -> "SumAccumulator":
        """What evaluation feeds batch by batch (``add(output, target)``) and asks for the metrics
        (``result(info)``); by default the sums of :meth:`eval_sums`. Tasks whose metrics do not add up over batches
        (COCO mAP) return their own."""
        return SumAccumulator(self)

    def finish_predictions(self, rows: list[dict[str, Any]], run_config: dict[str, Any],
                           out_dir: Any) -> list[dict[str, Any]]:
        """After ``predict``'s rows are decoded: tasks that write files (drawn boxes, masks) write them under
        ``out_dir`` and may map the rows back to the input files' coordinates. Default: the rows unchanged."""
        return rows

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` of :attr:`best_metric` beats the best so far (None: nothing yet)."""
        return best is None or (value > best if self.higher_is_better else value < best)

    def decode(self, output: torch.Tensor, run_config: dict[str, Any], *, top_k: int = 1) -> dict[str, Any]:
        """One sample's model output as a prediction row (without the ``file`` key)."""
        raise NotImplementedError

    def format_prediction(self, row: dict[str, Any]) -> list[str]:
        """The ``lkconv predict`` output lines of one prediction row."""
        raise NotImplementedError


class SumAccumulator:
    """Evaluation sums of a task's :meth:`Task.eval_sums`, added over batches and then over processes."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.sums: list[float] | None = None  # as long as the task's per-batch list (which may depend on the classes)

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        batch = self.task.eval_sums(output, target)
        self.sums = batch if self.sums is None else [s + b for s, b in zip(self.sums, batch)]

    def result(self, info) -> dict[str, float]:
        from ..distributed import all_reduce_sum

        sums = all_reduce_sum(self.sums if self.sums is not None else [0.0] * len(self.task.eval_sum_names), info)
        if sums[-1] == 0:
            return {"num_samples": 0}
        return {**self.task.eval_metrics(sums), "num_samples": int(sums[-1])}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: registers one instance of ``cls`` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    _REGISTRY[cls.name] = cls()
    return cls


def task_names() -> list[str]:
    return list(_REGISTRY)


def get_task(name: str) -> Task:
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; accepted: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
