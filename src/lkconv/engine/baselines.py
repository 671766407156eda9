"""Trivial and classical baselines on the run's own split, so a user sees whether the network learned more.

* ``majority``: accuracy of always answering the most frequent training class;
* ``1nn``: a 1-nearest-neighbour classifier (Euclidean) on the raw input as the data layer delivers it (pixels,
  waveform, points, series, frames): each raw sample flattened, missing values set to 0, each vector z-normalised,
  and — when longer than :data:`MAX_DIMS` values — projected to :data:`PROJECTED_DIMS` dimensions by a fixed
  seeded Gaussian random projection (distances are kept approximately). At most :data:`MAX_TRAIN` training samples
  (every k-th) are used, so it costs seconds.

Validation-mode samples are read (``dataset[i]``); training samples may carry their training augmentation, which a
baseline meant as a floor can live with.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

__all__ = ["majority_accuracy", "nearest_neighbour_accuracy", "classification_baselines", "MAX_DIMS",
           "PROJECTED_DIMS", "MAX_TRAIN"]

MAX_DIMS = 4096
PROJECTED_DIMS = 512
MAX_TRAIN = 5000
MAX_VAL = 5000


def majority_accuracy(train_labels: list[int], val_labels: list[int]) -> float:
    """Share of ``val_labels`` equal to the most frequent training label (ties: the smallest label)."""
    if not train_labels or not val_labels:
        return float("nan")
    counts = Counter(train_labels)
    best = max(sorted(counts), key=lambda k: counts[k])
    return sum(int(v == best) for v in val_labels) / len(val_labels)


def _features(dataset, limit: int, projection: torch.Tensor | None, dims: int) -> tuple[torch.Tensor, list[int], Any]:
    step = max(1, -(-len(dataset) // limit))
    rows, labels = [], []
    for k in range(0, len(dataset), step):
        x, y = dataset[k]
        v = torch.as_tensor(x, dtype=torch.float32).reshape(-1)
        v = torch.where(torch.isfinite(v), v, torch.zeros_like(v))
        if v.numel() != dims:  # samples of another size than the first: skip the baseline
            return torch.empty(0), [], projection
        if projection is None and dims > MAX_DIMS:
            g = torch.Generator().manual_seed(0)
            projection = torch.randn(dims, PROJECTED_DIMS, generator=g) / PROJECTED_DIMS**0.5
        if projection is not None:
            v = v @ projection
        v = (v - v.mean()) / v.std().clamp_min(1e-6)
        rows.append(v)
        labels.append(int(torch.as_tensor(y)))
    return torch.stack(rows), labels, projection


def nearest_neighbour_accuracy(train, val) -> float:
    """1-NN accuracy of ``val`` against ``train`` on the raw inputs (see the module docstring)."""
    if len(train) == 0 or len(val) == 0:
        return float("nan")
    dims = torch.as_tensor(train[0][0]).numel()
    xt, yt, proj = _features(train, MAX_TRAIN, None, dims)
    xv, yv, _ = _features(val, MAX_VAL, proj, dims)
    if not yt or not yv:
        return float("nan")
    yt_t = torch.tensor(yt)
    correct = 0
    for start in range(0, xv.shape[0], 512):
        d = torch.cdist(xv[start:start + 512], xt)
        pred = yt_t[d.argmin(dim=1)]
        correct += int((pred == torch.tensor(yv[start:start + 512])).sum())
    return correct / len(yv)


def classification_baselines(data) -> dict[str, float]:
    """``{"majority_accuracy", "nn1_accuracy"}`` on the bundle's validation split (classification only)."""
    targets_t = getattr(data.train, "targets", None)
    targets_v = getattr(data.val, "targets", None)
    out: dict[str, float] = {}
    if callable(targets_t) and callable(targets_v):
        out["majority_accuracy"] = majority_accuracy([int(t) for t in targets_t()], [int(t) for t in targets_v()])
    with torch.no_grad():
        out["nn1_accuracy"] = nearest_neighbour_accuracy(data.train, data.val)
    return out
