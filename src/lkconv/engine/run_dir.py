"""The run directory: the one hand-off between training and everything after it.

Layout::

    config.yaml        resolved training configuration
    config.json        model name + arguments, adapter, class names, preprocessing: rebuilds the model alone
    model.safetensors  final weights (the EMA weights when the EMA is on)
    best.safetensors   weights of the best validation epoch
    last.pt            training state: model, optimizer, EMA, RNG states, epoch/step, history (weights_only)
    metrics.csv        one row per epoch
    metrics.json       written by `lkconv eval`
    curves.png         loss/metric curves (when matplotlib is installed)

Every file is written atomically, so a run killed at any moment can be resumed.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_save_safetensors, atomic_torch_save, atomic_write_text

__all__ = ["RunDir", "RunError", "load_run", "rng_state", "set_rng_state", "resume_config", "RESUMABLE_OPTIONS"]

# Options a resumed run may change: how long it trains and how it reports, not what it computes per step. ``data``
# may point to the same folder moved elsewhere (the class names are checked against the run's); ``device`` where the
# run computes.
RESUMABLE_OPTIONS = ("epochs", "eval_every", "progress", "tensorboard", "num_workers", "data", "device", "out",
                     "resume")

FORMAT_VERSION = 1


class RunError(RuntimeError):
    """The run directory is missing, incomplete, or does not fit the requested operation."""


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate(state["python"])


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def has_training_state(self) -> bool:
        return (self.path / "last.pt").is_file()

    # --- writing ------------------------------------------------------------------------------------
    def write_config(self, resolved: dict[str, Any], model_config: dict[str, Any]) -> None:
        import yaml

        self.path.mkdir(parents=True, exist_ok=True)
        recorded = {k: v for k, v in resolved.items() if k != "resume"}  # a valid --config for a new run as it is
        for key in ("data", "out"):  # absolute: the run is usable from any working directory
            if isinstance(recorded.get(key), str) and recorded[key] and not recorded[key].startswith("builtin:"):
                recorded[key] = str(Path(recorded[key]).resolve())
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(recorded, sort_keys=False))
        atomic_write_text(self.path / "config.json", json.dumps({"format_version": FORMAT_VERSION, **model_config},
                                                                indent=2) + "\n")

    def save_weights(self, state_dict: dict[str, torch.Tensor], name: str = "model.safetensors") -> None:
        atomic_save_safetensors(state_dict, self.path / name, metadata={"format": "pt"})

    def save_training_state(self, state: dict[str, Any]) -> None:
        atomic_torch_save(state, self.path / "last.pt")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        if not history:
            return
        keys = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())

    def plot_curves(self, history: list[dict[str, Any]]) -> bool:
        """Writes curves.png; False (and no file) when matplotlib is not installed."""
        from ..analysis.plots import training_curves_png

        png = training_curves_png(history)
        if png is None:
            return False
        from .._atomic import atomic_write_bytes

        atomic_write_bytes(self.path / "curves.png", png)
        return True

    # --- reading ------------------------------------------------------------------------------------
    def load_training_state(self) -> dict[str, Any]:
        path = self.path / "last.pt"
        if not path.is_file():
            raise RunError(f"nothing to resume: {path} does not exist")
        from ..models._checkpoint import read_torch_file

        return read_torch_file(path, hint="the run cannot be resumed from it; its model.safetensors and "
                               "best.safetensors may still be intact for eval/predict/export")

    def recorded_config(self) -> dict[str, Any] | None:
        """The training options recorded in ``config.yaml`` (without the informational ``resolved`` recipe), or None
        when the run has none."""
        import yaml

        path = self.path / "config.yaml"
        if not path.is_file():
            return None
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            detail = " ".join(str(e).split())
            raise RunError(f"{path} is not valid YAML ({detail}); it records the run's options: restore it, or start a "
                           "new run with another --out") from None
        if not isinstance(values, dict):
            raise RunError(f"{path} is not a mapping of training options")
        values.pop("resolved", None)
        values.pop("resume", None)
        return values

    def completed_epochs(self) -> int:
        """Epochs saved in ``last.pt`` (0 when there is none): what a resume starts after."""
        if not self.has_training_state():
            return 0
        return int(self.load_training_state()["epoch"]) + 1

    def model_config(self) -> dict[str, Any]:
        path = self.path / "config.json"
        if not path.is_file():
            raise RunError(f"{self.path} is not a run directory (no config.json)")
        try:
            cfg = json.loads(path.read_text())
        except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
            raise RunError(f"{path} is not valid JSON ({e}); it rebuilds the run's model: restore it (lkconv train "
                           f"--out {self.path} --resume rewrites it from the recorded configuration)") from None
        if not isinstance(cfg, dict):
            raise RunError(f"{path} is not a mapping; it rebuilds the run's model: restore it (lkconv train --out "
                           f"{self.path} --resume rewrites it from the recorded configuration)")
        if cfg.get("format_version", 0) > FORMAT_VERSION:
            raise RunError(f"{path} was written by a newer lkconv (format {cfg['format_version']})")
        return cfg


def load_run(run_dir: str | Path, *, weights: str = "model") -> nn.Module:
    """The trained model of a run directory, in eval mode, from ``config.json`` + weights alone.

    Args:
        run_dir: The run directory.
        weights: ``"model"`` (final weights), ``"best"`` (best validation epoch) or a file name in the run:
            ``.safetensors``, or ``last.pt`` (its EMA weights when the EMA is on, else its model weights).

    Returns:
        A :class:`~lkconv.modalities.PerceptionModel` with ``class_names``, ``task`` and ``run_config``
        attributes.
    """
    from ..models._checkpoint import read_safetensors_file, read_torch_file

    run = RunDir(run_dir)
    cfg = run.model_config()
    from .model import build_model

    model = build_model(cfg)
    name = {"model": "model.safetensors", "best": "best.safetensors"}.get(weights, weights)
    path = run.path / name
    if not path.is_file():
        raise RunError(f"{path} not found (the run may not have finished an epoch yet)")
    others = [f"--weights {w} ({f})" for w, f in (("model", "model.safetensors"), ("best", "best.safetensors"))
              if f != name and (run.path / f).is_file()]
    others += ["--weights last.pt"] if name != "last.pt" and run.has_training_state() else []
    hint = f"{' or '.join(others)} may still be intact" if others else ""
    if path.suffix in (".pt", ".pth"):  # a training state such as last.pt: the weights model.safetensors holds
        state = read_torch_file(path, hint=hint)
        model.load_state_dict((state.get("ema") or state["model"]) if "model" in state else state)
    else:
        model.load_state_dict(read_safetensors_file(path, hint=hint))
    model.eval()
    model.class_names = cfg["class_names"]
    model.task = cfg.get("task", "classify")
    model.run_config = cfg
    return model


def resume_config(out: str | Path, given: dict[str, Any], *, source: str = "the command line"):
    """The configuration to resume the run in ``out``: its recorded ``config.yaml`` with ``given`` applied.

    Only :data:`RESUMABLE_OPTIONS` may differ from what the run recorded; any other option given with another value
    is refused by name (a run trained with one input size, learning rate, ... cannot continue with another).

    Raises:
        RunError: ``out`` has no recorded configuration, or ``given`` changes an option that must stay.
    """
    from .config import TrainConfig, check_keys

    run = RunDir(out)
    recorded = run.recorded_config()
    if recorded is None:
        raise RunError(f"nothing to resume: {run.path / 'config.yaml'} does not exist")
    check_keys(given, source)
    base = TrainConfig.from_dict({**recorded, "resume": True}, source=str(run.path / "config.yaml"))
    merged = TrainConfig.from_dict({**base.to_dict(), **given, "resume": True}, source=source)
    changed = [k for k in given if k not in RESUMABLE_OPTIONS and getattr(merged, k) != getattr(base, k)]
    if changed:
        lines = [f"{k}: the run has {getattr(base, k)!r}, {source} gives {getattr(merged, k)!r}" for k in changed]
        raise RunError(f"cannot resume {run.path} with other options:\n  " + "\n  ".join(lines) +
                       f"\nonly {', '.join(o for o in RESUMABLE_OPTIONS if o not in ('out', 'resume'))} may change on "
                       "resume; leave the others out (the run's own values are used) or start a new run with another "
                       "--out")
    return merged.replace(out=str(out))
