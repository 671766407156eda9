"""Image files (PNG, JPEG, BMP, ... anything Pillow opens) to float tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["read_image", "validate_image", "detect_channels", "data_channels"]


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading image files needs Pillow: pip install 'lkconv[image]'") from e
    return Image


def read_image(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Decodes an image file to a float (C, H, W) tensor in [0, 1]; ``channels`` 1 or 3 converts (alpha dropped)."""
    return read_image_u8(path, channels).float().div_(255.0)


def read_image_u8(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """:func:`read_image`'s decoded bytes: a uint8 (C, H, W) tensor (a quarter of the float tensor's memory)."""
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
    return torch.from_numpy(arr.copy())


def validate_image(path: Path) -> None:
    """Raises if ``path`` is not a decodable image (a cheap check made while scanning folders)."""
    Image = _pil()
    with Image.open(path) as im:
        im.verify()


_GREY_MODES = ("L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L", "F")


def detect_channels(path: Path) -> int:
    """1 for a grey-level image, else 3 (read from the header; the pixels are not decoded)."""
    Image = _pil()
    with Image.open(path) as im:
        return 1 if im.mode in _GREY_MODES else 3


def data_channels(paths: Sequence[Path]) -> tuple[int, str]:
    """The channel count a folder of images trains with, and why: 3 as soon as one file is in colour, 1 when every
    file is grey-level. Files whose header cannot be read are left out (the dataset skips or refuses them)."""
    grey = 0
    for path in paths:
        try:
            c = detect_channels(path)
        except Exception:  # noqa: BLE001 - an unreadable file is the dataset's to report
            continue
        if c == 3:
            return 3, f"3 channels: {path.name} is in colour"
        grey += 1
    return 1, f"1 channel: all {grey} readable files are grey-level"
