"""Per-sample training augmentation of (C, L) series for classification: window slicing and window warping.

Why: the small UCR/UEA sets (20-300 cases) reach 100 % training accuracy within a few epochs; what is left is
generalisation. Slicing (a random window of 80-100 % stretched back to L) and warping (one random window of 10 % of
the series sped up or slowed down by 2x, the rest resampled around it) change the timing of a series without
changing its class. Amplitude jitter (Gaussian noise) and scaling run in the adapter on the normalised values
(``noise``, ``scale`` in :class:`~lkconv.modalities.timeseries.adapter.TimeSeriesAdapter`).

Every function draws only from the ``numpy`` Generator it is given (the data layer's per-sample
``default_rng((seed, epoch, index))``), so a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...data.augment.timeseries import window_slice

__all__ = ["SERIES_AUGMENTATIONS", "parse_series_aug", "window_warp", "augment_series"]

SERIES_AUGMENTATIONS = ("slice", "warp")


def parse_series_aug(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``aug`` as given (``none``, ``slice``, ``warp``, ``slice+warp`` or a list of names) -> the names, in the
    order they are applied.

    Raises:
        ValueError: for an unknown name, listing the accepted ones.
    """
    if value is None:
        return ()
    names = value.split("+") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names if str(n).strip() and str(n).strip() != "none"]
    bad = [n for n in names if n not in SERIES_AUGMENTATIONS]
    if bad:
        raise ValueError(f"aug: {bad} not accepted; choose none, or any of {', '.join(SERIES_AUGMENTATIONS)} "
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
