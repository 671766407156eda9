"""Normalisation layers shared by the families: channels-first LayerNorm and Global Response Norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor (the reference's ``channels_first`` LayerNorm).

    Parameters are named ``weight``/``bias`` of shape (C,), as in the reference.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, *, device=None, dtype=None) -> None:
        super().__init__(num_channels, eps=eps, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization on NHWC input (ConvNeXt-V2; UniRepLKNet's ``GRNwithNHWC``).

    ``out = (γ·N(x) + 1)·x + β`` with ``N(x) = G(x) / (mean_c G(x) + 1e-6)`` and ``G(x)`` the per-channel L2 norm
    over H and W. γ and β have shape (1, 1, 1, C) and start at zero. β is always present as an attribute; it is
    ``None`` when the layer has no bias (deploy structure: β is folded into the next linear layer).
    """

    def __init__(self, dim: int, use_bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim, **dd))
        self.beta: nn.Parameter | None
        if use_bias:
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim, **dd))
        else:
            self.register_parameter("beta", None)

    @property
    def use_bias(self) -> bool:
        return self.beta is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta
