"""Images: any size and channel count.

Raw batch: float (B, C, H, W) in [0, 1] (the data layer decodes, converts to C channels and brings every sample
to ``img_size``). The adapter normalises per channel. Per-sample train augmentation (random resized crop,
horizontal flip) lives here as plain functions that the data layer calls with a per-sample RNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import ModalityAdapter, register_adapter

__all__ = ["ImageAdapter", "resize_image", "random_resized_crop", "center_resize", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register_adapter
class ImageAdapter(ModalityAdapter):
    """(B, C, H, W) in [0, 1] → normalised (B, C, H, W).

    Args:
        in_chans: Channels of the images.
        mean: Per-channel mean (default: ImageNet's for 3 channels, 0.5 otherwise).
        std: Per-channel std (default: ImageNet's for 3 channels, 0.5 otherwise).
    """

    name = "image"

    def __init__(self, in_chans: int = 3, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        mean = list(mean) if mean is not None else list(IMAGENET_MEAN if in_chans == 3 else [0.5] * in_chans)
        std = list(std) if std is not None else list(IMAGENET_STD if in_chans == 3 else [0.5] * in_chans)
        if len(mean) != in_chans or len(std) != in_chans or min(std) <= 0:
            raise ValueError(f"mean/std need {in_chans} entries (std > 0), got mean={mean}, std={std}")
        self.in_chans = self.out_chans = in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def config(self) -> dict:
        return {"in_chans": self.in_chans, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"image adapter expects (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def resize_image(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing of a (C, H, W) float image."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def center_resize(img: torch.Tensor, size: int, crop_pct: float = 1.0) -> torch.Tensor:
    """Evaluation transform: centre crop of ``crop_pct`` of the shorter side, resized to ``size``×``size``."""
    h, w = img.shape[-2:]
    side = int(round(min(h, w) * crop_pct))
    top, left = (h - side) // 2, (w - side) // 2
    return resize_image(img[:, top : top + side, left : left + side], (size, size))


def random_resized_crop(
    img: torch.Tensor, size: int, rng: np.random.Generator, scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True,
) -> torch.Tensor:
    """Train transform: a random crop of random area and aspect ratio, resized, then a random horizontal flip."""
    h, w = img.shape[-2:]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round((target * aspect) ** 0.5)), int(round((target / aspect) ** 0.5))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            break
    else:
        ch, cw = min(h, w), min(h, w)
        top, left = (h - ch) // 2, (w - cw) // 2
    out = resize_image(img[:, top : top + ch, left : left + cw], (size, size))
    if flip and rng.random() < 0.5:
        out = out.flip(-1)
    return out


def random_pad_crop(img: torch.Tensor, size: int, rng: np.random.Generator, pad_frac: float = 0.1,
                    flip: bool = True) -> torch.Tensor:
    """Train transform for small images: resize, pad by ``pad_frac`` (reflect), random crop back, random flip."""
    img = resize_image(img, (size, size))
    pad = max(1, int(round(size * pad_frac)))
    padded = F.pad(img[None], (pad, pad, pad, pad), mode="reflect")[0]
    top, left = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    out = padded[:, top : top + size, left : left + size]
    if flip and rng.random() < 0.5:
        out = out.flip(-1)
    return out
