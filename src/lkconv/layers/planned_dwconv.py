"""The planned depthwise convolution as a module (``optimize_for_inference`` puts one in place of every stride-1
depthwise ``nn.Conv2d``): it keeps its weight packed for lkconv's C kernel between calls."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lkconv.ops.dwconv import depthwise_conv2d
from lkconv.ops.dwconv.backends import PackedWeight
from lkconv.ops.dwconv.spec import ALGO_NAMES, OUT_FORMATS, pair, resolve_padding

__all__ = ["PlannedDepthwiseConv2d"]


def _checked_options(algo: str | None, out_format: str | None) -> tuple[str | None, str | None]:
    """Return (algo, out_format) once both are known to :func:`~lkconv.ops.dwconv.depthwise_conv2d`."""
    if algo is not None and algo not in ALGO_NAMES:
        raise ValueError(f"algo must be None or one of {ALGO_NAMES}, got {algo!r}")
    if out_format not in OUT_FORMATS:
        raise ValueError(f"out_format must be one of None, 'nchw', 'nhwc', 'any', got {out_format!r}")
    return algo, out_format


class PlannedDepthwiseConv2d(nn.Module):
    """Depthwise ``Conv2d`` (stride 1, zero padding) that runs :func:`depthwise_conv2d` with per-shape plans.

    Args:
        channels: input = output channels.
        kernel_size: int or (kh, kw).
        padding: int, (ph, pw), ``"same"`` or ``"valid"``.
        dilation: int or (dh, dw).
        bias: whether to learn a bias.
        algo: fixed algorithm (see :func:`depthwise_conv2d`), or None to plan per shape.
        out_format: output memory format policy (see :func:`depthwise_conv2d`).
        device: parameter device.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int] | str = "same",
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        *,
        algo: str | None = None,
        out_format: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.dilation = pair(dilation, "dilation", 1)
        resolve_padding(padding, *self.kernel_size, *self.dilation)  # validates
        self.padding = padding
        self.algo, self.out_format = _checked_options(algo, out_format)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(channels, 1, *self.kernel_size, **kw))
        self.bias = nn.Parameter(torch.empty(channels, **kw)) if bias else None
        self._packed = PackedWeight()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d`` (Kaiming-uniform weight, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(
        cls, conv: nn.Conv2d, *, algo: str | None = None, out_format: str | None = None
    ) -> PlannedDepthwiseConv2d:
        """Wrap an existing depthwise ``nn.Conv2d``, sharing its weight and bias parameters (same device and dtype).

        Args:
            conv: a ``nn.Conv2d`` with ``groups == in_channels == out_channels``, stride 1 and zero padding.
            algo: as in the constructor.
            out_format: as in the constructor.

        Raises:
            TypeError: if ``conv`` is not an ``nn.Conv2d``.
            ValueError: if it is not a stride-1, zero-padded depthwise convolution.
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"from_conv expects an nn.Conv2d, got {type(conv).__name__}")
        c = conv.in_channels
        if not (conv.groups == c == conv.out_channels):
            raise ValueError(
                f"from_conv needs a depthwise conv (groups == in_channels == out_channels), got in={c}, "
                f"out={conv.out_channels}, groups={conv.groups}"
            )
        if tuple(conv.stride) != (1, 1):
            raise ValueError(f"from_conv supports stride 1 only, got stride {tuple(conv.stride)}")
        if conv.padding_mode != "zeros":
            raise ValueError(f"from_conv supports padding_mode='zeros' only, got {conv.padding_mode!r}")
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        mod = cls.__new__(cls)
        nn.Module.__init__(mod)
        mod.channels = c
        mod.kernel_size = tuple(conv.kernel_size)
        mod.dilation = tuple(conv.dilation)
        mod.padding = padding
        mod.algo, mod.out_format = _checked_options(algo, out_format)
        mod.weight = conv.weight
        mod.bias = conv.bias
        mod._packed = PackedWeight()
        return mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the convolution (under ``torch.compile``: the plain convolution, which inductor lowers to oneDNN and
        fuses with its neighbours, instead of a graph break at the plan lookup)."""
        if torch.compiler.is_compiling():
            return F.conv2d(x, self.weight, self.bias, 1, self.padding, self.dilation, self.channels)
        return depthwise_conv2d(
            x, self.weight, self.bias, self.padding, self.dilation, algo=self.algo, out_format=self.out_format,
            _packed=self._packed,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, padding={self.padding!r}, dilation={self.dilation}, "
            f"bias={self.bias is not None}, algo={self.algo!r}, out_format={self.out_format!r}"
        )
