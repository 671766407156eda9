"""Time-series transforms on (C, L) tensors."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["window_slice"]


def window_slice(x: torch.Tensor, rng: np.random.Generator, low: float = 0.8) -> torch.Tensor:
    """Window slicing: a random window of ``low``–100 % of the series, stretched back to its length."""
    length = x.shape[-1]
    n = max(2, int(round(length * rng.uniform(low, 1.0))))
    if n >= length:
        return x
    start = int(rng.integers(0, length - n + 1))
    return torch.nn.functional.interpolate(x[None, :, start : start + n], size=length, mode="linear",
                                           align_corners=True)[0]
