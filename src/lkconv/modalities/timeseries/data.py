"""Time-series data: classification from ``.ts``/``.npz`` files, forecasting from tables, and the built-in sets.

Classification (``task: classify``), ``data`` is one of

* a folder with ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (the UEA/UCR format as sktime writes it) or the same
  with ``.npz`` (``X`` (n, channels, length) NaN-padded, ``y`` labels): TRAIN trains, TEST validates;
* one ``.ts``/``.npz`` file (a sibling ``*_TEST`` file is used for a ``*_TRAIN`` file; otherwise ``val_split`` of
  the cases is held out, stratified and seeded).

Every case is brought to one length L (``modality_args.length``, default the longest case): ``unequal: resample``
(default) stretches each case's observed span linearly to L; ``unequal: pad`` keeps the values and pads the end
with NaN (crops cases longer than L). Missing values stay NaN in the raw tensor; the adapter fills them and, with
``mask_channel`` (on by default when any NaN remains), passes the mask. Train augmentation ``aug`` (``none``,
``slice``, ``warp``, ``slice+warp`` or ``auto``; :mod:`lkconv.modalities.timeseries.augment`): ``slice`` takes a random window
of 80–100 % of the series and stretches it back to L, ``warp`` speeds up or slows down a random 10 % window;
``auto`` (the automatic recipe's default) keeps each unless a nearest-neighbour check on the training series finds
that it erases the class (the check's numbers go to the data summary as ``aug_check``).

Forecasting (``task: forecast``), ``data`` is a delimited table with one column per series (optional date index
column) or ``builtin:airline``. Samples are windows of ``lookback`` steps followed by ``horizon`` targets. The last
``val_steps`` steps (default ``max(horizon, round(val_split · T))``) are held out: training windows have every
target before them, validation windows every target inside them (their inputs may reach back into the training
period, which is observed history, not leakage). Windows whose targets have a missing value are dropped.
``notes["baselines"]`` holds the naive (last value) and seasonal-naive (value one ``season`` earlier) errors on the
same validation windows; ``season`` comes from ``modality_args.season``, else 12 for a monthly date index, 4 for a
quarterly one, else 1.

Adapter options in ``modality_args`` are passed through: ``mapping``, ``map_size``, ``embed_dim``, ``fold_cols``,
``fold_rows``, ``norm``, ``mask_channel``, ``noise``, ``scale``, ``downsample`` (see :mod:`lkconv.modalities.timeseries`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.datasets import (DataBundle, DataError, SampleDataset, check_option_keys, limit_splits, stratified_split,
                             unreadable_file)
from ...data.readers.tabular import SeriesTable, read_csv_series
from ...data.readers.ts import TimeSeriesData, read_series
from .adapter import TimeSeriesAdapter
from .augment import augment_series, check_series_aug, parse_series_aug

__all__ = ["build_data", "load_for_predict", "fix_length", "forecast_windows", "forecast_baselines",
           "classification_bundle", "forecast_bundle", "infer_season"]

ADAPTER_OPTIONS = ("mapping", "map_size", "embed_dim", "fold_cols", "fold_rows", "norm", "mask_channel", "noise",
                 "scale", "downsample")
CLASSIFY_OPTIONS = ("length", "unequal", "aug")
FORECAST_OPTIONS = ("columns", "season", "val_steps")
_SERIES_SUFFIXES = (".ts", ".npz")


def _check_args(modality_args: dict[str, Any], task: str) -> dict[str, Any]:
    own = CLASSIFY_OPTIONS if task == "classify" else FORECAST_OPTIONS
    check_option_keys(modality_args, own + ADAPTER_OPTIONS, "time-series", task=task)
    return {k: modality_args[k] for k in ADAPTER_OPTIONS if k in modality_args}


def _validated_adapter_args(args: dict[str, Any]) -> dict[str, Any]:
    try:
        adapter = TimeSeriesAdapter(**args)
    except (TypeError, ValueError) as e:
        raise DataError(f"modality_args: {e}") from e
    return adapter.config()


# --- lengths -------------------------------------------------------------------------------------------------------

def fix_length(x: np.ndarray, length: int, target: int, mode: str) -> np.ndarray:
    """One case (C, ≥length) with ``length`` observed steps → (C, target): ``resample`` (linear) or ``pad`` (NaN)."""
    x = x[:, :length]
    if mode == "pad":
        out = np.full((x.shape[0], target), np.nan, dtype=np.float32)
        out[:, : min(length, target)] = x[:, :target]
        return out
    if length == target:
        return x.astype(np.float32, copy=True)
    if length <= 1:
        return np.repeat(x[:, :1], target, axis=1).astype(np.float32) if length else np.full(
            (x.shape[0], target), np.nan, np.float32)
    pos = np.linspace(0, length - 1, target)
    return np.stack([np.interp(pos, np.arange(length), row) for row in x]).astype(np.float32)


def _fix_all(data: TimeSeriesData, target: int, mode: str) -> np.ndarray:
    return np.stack([fix_length(data.X[i], int(data.lengths[i]), target, mode) for i in range(len(data.X))]) \
        if len(data.X) else np.zeros((0, data.X.shape[1], target), np.float32)


# --- classification ------------------------------------------------------------------------------------------------

def _read(path: Path) -> TimeSeriesData:
    try:
        return read_series(path)
    except ValueError as e:
        raise DataError(str(e)) from e


def _find_pair(path: Path) -> tuple[Path, Path | None]:
    """The training file and the test file (or None) for a folder or a file."""
    if path.is_file():
        if path.suffix.lower() not in _SERIES_SUFFIXES:
            raise DataError(f"{path}: unsupported series file; accepted: .ts, .npz (or a .csv table with --task "
                            "forecast)")
        m = re.match(r"(.*)_TRAIN$", path.stem, re.IGNORECASE)
        if m:
            for suffix in (path.suffix, *_SERIES_SUFFIXES):
                for name in (f"{m.group(1)}_TEST{suffix}", f"{m.group(1)}_test{suffix}"):
                    if (path.parent / name).is_file():
                        return path, path.parent / name
        return path, None
    trains = sorted(p for p in path.iterdir() if p.suffix.lower() in _SERIES_SUFFIXES
                    and re.search(r"_TRAIN$", p.stem, re.IGNORECASE))
    if len(trains) != 1:
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _SERIES_SUFFIXES)
        raise DataError(f"{path}: expected exactly one <Name>_TRAIN.ts (or .npz) with its <Name>_TEST file; found "
                        f"{found or 'no .ts/.npz files'}")
    return _find_pair(trains[0])


def _label_indices(data: TimeSeriesData, class_names: list[str], source: Path) -> list[int]:
    if data.labels is None:
        raise DataError(f"{source}: has no class labels (@classLabel true in a .ts, or 'y' in a .npz, is needed)")
    unknown = sorted(set(data.labels.tolist()) - set(class_names))
    if unknown:
        raise DataError(f"{source}: labels {unknown} are not among the classes {class_names}")
    lookup = {c: i for i, c in enumerate(class_names)}
    return [lookup[v] for v in data.labels.tolist()]


def classification_bundle(train: TimeSeriesData | None, test: TimeSeriesData | None, cfg, *,
                          class_names: list[str] | None = None, notes: dict[str, Any] | None = None,
                          source: Path | str = "data") -> DataBundle:
    """The bundle for labelled series; ``test`` None holds ``val_split`` of ``train`` out (``train`` None: eval only,
    ``test`` must then be given with ``class_names``)."""
    margs = dict(cfg.modality_args)
    adapter_args = _check_args(margs, "classify")
    unequal = margs.get("unequal", "resample")
    if unequal not in ("resample", "pad"):
        raise DataError(f"modality_args.unequal: {unequal!r} is not accepted; choose resample or pad")
    try:
        aug_kinds = parse_series_aug(margs.get("aug", "none"))
    except ValueError as e:
        raise DataError(f"modality_args.{e}") from e
    aug = "+".join(aug_kinds) or "none"
    parts = [d for d in (train, test) if d is not None]
    channels = {d.X.shape[1] for d in parts}
    if len(channels) != 1:
        raise DataError(f"{source}: the training and test files have different channel counts {sorted(channels)}")
    length = margs.get("length") or max(int(d.lengths.max()) if len(d.lengths) else 1 for d in parts)
    if not isinstance(length, int) or length < 1:
        raise DataError(f"modality_args.length: a positive integer is needed, got {length!r}")
    if class_names is None:
        ref = train if train is not None else test
        class_names = list(ref.class_labels) if ref.class_labels else sorted(set(ref.labels.tolist()))
    if train is not None and test is not None:
        x_all = np.concatenate([_fix_all(train, length, unequal), _fix_all(test, length, unequal)])
        y_all = _label_indices(train, class_names, source) + _label_indices(test, class_names, source)
        tr_idx, va_idx = list(range(len(train.X))), list(range(len(train.X), len(x_all)))
    elif train is not None:
        x_all, y_all = _fix_all(train, length, unequal), _label_indices(train, class_names, source)
        tr_idx, va_idx = stratified_split(y_all, cfg.val_split, cfg.seed)
    else:
        x_all, y_all = _fix_all(test, length, unequal), _label_indices(test, class_names, source)
        tr_idx, va_idx = [], list(range(len(x_all)))
    tr_idx, va_idx = limit_splits(tr_idx, va_idx, y_all, cfg)
    if (train is not None and not tr_idx) or not va_idx:
        raise DataError(f"{source}: need at least one training and one validation case (have {len(tr_idx)}, "
                        f"{len(va_idx)})")
    has_nan = bool(np.isnan(x_all).any())
    adapter_args = {"mask_channel": has_nan, **adapter_args, "in_chans": int(x_all.shape[1]), "length": int(length)}
    adapter_args = _validated_adapter_args(adapter_args)
    tensors = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32))
    check_note = None
    if margs.get("aug") == "auto":  # keep each kind only where it keeps the class (check_series_aug)
        if tr_idx:
            check = check_series_aug(tensors[torch.as_tensor(tr_idx)], [y_all[i] for i in tr_idx], cfg.seed)
            aug_kinds, check_note = check.kept, check.summary()
        else:
            aug_kinds = ()
        aug = "+".join(aug_kinds) or "none"

    def load(i: int) -> torch.Tensor:
        return tensors[i]

    def train_tf(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return augment_series(x, rng, aug_kinds)

    train_ds = SampleDataset(load, y_all, tr_idx, train_tf, cfg.seed) if tr_idx else None
    val_ds = SampleDataset(load, y_all, va_idx, None, cfg.seed)
    lengths = np.concatenate([d.lengths for d in parts])
    return DataBundle(train_ds, val_ds, list(class_names), "timeseries", adapter_args, (int(x_all.shape[1]), length),
                      notes={"train_samples": len(tr_idx), "val_samples": len(va_idx), "length": int(length),
                             "channels": int(x_all.shape[1]), "unequal": unequal, "aug": aug,
                             "equal_length": bool((lengths == lengths[0]).all()), "has_missing": has_nan,
                             **({"aug_check": check_note} if check_note else {}), **(notes or {})},
                      preprocessing={"length": int(length), "unequal": unequal, "channels": int(x_all.shape[1]),
                                     "task": "classify"})


def _build_classification(path: Path, cfg, *, eval_only: bool, class_names: list[str] | None,
                          notes: dict[str, Any] | None = None) -> DataBundle:
    train_path, test_path = _find_pair(path)
    if eval_only:
        data = _read(test_path if test_path is not None else train_path)
        return classification_bundle(None, data, cfg, class_names=class_names, source=test_path or train_path,
                                     notes=notes)
    train = _read(train_path)
    test = _read(test_path) if test_path is not None else None
    return classification_bundle(train, test, cfg, class_names=class_names, source=train_path,
                                 notes={"train_file": str(train_path),
                                        "test_file": str(test_path) if test_path else None, **(notes or {})})


# --- forecasting ---------------------------------------------------------------------------------------------------

def infer_season(index: list[str] | None) -> int:
    """12 for a monthly date index (``1949-01``), 4 for a quarterly one (``1970 Q1``), else 1."""
    if not index:
        return 1
    if all(re.fullmatch(r"\d{4}[-/]\d{1,2}", s.strip()) for s in index[:24]):
        return 12
    if all(re.search(r"Q[1-4]", s, re.IGNORECASE) for s in index[:24]):
        return 4
    return 1


def forecast_windows(values: np.ndarray, lookback: int, horizon: int, starts: range | list[int]
                     ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Windows of a (T, S) table: inputs (n, S, lookback) and series-major targets (n, S·horizon).

    ``starts`` are the indices of the first target step; windows whose targets have a NaN are dropped.

    Returns:
        ``(inputs, targets, kept_starts)``.
    """
    xs, ys, kept = [], [], []
    for t in starts:
        if t < lookback or t + horizon > len(values):
            raise ValueError(f"window start {t} needs {lookback} steps before it and {horizon} after it "
                             f"(series length {len(values)})")
        y = values[t : t + horizon].T
        if np.isnan(y).any():
            continue
        xs.append(values[t - lookback : t].T)
        ys.append(y.reshape(-1))
        kept.append(t)
    s = values.shape[1]
    if not xs:
        return np.zeros((0, s, lookback), np.float32), np.zeros((0, s * horizon), np.float32), []
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32), kept


