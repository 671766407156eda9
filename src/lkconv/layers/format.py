"""Layout permutations kept as modules, so state_dict indices match the reference (``pwconv1.1``, ``pwconv2.2``)."""

import torch
from torch import nn


class NCHWtoNHWC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class NHWCtoNCHW(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)
