"""Image transforms on float (C, H, W) tensors: resize, centre crop (eval), random resized / padded crop (train)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize_image", "center_resize", "random_resized_crop", "random_pad_crop", "photometric"]


# Inputs of up to this many pixels are resized by two small matrix products (the matrices of F.interpolate's resize,
# made once per size pair): 28 -> 32 px 22.8 -> 12.8 us per image (1 thread); larger images keep F.interpolate,
# whose filters are sparse. The whole small-image train transform: benchmarks/bench_image_aug.py (1.04-1.12x).
MATRIX_RESIZE_MAX_PIXELS = 64 * 64


@functools.lru_cache(maxsize=128)
def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) matrix of the 1-D bilinear, antialiased resize that ``F.interpolate`` applies along one
    axis: the identity image resized along its height only (column c is the resized unit vector e_c)."""
    basis = torch.eye(n_in)[None, None]
    out = F.interpolate(basis, size=(n_out, n_in), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].contiguous()


def resize_image(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing of a (C, H, W) float image (small float32 images: the same resize as two
    matrix products, equal to ``F.interpolate`` up to float rounding)."""
    h, w = img.shape[-2:]
    if (h, w) == tuple(size):
        return img
    if img.dtype == torch.float32 and h * w <= MATRIX_RESIZE_MAX_PIXELS:
        return resize_matrix(h, size[0]) @ img @ resize_matrix(w, size[1]).T
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
    index = _reflect_index(size, pad)
    u = rng.random(3)  # one draw for the offsets and the flip (a Generator call costs ~3 us on a 32 px image)
    top, left = (min(int(v * (2 * pad + 1)), 2 * pad) for v in u[:2])
    rows, cols = index[top : top + size], index[left : left + size]
    if flip and u[2] < 0.5:
        cols = cols.flip(0)
    return img.index_select(1, rows).index_select(2, cols)  # the padded crop, flipped or not, without padding


@functools.lru_cache(maxsize=64)
def _reflect_index(size: int, pad: int) -> torch.Tensor:
    """Source index of every position of a reflect-padded axis (positions -pad .. size+pad-1), as
    ``F.pad(mode="reflect")`` fills them: -1 -> 1, size -> size-2."""
    if pad >= size:
        raise ValueError(f"reflect padding of {pad} needs an axis longer than that, got {size}")
    i = torch.arange(-pad, size + pad).abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def photometric(img: torch.Tensor, rng: np.random.Generator, strength: float = 0.25) -> torch.Tensor:
    """Random brightness and contrast (and, for colour, saturation) factors in ``[1 - strength, 1 + strength]``
    on a float (C, H, W) image in [0, 1]; the result is clamped to [0, 1]. ``strength`` 0 returns ``img``. The one
    definition for classification, segmentation (image channels of the pair) and detection."""
    if strength <= 0:
        return img
    lo, hi = 1.0 - strength, 1.0 + strength
    brightness, contrast, saturation = (float(v) for v in rng.uniform(lo, hi, size=3))
    # brightness then contrast about the brightened mean, as one affine map:
    # (b x - b m) c + b m = (b c) x + b m (1 - c), m the image's mean (one pass instead of four on a small image)
    mean = float(img.mean())
    out = img.mul(brightness * contrast).add_(mean * brightness * (1.0 - contrast))
    if img.shape[0] == 3:
        out = torch.lerp(out.mean(0, keepdim=True), out, saturation)  # grey + s (out - grey)
    return out.clamp_(0.0, 1.0).to(img.dtype)