def forecast_baselines(values: np.ndarray, starts: list[int], horizon: int, season: int) -> dict[str, dict]:
    """Naive and seasonal-naive MSE/MAE over the windows starting (first target) at ``starts``.

    Naive repeats the last observed value; seasonal naive forecasts step ``t + h`` with the value at
    ``t + h - season·(h // season + 1)`` (the last observed season repeated). Entries where either forecast source or
    target is missing are left out.
    """
    def errors(pred_index) -> dict[str, float]:
        err = []
        for t in starts:
            for h in range(horizon):
                src = pred_index(t, h)
                if src < 0:
                    err.append(np.full(values.shape[1], np.nan))
                else:
                    err.append(values[src] - values[t + h])
        e = np.asarray(err, dtype=np.float64)
        e = e[np.isfinite(e)]
        if e.size == 0:
            return {"mse": float("nan"), "mae": float("nan")}
        return {"mse": float(np.mean(e**2)), "mae": float(np.mean(np.abs(e)))}

    naive = errors(lambda t, h: t - 1)
    seasonal = errors(lambda t, h: t + h - season * (h // season + 1))
    return {"naive": naive, "seasonal_naive": {**seasonal, "season": int(season)}}


def forecast_bundle(table: SeriesTable, cfg, *, eval_only: bool = False, notes: dict[str, Any] | None = None,
                    source: Path | str = "data") -> DataBundle:
    """Windows of ``table`` for ``cfg.lookback``/``cfg.horizon`` with a chronological split (module docstring)."""
    margs = dict(cfg.modality_args)
    adapter_args = _check_args(margs, "forecast")
    values = table.values.astype(np.float64)
    if margs.get("columns") is not None:
        cols = margs["columns"]
        if not isinstance(cols, list) or any(c not in table.columns for c in cols):
            raise DataError(f"modality_args.columns: {cols!r} must be a list of columns of {source}: {table.columns}")
        values = values[:, [table.columns.index(c) for c in cols]]
        names = list(cols)
    else:
        names = list(table.columns)
    season = margs.get("season") or infer_season(table.index)
    if not isinstance(season, int) or season < 1:
        raise DataError(f"modality_args.season: a positive integer is needed, got {season!r}")
    horizon = cfg.horizon or max(season, 1)
    lookback = cfg.lookback or 2 * max(horizon, season)
    t_len = len(values)
    val_steps = margs.get("val_steps") or max(horizon, int(round(t_len * cfg.val_split)))
    if not isinstance(val_steps, int) or val_steps < horizon:
        raise DataError(f"modality_args.val_steps: an integer >= horizon ({horizon}) is needed, got {val_steps!r}")
    cut = t_len - val_steps
    if eval_only:
        tr_starts: list[int] = []
        va_starts = list(range(lookback, t_len - horizon + 1))
    else:
        tr_starts = list(range(lookback, cut - horizon + 1))
        va_starts = list(range(max(cut, lookback), t_len - horizon + 1))
    x_tr, y_tr, tr_kept = forecast_windows(values, lookback, horizon, tr_starts)
    x_va, y_va, va_kept = forecast_windows(values, lookback, horizon, va_starts)
    if (not eval_only and not tr_kept) or not va_kept:
        raise DataError(f"{source}: {t_len} steps with lookback {lookback}, horizon {horizon} and the last "
                        f"{val_steps} held out give {len(tr_kept)} training and {len(va_kept)} validation windows; "
                        "both must be >= 1 (lower --lookback/--horizon or modality_args.val_steps)")
    if cfg.max_train_samples is not None and len(tr_kept) > cfg.max_train_samples:  # keep the most recent windows
        x_tr, y_tr, tr_kept = (x_tr[-cfg.max_train_samples :], y_tr[-cfg.max_train_samples :],
                               tr_kept[-cfg.max_train_samples :])
    if cfg.max_val_samples is not None and len(va_kept) > cfg.max_val_samples:
        x_va, y_va, va_kept = x_va[: cfg.max_val_samples], y_va[: cfg.max_val_samples], va_kept[: cfg.max_val_samples]
    n_series = values.shape[1]
    has_nan = bool(np.isnan(x_tr).any() or np.isnan(x_va).any())
    adapter_args = _validated_adapter_args({"mask_channel": has_nan, **adapter_args, "in_chans": n_series,
                                            "length": lookback, "horizon": horizon})
    x = torch.from_numpy(np.concatenate([x_tr, x_va]))
    y = list(torch.from_numpy(np.concatenate([y_tr, y_va])))
    n_tr = len(tr_kept)

    def load(i: int) -> torch.Tensor:
        return x[i]

    train_ds = SampleDataset(load, y, list(range(n_tr)), None, cfg.seed) if n_tr else None
    val_ds = SampleDataset(load, y, list(range(n_tr, n_tr + len(va_kept))), None, cfg.seed)
    return DataBundle(
        train_ds, val_ds, [], "timeseries", adapter_args, (n_series, lookback), task="forecast",
        notes={"num_outputs": horizon * n_series, "baselines": forecast_baselines(values, va_kept, horizon, season),
               "series": names, "season": season, "lookback": lookback, "horizon": horizon, "steps": t_len,
               "val_steps": val_steps if not eval_only else t_len, "train_samples": n_tr,
               "val_samples": len(va_kept), "has_missing": has_nan, **(notes or {})},
        preprocessing={"task": "forecast", "lookback": lookback, "horizon": horizon, "columns": names,
                       "channels": n_series})


def _read_table(path: Path) -> SeriesTable:
    try:
        return read_csv_series(path)
    except ValueError as e:
        raise DataError(str(e)) from e


# --- the data contract ---------------------------------------------------------------------------------------------

def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """Series files (classification) or a table (forecasting) per the module docstring."""
    path = Path(cfg.data)
    if cfg.task == "forecast":
        if not path.is_file():
            raise DataError(f"forecasting needs a table file (CSV, one column per series), got {path}")
        return forecast_bundle(_read_table(path), cfg, eval_only=eval_only, source=path)
    return _build_classification(path, cfg, eval_only=eval_only, class_names=class_names)


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """One raw sample from a file: a ``.ts``/``.npz`` holding one case, a ``.npy`` array (C, L) or (L,), or a
    ``.csv`` table (one column per channel/series; forecasting uses its last ``lookback`` rows)."""
    path = Path(path)
    suffix = path.suffix.lower()
    channels = int(preprocessing["channels"])
    accepted = ".ts or .npz files of one case, .npy arrays (channels, length) or (length,), .csv tables"
    try:
        if suffix in _SERIES_SUFFIXES:
            data = _read(path)
            if len(data.X) != 1:
                raise DataError(f"{path}: holds {len(data.X)} cases; predict reads one case per file")
            x, length = data.X[0], int(data.lengths[0])
        elif suffix == ".npy":
            x = np.load(path, allow_pickle=False)
            if not np.issubdtype(x.dtype, np.number) or x.ndim not in (1, 2):
                raise DataError(f"{path}: array of shape {x.shape} and dtype {x.dtype}; accepted: numeric "
                                "(channels, length) or (length,)")
            x = x.astype(np.float32)
            x = x[None] if x.ndim == 1 else x
            length = x.shape[1]
        elif suffix in (".csv", ".tsv", ".txt"):
            x = _read_table(path).values.T.astype(np.float32)
            length = x.shape[1]
        else:
            raise DataError(f"{path}: unsupported file for a time-series run; accepted: .ts, .npz, .npy, .csv")
    except Exception as e:  # noqa: BLE001 - any reader error means the file is not a series this run can read
        raise unreadable_file(path, e, accepted) from e
    if x.shape[0] != channels:
        raise DataError(f"{x.shape[0]} channel(s)/series; accepted: {channels}, as the run was trained on")
    if preprocessing.get("task") == "forecast":
        lookback = int(preprocessing["lookback"])
        if length < lookback:
            raise DataError(f"{length} steps; accepted: at least the run's lookback of {lookback} steps")
        return torch.from_numpy(np.ascontiguousarray(x[:, length - lookback : length], dtype=np.float32))
    return torch.from_numpy(fix_length(x, length, int(preprocessing["length"]), preprocessing["unequal"]))
