"""Squeeze-and-Excitation with 1x1 convs named ``down``/``up`` (UniRepLKNet's SEBlock)."""

import torch
import torch.nn.functional as F
from torch import nn


class PooledConv1x1(nn.Conv2d):
    """A 1x1 convolution (same parameters and state_dict as ``nn.Conv2d(cin, cout, 1)``) that also takes the pooled
    (B, C) vector, as a matrix product.

    On a (B, C, 1, 1) map oneDNN's convolution backward cost ~0.3-0.5 ms a call; the matrix product is the same
    value up to rounding (training step of the small UniRepLKNet at batch 64, 2 threads: 48 -> 44 ms). Still a
    convolution module, so MAC counts and hooks see it as one.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.linear(x, self.weight.flatten(1), self.bias)
        return super().forward(x)


class SEBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.down = PooledConv1x1(channels, hidden, **dd)
        self.up = PooledConv1x1(hidden, channels, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.up(F.relu(self.down(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]
