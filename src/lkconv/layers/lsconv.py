"""LSNet's "see large, focus small" convolution: large-kernel perception + selective kernel aggregation."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from lkconv.ops.ska import SKA_IMPLS, ska

__all__ = ["LKP", "LSConv"]


def _conv_bn(
    in_chans: int,
    out_chans: int,
    kernel_size: int = 1,
    groups: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """Bias-free convolution with "same" padding followed by BatchNorm (children named ``conv`` and ``bn``)."""
    conv = nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2, groups=groups, bias=False,
                     device=device, dtype=dtype)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_chans, device=device, dtype=dtype)))


class LKP(nn.Module):
    """Large-Kernel Perception: predicts one ``K x K`` kernel per pixel and per group of channels.

    ``h = ReLU(BN(Conv1x1 C -> C/2))``, ``h = BN(DWConv lks x lks)``, ``h = ReLU(BN(Conv1x1 C/2 -> C/2))``,
    ``w = GroupNorm(G)(Conv1x1 C/2 -> K*K*G)`` reshaped to ``(B, G, K*K, H, W)`` with ``G = C / groups``.

    Args:
        dim: Channel count ``C`` (divisible by 2 and by ``groups``).
        lks: Large (perception) depthwise kernel size, odd.
        sks: Small (aggregation) kernel size ``K``, odd.
        groups: Channels sharing one generated kernel.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        ``(B, C, H, W) -> (B, C / groups, sks * sks, H, W)``.
    """

    def __init__(
        self,
        dim: int,
        lks: int = 7,
        sks: int = 3,
        groups: int = 8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim < 2 or dim % 2 != 0 or groups < 1 or dim % groups != 0:
            raise ValueError(f"dim must be even and divisible by groups, got dim={dim}, groups={groups}")
        for name, size in (("lks", lks), ("sks", sks)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"{name} must be a positive odd integer, got {size}")
        kw = {"device": device, "dtype": dtype}
        half = dim // 2
        self.sks = sks
        self.num_kernels = dim // groups
        self.cv1 = _conv_bn(dim, half, **kw)
        self.act = nn.ReLU()
        self.cv2 = _conv_bn(half, half, kernel_size=lks, groups=half, **kw)
        self.cv3 = _conv_bn(half, half, **kw)
        self.cv4 = nn.Conv2d(half, sks * sks * self.num_kernels, 1, **kw)
        self.norm = nn.GroupNorm(self.num_kernels, sks * sks * self.num_kernels, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns per-pixel kernels ``(B, G, K*K, H, W)``."""
        h = self.act(self.cv1(x))
        h = self.act(self.cv3(self.cv2(h)))
        w = self.norm(self.cv4(h))
        b, _, height, width = w.shape
        return w.view(b, self.num_kernels, self.sks * self.sks, height, width)


class LSConv(nn.Module):
    """LS convolution: ``BN(SKA(x, LKP(x))) + x``.

    Args:
        dim: Channel count ``C``.
        lks: Large perception kernel size (default 7).
        sks: Small aggregation kernel size (default 3).
        groups: Channels sharing each generated kernel (default 8); channel ``c`` uses kernel ``c mod (C / groups)``.
        ska_impl: SKA formulation, one of ``lkconv.ops.ska.SKA_IMPLS`` (default ``"shift"``).
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(
        self,
        dim: int,
        lks: int = 7,
        sks: int = 3,
        groups: int = 8,
        ska_impl: str = "shift",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if ska_impl not in SKA_IMPLS:
            raise ValueError(f"ska_impl must be one of {SKA_IMPLS}, got {ska_impl!r}")
        self.ska_impl = ska_impl
        self.lkp = LKP(dim, lks=lks, sks=sks, groups=groups, device=device, dtype=dtype)
        self.bn = nn.BatchNorm2d(dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Adds the normalised selective aggregation to the input."""
        return self.bn(ska(x, self.lkp(x), impl=self.ska_impl)) + x

    def extra_repr(self) -> str:
        return f"ska_impl={self.ska_impl!r}"
