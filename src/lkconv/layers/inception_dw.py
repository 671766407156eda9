"""InceptionNeXt token mixer: a large kernel decomposed into parallel cheap depthwise branches."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InceptionDWConv2d"]


class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution (InceptionNeXt).

    The channels are split into ``[C - 3g | g | g | g]`` with ``g = int(C * branch_ratio)``: the first part passes
    through unchanged, the others go through a depthwise ``k x k`` square kernel, a depthwise ``1 x band`` and a
    depthwise ``band x 1`` kernel (all with "same" zero padding); the parts are concatenated back in that order.

    Args:
        in_chans: Channel count ``C``.
        square_kernel_size: Side of the square depthwise kernel (odd).
        band_kernel_size: Length of the two band kernels (odd).
        branch_ratio: Fraction of channels per convolution branch, ``0 < branch_ratio <= 1/3``.
        bias: Whether the depthwise convolutions have a bias.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(
        self,
        in_chans: int,
        square_kernel_size: int = 3,
        band_kernel_size: int = 11,
        branch_ratio: float = 0.125,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if not 0.0 < branch_ratio <= 1.0 / 3.0:
            raise ValueError(f"branch_ratio must be in (0, 1/3], got {branch_ratio}")
        for name, size in (("square_kernel_size", square_kernel_size), ("band_kernel_size", band_kernel_size)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"{name} must be a positive odd integer, got {size}")
        gc = int(in_chans * branch_ratio)
        if gc < 1:
            raise ValueError(f"in_chans * branch_ratio must give at least one channel per branch, got {in_chans} * "
                             f"{branch_ratio}")
        kw = {"device": device, "dtype": dtype}
        sq, band = square_kernel_size, band_kernel_size
        self.dwconv_hw = nn.Conv2d(gc, gc, sq, padding=sq // 2, groups=gc, bias=bias, **kw)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band), padding=(0, band // 2), groups=gc, bias=bias, **kw)
        self.dwconv_h = nn.Conv2d(gc, gc, (band, 1), padding=(band // 2, 0), groups=gc, bias=bias, **kw)
        self.split_indexes = (in_chans - 3 * gc, gc, gc, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the identity / square / horizontal band / vertical band branches to the channel groups."""
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)

    def extra_repr(self) -> str:
        return f"split_indexes={self.split_indexes}"
