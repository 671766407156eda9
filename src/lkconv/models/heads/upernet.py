"""UPerNet (Xiao et al., 2018) as the UniRepLKNet reference trains it on ADE20K, in plain PyTorch.

The module names follow MMSegmentation's ``UPerHead``/``FCNHead`` and mmcv's ``ConvModule`` so that the reference's
published checkpoints (``decode_head.*`` / ``auxiliary_head.*``) load strictly:

- a conv-BN-ReLU unit has children ``conv`` (no bias: the BatchNorm supplies it), ``bn`` and ``activate``;
- the pyramid pooling module is ``psp_modules.{i}`` = (adaptive average pool, unit), so its weights are
  ``psp_modules.{i}.1.conv.weight`` …;
- ``bottleneck`` (3×3 over the last stage and the pooled maps), ``lateral_convs.{i}`` (1×1 per earlier stage),
  ``fpn_convs.{i}`` (3×3), ``fpn_bottleneck`` (3×3 over the concatenated pyramid), ``conv_seg`` (1×1 classifier);
- the auxiliary FCN head is ``convs.0`` (one 3×3 unit) and ``conv_seg``.

Every resize is bilinear with ``align_corners=False``, as in the reference configuration.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBNReLU", "PyramidPooling", "UPerHead", "FCNHead", "resize"]


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W), ``align_corners=False``; a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias) → BatchNorm → ReLU, named ``conv``/``bn``/``activate`` (mmcv's ConvModule layout).

    An ``nn.Sequential``, so :func:`lkconv.deploy.optimize.fuse_norms` folds the BatchNorm into the convolution.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 1) -> None:
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2, bias=False),
            bn=nn.BatchNorm2d(out_chans),
            activate=nn.ReLU(inplace=True),
        ))


class PyramidPooling(nn.ModuleList):
    """PSPNet's pooling pyramid: per scale s, an s×s average pool and a 1×1 unit, upsampled back to the input."""

    def __init__(self, pool_scales: Sequence[int], in_chans: int, channels: int) -> None:
        super().__init__(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(in_chans, channels, 1)) for s in pool_scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [resize(branch(x), x.shape[-2:]) for branch in self]


class UPerHead(nn.Module):
    """Pyramid pooling on the last stage, a top-down FPN over all stages, fusion, dropout and a 1×1 classifier.

    Args:
        in_channels: Channels of each input stage (fine to coarse).
        channels: Width of every internal map (512 in the reference; smaller for small models and data).
        num_classes: Output classes.
        pool_scales: Output sizes of the pyramid pooling (1, 2, 3, 6 in the reference).
        dropout: ``Dropout2d`` before the classifier (0.1 in the reference).

    ``forward(features)`` returns logits at the finest input stage's resolution.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) < 2:
            raise ValueError(f"UPerHead needs at least 2 feature levels, got {len(in_channels)}")
        self.in_channels, self.channels, self.num_classes = in_channels, channels, num_classes
        self.psp_modules = PyramidPooling(pool_scales, in_channels[-1], channels)
        self.bottleneck = ConvBNReLU(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        top = features[-1]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down: each level adds the coarser one, upsampled
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        fused = self.fpn_bottleneck(torch.cat([resize(o, size) for o in outs], dim=1))
        return self.conv_seg(self.dropout(fused))


class FCNHead(nn.Module):
    """The auxiliary head: one 3×3 unit, dropout and a 1×1 classifier on one stage (the third in the reference).

    Its loss (weight 0.4) only shapes the backbone's middle stages during training; inference does not run it.
    """

    def __init__(self, in_chans: int, channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_chans, self.channels, self.num_classes = in_chans, channels, num_classes
        self.convs = nn.Sequential(ConvBNReLU(in_chans, channels, 3))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))
