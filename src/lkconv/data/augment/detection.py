"""Box-aware image transforms for detection: letterbox resize (eval), random scale + crop/pad, horizontal flip and
photometric jitter (train). Images are float (C, H, W) in [0, 1]; boxes are (K, 4) ``x1, y1, x2, y2`` in pixels."""

from __future__ import annotations

import numpy as np
import torch

from .image import photometric, resize_image

__all__ = ["letterbox", "random_scale_crop", "hflip_boxes", "photometric", "pad_targets"]


def letterbox(img: torch.Tensor, boxes: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray, float]:
    """Resizes so the longer side is ``size`` and pads bottom/right with zeros to ``size``×``size`` (nothing is cut
    off, the aspect ratio is kept); returns the image, the scaled boxes and the scale."""
    h, w = img.shape[-2:]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = img.new_zeros(img.shape[0], size, size)
    out[:, :nh, :nw] = resize_image(img, (nh, nw))
    return out, boxes * scale, scale


def random_scale_crop(img: torch.Tensor, boxes: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator,
                      scale_range: tuple[float, float] = (0.6, 1.4), min_visible: float = 0.4,
                      min_side: float = 2.0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Resizes by the letterbox scale times a random factor, then places a ``size``×``size`` window at a random
    offset (a crop when the image is larger, a zero-padded placement when smaller). Boxes move with the pixels and are
    clipped to the window; a box keeping less than ``min_visible`` of its area or a side under ``min_side`` px is
    dropped (with its label)."""
    h, w = img.shape[-2:]
    s = size / max(h, w) * float(rng.uniform(*scale_range))
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    resized = resize_image(img, (nh, nw))
    boxes = boxes * np.array([nw / w, nh / h, nw / w, nh / h], dtype=np.float32)
    # window origin in the resized image's coordinates (negative: the image lands inside a padded canvas)
    ox = int(rng.integers(0, nw - size + 1)) if nw > size else -int(rng.integers(0, size - nw + 1))
    oy = int(rng.integers(0, nh - size + 1)) if nh > size else -int(rng.integers(0, size - nh + 1))
    out = img.new_zeros(img.shape[0], size, size)
    sx0, sy0 = max(ox, 0), max(oy, 0)
    sx1, sy1 = min(ox + size, nw), min(oy + size, nh)
    out[:, sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox] = resized[:, sy0:sy1, sx0:sx1]
    moved = boxes - np.array([ox, oy, ox, oy], dtype=np.float32)
    clipped = moved.clip(0, size)
    area = lambda b: (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # noqa: E731
    keep = (area(clipped) >= min_visible * np.maximum(area(moved), 1e-6)) \
        & (clipped[:, 2] - clipped[:, 0] >= min_side) & (clipped[:, 3] - clipped[:, 1] >= min_side)
    return out, clipped[keep], labels[keep]


def hflip_boxes(img: torch.Tensor, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Mirrors the image left-right and its boxes with it."""
    w = img.shape[-1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return img.flip(-1), flipped


def pad_targets(boxes: np.ndarray, labels: np.ndarray, max_boxes: int) -> torch.Tensor:
    """(``max_boxes``, 5) rows ``x1, y1, x2, y2, class``; unused rows are -1 (so a batch stacks)."""
    if len(boxes) > max_boxes:
        raise ValueError(f"{len(boxes)} boxes in one image, more than the data set's maximum {max_boxes}")
    out = torch.full((max_boxes, 5), -1.0)
    if len(boxes):
        out[: len(boxes), :4] = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
        out[: len(boxes), 4] = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    return out
