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


def _opt(default: Any, help: str, accepted: str | None = None) -> Any:
    """A field with its ``--help`` text (``help``, ``accepted`` values); ``default`` may be a factory (``dict``)."""
    meta = {"help": help, "accepted": accepted}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run needs. ``None`` means "auto": the automatic recipe
    (:mod:`lkconv.engine.auto_recipe`) chooses the value from the data; every value given overrides it."""

    data: str = _opt("", "training data: a folder in the modality's documented format, or builtin:NAME")
    out: str = _opt("", "the run directory to write")
    modality: str = _opt("image", "kind of data (the modality registry)", "image, audio, timeseries, pointcloud, video")
    task: str = _opt("classify", "what to learn", "classify, forecast (timeseries), segment and detect (image)")
    model: str | None = _opt(None, "backbone name (`lkconv list-models`); auto: unireplknet_a, with a small "
                             "UniRepLKNet (model_args) for images, audio, point clouds, video and series classification")
    epochs: int | None = _opt(None, "passes over the training set; auto: enough for ~1500 optimizer steps "
                              "(20-300 epochs), then cut to fit --budget", ">= 1")
    batch_size: int | None = _opt(None, "global batch per optimizer step; auto: the largest power of 2 <= n_train/4, "
                                  "8-64 (smaller caps for video, point clouds, audio; up to 128 for 16384+ small samples)", ">= 1")
    lr: float | None = _opt(None, "peak learning rate (AdamW); auto: 1e-3 * sqrt(batch/16) (the small model: "
                            "2e-3 * sqrt(batch/32))", "> 0")
    min_lr: float = _opt(1e-6, "learning rate at the end of the cosine schedule", ">= 0")
    weight_decay: float = _opt(0.05, "AdamW weight decay", ">= 0")
    warmup_epochs: float | None = _opt(None, "linear warm-up; auto: min(2, epochs/20)", ">= 0, < epochs")
    label_smoothing: float = _opt(0.1, "label smoothing of the classification loss", "[0, 1)")
    drop_path_rate: float | None = _opt(None, "stochastic depth; auto: 0 below 1000 training samples, else 0.1 "
                                        "(scaled with epochs/100)", "[0, 1)")
    layer_decay: float | None = _opt(None, "layer-wise learning-rate decay (1: off); auto: 1, or 0.9 when fine-tuning "
                                     "--pretrained weights", "(0, 1]")
    ema_decay: float = _opt(0.0, "EMA of weights for evaluation and the saved model (0: off)", "[0, 1)")
    clip_grad: float | None = _opt(None, "gradient-norm clipping (none: off)", ">= 0")
    accum_steps: int = _opt(1, "micro-batches accumulated per optimizer step", ">= 1")
    mixup: float | None = _opt(None, "mixup alpha; auto: the reference recipe's for images trained >= 100 epochs, "
                               "else off", ">= 0")
    cutmix: float | None = _opt(None, "CutMix alpha; auto: as mixup", ">= 0")
    augment: bool | None = _opt(None, "training augmentation chosen by the automatic recipe for the modality (folders; "
                                "docs/defaults.md); auto/true: on, false: every augmentation off that modality_args "
                                "does not ask for")
    budget: float | None = _opt(None, "minutes the training may take when epochs is auto: after the first steps "
                                "the measured step time cuts the epochs to fit (0: no bound); auto: 10, 15 for "
                                "segment and detect", ">= 0")
    amp: bool | None = _opt(None, "mixed precision; auto: on for CUDA (bf16, else fp16 + grad scaler), off on the CPU; true on the CPU: bf16 autocast")
    grad_checkpointing: bool = _opt(False, "recompute activations in backward (less memory, slower)")
    channels_last: bool = _opt(False, "channels-last memory format")
    compile: bool = _opt(False, "torch.compile the model")
    seed: int = _opt(0, "seed of data order, splits, augmentation and weights")
    deterministic: bool = _opt(True, "deterministic algorithms (warn only)")
    num_workers: int | None = _opt(None, "data-loading worker processes; auto: from the cores per process (lkconv.engine.device)", ">= 0")
    val_split: float = _opt(0.2, "share held out (stratified, seeded) when the data has no val/ or test/ split",
                            "[0, 1)")
    img_size: int | None = _opt(None, "image/video/point-cloud map side; auto: the modality's default (32 for point "
                                "clouds, 64 for video files)", ">= 1")
    lookback: int | None = _opt(None, "forecasting window", ">= 1")
    horizon: int | None = _opt(None, "forecasting horizon", ">= 1")
    max_train_samples: int | None = _opt(None, "a seeded subset of the training set, for quick runs", ">= 1")
    max_val_samples: int | None = _opt(None, "a seeded subset of the validation set", ">= 1")
    eval_every: int | None = _opt(None, "evaluate every N epochs (and after the last); auto: about 20 evaluations, "
                                  "epochs // 20 (at least 1)", ">= 1")
    tensorboard: bool = _opt(False, "write TensorBoard logs under RUN/tensorboard")
    progress: bool | None = _opt(None, "progress bars; auto: only on a terminal")
    on_bad_file: str = _opt("skip", "an unreadable data file: skip it (counted warning) or stop", "skip, error")
    resume: bool = _opt(False, "continue the run in --out from last.pt")
    pretrained: str | None = _opt(None, "fine-tune from published weights: a tag of `lkconv list-models --pretrained` "
                                  "(e.g. unireplknet_a.in1k; fetched from the Hugging Face hub, extra lkconv[hub]); "
                                  "the stem adapts to the modality's channels, the head is new; auto: none (random "
                                  "weights)")
    pretrained_file: str | None = _opt(None, "with pretrained: a local copy of the published file (no download)")
    model_args: dict = _opt(dict, "extra create_model arguments, e.g. '{depths: [1, 1, 2, 1]}'", "a YAML mapping")
    modality_args: dict = _opt(dict, "options of the modality's reader and adapter (see its docs); auto fills "
                               "some from the data (e.g. time-series mapping/norm)", "a YAML mapping")
    device: str = _opt("auto", "where to train: auto (CUDA when available), cpu, cuda or cuda:N", "auto, cpu, cuda, cuda:N")

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
        _at_least("accum_steps", self.accum_steps, 1)
        if self.num_workers is not None:
            _at_least("num_workers", self.num_workers, 0)
        _check_device_name(self.device)
        for key in ("epochs", "batch_size", "eval_every", "img_size", "lookback", "horizon", "max_train_samples", "max_val_samples"):
            if getattr(self, key) is not None:
                _at_least(key, getattr(self, key), 1)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        for key, lo, hi in (("label_smoothing", 0, 1), ("val_split", 0, 1), ("ema_decay", 0, 1),
                            ("drop_path_rate", 0, 1)):
            v = getattr(self, key)
            if v is not None and not lo <= v < hi:
                raise ConfigError(f"{key}: must be in [{lo}, {hi}), got {v}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay: must be in (0, 1], got {self.layer_decay}")
        for key in ("min_lr", "weight_decay", "budget"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("mixup", "cutmix", "warmup_epochs", "clip_grad"):
            v = getattr(self, key)
            if v is not None and v < 0:
                raise ConfigError(f"{key}: must be >= 0, got {v}")
        _check_pretrained(self)
        if self.warmup_epochs is not None and self.epochs is not None and self.warmup_epochs >= self.epochs:
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


def _check_pretrained(cfg: "TrainConfig") -> None:
    """A published tag whose architecture agrees with ``model``; ``pretrained_file`` only with ``pretrained``."""
    if cfg.pretrained_file and not cfg.pretrained:
        raise ConfigError("pretrained_file: given without pretrained; name the tag the file stands in for, e.g. "
                          "--pretrained unireplknet_a.in1k --pretrained-file FILE")
    if not cfg.pretrained:
        return
    from ..models.pretrained import PretrainedWeightsError, list_pretrained, resolve_tag

    try:
        tag = resolve_tag(cfg.pretrained)
    except PretrainedWeightsError as e:
        raise ConfigError(f"pretrained: {e}") from None
    if cfg.model is not None and cfg.model != tag.arch:
        raise ConfigError(f"model: {cfg.model!r} differs from the architecture of pretrained {cfg.pretrained!r} "
                          f"({tag.arch}); leave model out (published tags: {', '.join(list_pretrained())})")


def _check_device_name(device: str) -> None:
    """The name only (``cuda`` on a machine without CUDA is judged when the run starts, so configs travel)."""
    from .device import DEVICE_CHOICES

    d = device.strip().lower()
    if not (d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())):
        raise ConfigError(f"device: {device!r} is not accepted; choose one of {DEVICE_CHOICES}")


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
