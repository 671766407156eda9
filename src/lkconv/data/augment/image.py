"""Image transforms on float (C, H, W) tensors: resize, centre crop (eval), random resized / padded crop (train)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize_image", "center_resize", "random_resized_crop", "random_pad_crop"]


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
