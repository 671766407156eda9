"""Joint image + mask transforms for segmentation, on a (C + 1, H, W) float tensor whose last channel is the mask.

Keeping image and mask in one tensor lets the shared :class:`~lkconv.data.datasets.SampleDataset` (its seeded RNG,
its bad-file handling) carry segmentation samples unchanged. Geometry (scale, crop, flip) moves both; the image is
resized bilinearly, the mask by nearest neighbour (class indices are never blended); photometric changes touch the
image only; padding fills the mask with :data:`IGNORE_INDEX`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .image import photometric as image_photometric
from .image import resize_image

__all__ = ["IGNORE_INDEX", "resize_pair", "random_scale_crop", "photometric", "eval_resize", "split_pair"]

IGNORE_INDEX = 255


def split_pair(pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C + 1, H, W) → image (C, H, W) float and mask (H, W) int64."""
    return pair[:-1], pair[-1].round().long()


def resize_pair(pair: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resizes the image bilinearly and the mask by nearest neighbour to ``size`` (H, W)."""
    if tuple(pair.shape[-2:]) == tuple(size):
        return pair
    img = resize_image(pair[:-1], size)
    mask = F.interpolate(pair[None, -1:], size=size, mode="nearest")[0]
    return torch.cat([img, mask])


def _short_side_to(pair: torch.Tensor, side: float) -> torch.Tensor:
    h, w = pair.shape[-2:]
    s = side / min(h, w)
    return resize_pair(pair, (max(1, int(round(h * s))), max(1, int(round(w * s)))))


def random_scale_crop(pair: torch.Tensor, size: int, rng: np.random.Generator,
                      scale: tuple[float, float] = (0.5, 2.0), flip: bool = True) -> torch.Tensor:
    """Training geometry: shorter side to ``size`` × U(``scale``), a random ``size``×``size`` crop (padded with
    zeros / ignore where the scaled image is smaller), and a horizontal flip with probability 1/2."""
    pair = _short_side_to(pair, size * float(rng.uniform(*scale)))
    h, w = pair.shape[-2:]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        img = F.pad(pair[:-1], (0, pw, 0, ph), value=0.0)
        mask = F.pad(pair[-1:], (0, pw, 0, ph), value=float(IGNORE_INDEX))
        pair, (h, w) = torch.cat([img, mask]), (h + ph, w + pw)
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    pair = pair[:, top : top + size, left : left + size]
    if flip and rng.random() < 0.5:
        pair = pair.flip(-1)
    return pair.contiguous()


def photometric(pair: torch.Tensor, rng: np.random.Generator, strength: float = 0.25) -> torch.Tensor:
    """Random brightness, contrast and (colour images) saturation of the image channels, each by up to
    ``strength``; the mask channel is left as it is."""
    return torch.cat([image_photometric(pair[:-1], rng, strength), pair[-1:]])


def eval_resize(pair: torch.Tensor, size: int) -> torch.Tensor:
    """Validation: shorter side to ``size``, centre ``size``×``size`` crop (equal shapes for batching)."""
    pair = _short_side_to(pair, size)
    h, w = pair.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return pair[:, top : top + size, left : left + size].contiguous()
