"""The training configuration: one dataclass, every field also a YAML key and a CLI option.

Validation happens before any work starts: unknown keys (with close matches), wrong types and impossible
values raise :class:`ConfigError` naming the key and what is accepted.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "ConfigError", "load_config", "read_config_file"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, or impossible."""


@dataclass
class TrainConfig:
    """Everything a training run needs. ``None`` means "the recipe default for this model and data"."""

    data: str = ""  # PATH or builtin:NAME
    out: str = ""  # run directory
    modality: str = "image"
    task: str = "classify"
    model: str = "unireplknet_a"
    epochs: int = 10
    batch_size: int = 64  # global batch per optimizer step (summed over processes)
    lr: float | None = None  # None: 4e-3 at batch 4096 (reference), square-root scaled to batch_size
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: float | None = None  # None: min(5, epochs / 10)
    label_smoothing: float = 0.1
    drop_path_rate: float | None = None  # None: the reference recipe for the model size
    layer_decay: float = 1.0
    ema_decay: float = 0.0  # 0 disables the EMA of weights
    clip_grad: float | None = None
    accum_steps: int = 1
    mixup: float | None = None  # None: the recipe value for images when epochs >= 100, else off
    cutmix: float | None = None
    amp: bool = False  # bf16 autocast
    grad_checkpointing: bool = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    deterministic: bool = True
    num_workers: int = 0
    val_split: float = 0.2  # held out (stratified, seeded) when the data has no val/ or test/ split
    img_size: int | None = None  # image/video side; None: the modality default
    lookback: int | None = None  # forecasting window
    horizon: int | None = None  # forecasting horizon
    max_train_samples: int | None = None  # a seeded subset, for quick runs
    max_val_samples: int | None = None
    eval_every: int = 1
    tensorboard: bool = False
    progress: bool | None = None  # None: progress bars only on a terminal
    on_bad_file: str = "skip"  # "skip" (counted warning) or "error" (stop naming the file)
    resume: bool = False
    model_args: dict = field(default_factory=dict)  # extra create_model arguments
    modality_args: dict = field(default_factory=dict)  # adapter and reader options of the modality

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        check_keys(values, source)
        cfg = cls(**{k: _coerce(k, v, source) for k, v in values.items()})
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validate(self) -> None:
        """Checks values that types alone cannot (ranges, choices, combinations)."""
        if not self.data:
            raise ConfigError("data: required (a PATH or builtin:NAME; `lkconv data list` shows the built-in sets)")
        if not self.out:
            raise ConfigError("out: required (the run directory to write)")
        _check_modality_and_task(self.modality, self.task)
        _choice("on_bad_file", self.on_bad_file, ("skip", "error"))
        for key in ("epochs", "batch_size", "accum_steps", "eval_every"):
            _at_least(key, getattr(self, key), 1)
        _at_least("num_workers", self.num_workers, 0)
        for key in ("img_size", "lookback", "horizon", "max_train_samples", "max_val_samples"):
            if getattr(self, key) is not None:
                _at_least(key, getattr(self, key), 1)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        for key, lo, hi in (("label_smoothing", 0, 1), ("val_split", 0, 1), ("ema_decay", 0, 1),
                            ("drop_path_rate", 0, 1)):
            v = getattr(self, key)
            if v is not None and not lo <= v < hi:
                raise ConfigError(f"{key}: must be in [{lo}, {hi}), got {v}")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay: must be in (0, 1], got {self.layer_decay}")
        for key in ("min_lr", "weight_decay"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("mixup", "cutmix", "warmup_epochs", "clip_grad"):
            v = getattr(self, key)
            if v is not None and v < 0:
                raise ConfigError(f"{key}: must be >= 0, got {v}")
        if self.warmup_epochs is not None and self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs: must be below epochs ({self.epochs}), got {self.warmup_epochs}")


def _check_modality_and_task(modality: str, task: str) -> None:
    """Both come from their registries; the modality must serve the task."""
    from ..modalities import get_modality, modality_names
    from .tasks import task_names

    _choice("modality", modality, tuple(modality_names()))
    _choice("task", task, tuple(task_names()))
    if task not in get_modality(modality).tasks:
        serving = [m for m in modality_names() if task in get_modality(m).tasks]
        raise ConfigError(f"task: {task!r} needs modality {' or '.join(map(repr, serving))}, got modality {modality!r}")


def _choice(key: str, value: Any, accepted: tuple) -> None:
    if value not in accepted:
        raise ConfigError(f"{key}: {value!r} is not accepted; choose one of {', '.join(accepted)}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def check_keys(values: dict[str, Any], source: str) -> None:
    names = field_names()
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {key!r}{hint}; accepted keys: {', '.join(names)}")


def _coerce(key: str, value: Any, source: str) -> Any:
    hint = typing.get_type_hints(TrainConfig)[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: {key} may not be empty (expected {base.__name__})")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _number(value)
        if number is not None and float(number).is_integer():  # 1e3, "1e3", 100.0
            return int(number)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _number(value)
        if number is not None:
            return number
    elif base is str:
        if isinstance(value, (str, Path)):
            return str(value)
    elif base is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(f"{source}: {key} expects {base.__name__}, got {type(value).__name__} {value!r}")


def _number(value: Any) -> float | None:
    """A number written as text: PyYAML (YAML 1.1) reads ``1e-3`` and ``1e3`` (no dot) as strings; ``float`` reads
    them. None for anything else: quoted plain numbers such as ``"3"``, booleans, words, NaN and infinities."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if not isinstance(value, str) or "e" not in value.lower():  # only what YAML 1.1 misreads; "3" stays a string
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Reads a YAML file (if given), applies ``overrides`` (e.g. the CLI's explicit options) and validates."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        values.update(read_config_file(path))
        source = str(path)
    if overrides:
        check_keys(overrides, "command line")
        values.update(overrides)
    return TrainConfig.from_dict(values, source=source)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The keys of a YAML config file, checked against the fields (values are checked when a config is built).

    A run's ``config.yaml`` is accepted as it is: its ``resolved`` mapping (the recipe values the run resolved) is
    recorded for reading only and dropped here."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(loaded).__name__}")
    loaded.pop("resolved", None)
    check_keys(loaded, str(path))
    return loaded
