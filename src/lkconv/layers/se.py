"""Squeeze-and-Excitation with 1x1 convs named ``down``/``up`` (UniRepLKNet's SEBlock)."""

import torch
import torch.nn.functional as F
from torch import nn


class SEBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.down = nn.Conv2d(channels, hidden, 1, bias=True, **dd)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(self.up(F.relu(self.down(s))))
        return x * s
