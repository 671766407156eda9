"""Image files (PNG, JPEG, BMP, ... anything Pillow opens) to float tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["read_image", "validate_image", "detect_channels"]


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading image files needs Pillow: pip install 'lkconv[image]'") from e
    return Image


def read_image(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Decodes an image file to a float (C, H, W) tensor in [0, 1]; ``channels`` 1 or 3 converts (alpha dropped)."""
    Image = _pil()
    with Image.open(path) as im:
        if channels == 1:
            im = im.convert("L")
        elif channels == 3 or im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()).float().div_(255.0)


def validate_image(path: Path) -> None:
    """Raises if ``path`` is not a decodable image (a cheap check made while scanning folders)."""
    Image = _pil()
    with Image.open(path) as im:
        im.verify()


def detect_channels(path: Path) -> int:
    """1 for grey-level images, else 3 (the channel count a folder of these files trains with)."""
    Image = _pil()
    with Image.open(path) as im:
        return 1 if im.mode in ("L", "1", "I", "I;16", "F") else 3
