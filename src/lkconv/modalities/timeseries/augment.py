"""Per-sample training augmentation of (C, L) series for classification: window slicing and window warping.

Why: the small UCR/UEA sets (20-300 cases) reach 100 % training accuracy within a few epochs; what is left is
generalisation. Slicing (a random window of 80-100 % stretched back to L) and warping (one random window of 10 % of
the series sped up or slowed down by 2x, the rest resampled around it) change the timing of a series without
changing its class. Amplitude jitter (Gaussian noise) and scaling run in the adapter on the normalised values
(``noise``, ``scale`` in :class:`~lkconv.modalities.timeseries.adapter.TimeSeriesAdapter`).

Every function draws only from the ``numpy`` Generator it is given (the data layer's per-sample
``default_rng((seed, epoch, index))``), so a seed fixes the result.

``aug: auto`` (the automatic recipe's default) keeps each of slicing and warping unless :func:`check_series_aug`
finds that it erases the class on the user's own training series: a nearest neighbour among the clean training
series still tells the class of an augmented training series on every set of the defaults panel but one — ACSF1
(1460 steps of appliance power, 10 classes), where both drop it to chance (10 %) and the network, trained with them,
did not even fit its training set (train 35 %, validation 21 %; without them 67 %).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...data.augment.timeseries import window_slice

__all__ = ["SERIES_AUGMENTATIONS", "parse_series_aug", "window_warp", "augment_series", "check_series_aug",
           "AugCheck"]

SERIES_AUGMENTATIONS = ("slice", "warp")
#: ``aug: auto`` drops a kind when even the 99 % upper confidence bound of the augmented series' nearest-neighbour
#: accuracy keeps less than this share of what the clean series score above chance (see :func:`check_series_aug`).
KEEP_SHARE = 1 / 3
CHECK_LENGTH = 256  # the check compares series resampled to at most this many steps
CHECK_QUERIES = 2000  # at most this many augmented queries (4 draws per case)
CHECK_REFERENCES = 5000  # and this many clean reference cases


def parse_series_aug(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``aug`` as given (``none``, ``slice``, ``warp``, ``slice+warp`` or a list of names) -> the names, in the
    order they are applied. ``auto`` names both; the data layer then keeps those :func:`check_series_aug` passes.

    Raises:
        ValueError: for an unknown name, listing the accepted ones.
    """
    if value is None:
        return ()
    if value == "auto":
        return SERIES_AUGMENTATIONS
    names = value.split("+") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names if str(n).strip() and str(n).strip() != "none"]
    bad = [n for n in names if n not in SERIES_AUGMENTATIONS]
    if bad:
        raise ValueError(f"aug: {bad} not accepted; choose auto, none, or any of {', '.join(SERIES_AUGMENTATIONS)} "
                         "joined by '+' (e.g. slice+warp) or as a list")
    return tuple(n for n in SERIES_AUGMENTATIONS if n in names)


def window_warp(x: torch.Tensor, rng: np.random.Generator, window: float = 0.1,
                factors: tuple[float, float] = (0.5, 2.0)) -> torch.Tensor:
    """Window warping (Le Guennec et al. 2016): a random window of ``window`` x L steps is stretched by one of
    ``factors`` (chosen at random), then the whole series is resampled back to L. (C, L) -> (C, L), same dtype.

    NaN (missing values) stay where linear interpolation meets them; series shorter than 8 steps are returned as
    they are.
    """
    length = x.shape[-1]
    w = max(2, int(round(length * window)))
    if length < 8 or w >= length:
        return x
    start = int(rng.integers(0, length - w + 1))
    factor = float(factors[int(rng.integers(0, len(factors)))])
    seg = x[None, :, start : start + w].float()
    warped = F.interpolate(seg, size=max(2, int(round(w * factor))), mode="linear", align_corners=True)
    joined = torch.cat([x[None, :, :start].float(), warped, x[None, :, start + w :].float()], -1)
    return F.interpolate(joined, size=length, mode="linear", align_corners=True)[0].to(x.dtype)


def augment_series(x: torch.Tensor, rng: np.random.Generator, kinds: Sequence[str]) -> torch.Tensor:
    """Applies the augmentations named in ``kinds`` (see :data:`SERIES_AUGMENTATIONS`) in order; none: ``x``."""
    if "slice" in kinds:
        x = window_slice(x, rng)
    if "warp" in kinds:
        x = window_warp(x, rng)
    return x


@dataclass
class AugCheck:
    """What :func:`check_series_aug` measured: leave-one-out 1-NN accuracy of the clean training series, chance (the
    accuracy of a random neighbour, sum of squared class shares), and per kind the accuracy of augmented series
    against the clean ones, its 99 % upper bound, the share of the clean margin that bound keeps, and the verdict."""

    clean: float
    chance: float
    kinds: dict[str, dict[str, float | bool]]

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(k for k in SERIES_AUGMENTATIONS if k in self.kinds and self.kinds[k]["keep"])

    def summary(self) -> str:
        parts = [f"{k} {v['accuracy'] * 100:.0f} %" + ("" if v["keep"] else " (dropped: keeps "
                 f"{v['share'] * 100:.0f} % < {KEEP_SHARE * 100:.0f} % of the clean margin)")
                 for k, v in self.kinds.items()]
        return (f"nearest-neighbour check on the training series: clean {self.clean * 100:.0f} %, chance "
                f"{self.chance * 100:.0f} %, augmented: " + ", ".join(parts))


