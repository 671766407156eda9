"""Images: any size and channel count.

Raw batch: float (B, C, H, W) in [0, 1] (the data layer decodes, converts to C channels and brings every sample
to ``img_size``). The adapter normalises per channel. Per-sample train augmentation (random resized crop,
horizontal flip) lives in :mod:`lkconv.data.augment.image`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..base import ModalityAdapter

__all__ = ["ImageAdapter", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
