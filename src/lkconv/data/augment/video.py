"""Video clip transforms on (T, C, H, W) tensors."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["crop_clip"]


def crop_clip(clip: torch.Tensor, size: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A ``size``×``size`` crop of every frame of a (T, C, H, W) clip: one random position for all frames with
    ``rng`` (training), the centre without (evaluation, prediction)."""
    h, w = clip.shape[-2:]
    top = int(rng.integers(0, h - size + 1)) if rng is not None else (h - size) // 2
    left = int(rng.integers(0, w - size + 1)) if rng is not None else (w - size) // 2
    return clip[..., top : top + size, left : left + size]