def _check_view(x: torch.Tensor) -> torch.Tensor:
    """(N, C, L) -> (N, C * S): per case and channel z-normalised, resampled to S <= :data:`CHECK_LENGTH` steps
    (missing values as 0 after normalisation)."""
    x = x.float()
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros(()))
    n = finite.sum(-1, keepdim=True).clamp(min=1)
    mean = x0.sum(-1, keepdim=True) / n
    std = ((torch.where(finite, x - mean, torch.zeros(())) ** 2).sum(-1, keepdim=True) / n).sqrt()
    z = torch.where(finite, (x - mean) / (std + 1e-5), torch.zeros(()))
    if z.shape[-1] > CHECK_LENGTH:
        z = F.interpolate(z, size=CHECK_LENGTH, mode="linear", align_corners=True)
    return z.flatten(1)


def _nearest_label(queries: torch.Tensor, refs: torch.Tensor, ref_labels: torch.Tensor,
                   exclude: torch.Tensor) -> torch.Tensor:
    """Label of each query's nearest reference (Euclidean), never the reference ``exclude[i]`` (its own case)."""
    out = []
    for start in range(0, len(queries), 256):
        d = torch.cdist(queries[start:start + 256], refs)
        rows = torch.arange(d.shape[0])
        own = exclude[start:start + 256]
        d[rows[own >= 0], own[own >= 0]] = float("inf")
        out.append(ref_labels[d.argmin(1)])
    return torch.cat(out)


def check_series_aug(series: torch.Tensor, labels: Sequence[int], seed: int = 0,
                     kinds: Sequence[str] = SERIES_AUGMENTATIONS) -> AugCheck:
    """Whether each augmentation keeps the class of the user's training series, as a nearest neighbour sees it.

    Leave-one-out 1-NN (Euclidean, on per-case z-normalised series resampled to :data:`CHECK_LENGTH` steps) among
    the clean training series gives ``clean``; each kind is applied 4 times to every case (at most
    :data:`CHECK_QUERIES` queries, seeded) and each augmented series is matched against the clean ones, its own case
    excluded. A kind is dropped when even the 99 % upper confidence bound of that accuracy keeps less than
    :data:`KEEP_SHARE` of the clean accuracy's margin above chance — the augmentation has erased what tells the
    classes apart. Sets where clean 1-NN is no better than chance give no evidence: every kind is kept.

    Args:
        series: (N, C, L) training series (the data layer's equal-length tensors).
        labels: N class indices.
    """
    y = torch.as_tensor(list(labels), dtype=torch.long)
    n = len(y)
    rng = np.random.default_rng((seed, 19))
    ref_idx = np.sort(rng.permutation(n)[:CHECK_REFERENCES]) if n > CHECK_REFERENCES else np.arange(n)
    refs = _check_view(series[torch.as_tensor(ref_idx)])
    ref_y = y[torch.as_tensor(ref_idx)]
    pos = {int(i): j for j, i in enumerate(ref_idx)}
    counts = torch.bincount(ref_y).double()
    chance = float(((counts / counts.sum()) ** 2).sum())
    clean = float((_nearest_label(refs, refs, ref_y, torch.arange(len(ref_idx))) == ref_y).float().mean())
    draws = 4
    cases = np.sort(rng.permutation(n)[: max(1, CHECK_QUERIES // draws)])
    own = torch.tensor([pos.get(int(i), -1) for i in cases] * draws)
    result: dict[str, dict[str, float | bool]] = {}
    for kind in kinds:
        krng = np.random.default_rng((seed, 19, SERIES_AUGMENTATIONS.index(kind)))
        aug = torch.stack([augment_series(series[int(i)], krng, (kind,)) for _ in range(draws) for i in cases])
        truth = y[torch.as_tensor(np.tile(cases, draws))]
        acc = float((_nearest_label(_check_view(aug), refs, ref_y, own) == truth).float().mean())
        # the draws of one case are not independent evidence: the bound counts cases, not queries
        upper = min(1.0, acc + 2.326 * math.sqrt(max(acc * (1 - acc), 1e-12) / len(cases)))
        margin = clean - chance
        share = (upper - chance) / margin if margin > 0 else 1.0
        result[kind] = {"accuracy": round(acc, 4), "upper": round(upper, 4), "share": round(share, 4),
                        "keep": bool(margin <= 0 or share >= KEEP_SHARE)}
    return AugCheck(round(clean, 4), round(chance, 4), result)
