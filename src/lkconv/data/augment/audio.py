"""Waveform transforms on (N,) or (..., N) tensors."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["fix_length"]


def fix_length(wave: torch.Tensor, n: int, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Crops or zero-pads a (N,) waveform to ``n`` samples: at a random offset with ``rng``, centred without."""
    length = wave.shape[-1]
    if length > n:
        start = int(rng.integers(0, length - n + 1)) if rng is not None else (length - n) // 2
        return wave[..., start : start + n]
    if length < n:
        left = int(rng.integers(0, n - length + 1)) if rng is not None else (n - length) // 2
        return torch.nn.functional.pad(wave, (left, n - length - left))
    return wave
