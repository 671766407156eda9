"""A plain eager UniRepLKNet: the baseline of the speed targets (issues 3 and 7).

Written the straightforward way the architecture is described (reference §1): NCHW tensors everywhere, the
channels-first LayerNorm computed from its mean and variance over C, the pointwise layers as ``nn.Linear`` on an
NCHW→NHWC permuted view and back, GRN in NHWC, the Dilated Reparam Block as a sum of its BatchNorm'd branches in
the training structure and one depthwise conv in the deploy structure. No fast paths, no layout tricks, no
planned convolutions — this is what a user gets from a literal implementation.

Its parameter and buffer names equal lkconv's (which equal the reference checkpoints'), so
``plain_like(model)`` copies any lkconv UniRepLKNet (training or deploy structure) into one with the same
weights; ``tests/benchmarks/test_plain_reference.py`` checks that the outputs agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lkconv.layers.dilated_reparam import DILATED_BRANCHES
from lkconv.models.unireplknet import UniRepLKNet, default_kernel_sizes

__all__ = ["PlainUniRepLKNet", "plain_like"]


class LayerNormChannelsFirst(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class GRN(nn.Module):
    """Global response normalisation on NHWC tensors."""

    def __init__(self, dim: int, use_bias: bool) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out + self.beta if self.beta is not None else out


class SE(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(dim, hidden, 1)
        self.up = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.up(F.relu(self.down(s))))


def _dw(dim: int, k: int, dilation: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, k, padding=dilation * (k - 1) // 2, dilation=dilation, groups=dim, bias=bias)


class DilatedReparam(nn.Module):
    def __init__(self, dim: int, k: int, deploy: bool) -> None:
        super().__init__()
        self.deploy = deploy
        self.lk_origin = _dw(dim, k, bias=deploy)
        self.branches = [] if deploy else list(DILATED_BRANCHES[k])
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(dim)
            for bk, r in self.branches:
                setattr(self, f"dil_conv_k{bk}_{r}", _dw(dim, bk, r))
                setattr(self, f"dil_bn_k{bk}_{r}", nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for bk, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{bk}_{r}")(getattr(self, f"dil_conv_k{bk}_{r}")(x))
        return out


class Block(nn.Module):
    def __init__(self, dim: int, k: int, deploy: bool, layer_scale: bool) -> None:
        super().__init__()
        self.dwconv = DilatedReparam(dim, k, deploy) if k >= 7 else _dw(dim, k, bias=deploy)
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.se = SE(dim, dim // 4)
        self.pwconv1 = nn.Sequential(Permute(0, 2, 3, 1), nn.Linear(dim, 4 * dim))
        self.act = nn.Sequential(nn.GELU(), GRN(4 * dim, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(4 * dim, dim), Permute(0, 3, 1, 2))
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(4 * dim, dim, bias=False), Permute(0, 3, 1, 2), nn.BatchNorm2d(dim))
        self.gamma = nn.Parameter(torch.ones(dim)) if layer_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwconv2(self.act(self.pwconv1(self.se(self.norm(self.dwconv(x))))))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + y


class PlainUniRepLKNet(nn.Module):
    def __init__(self, depths, dims, kernel_sizes=None, *, in_chans: int = 3, num_classes: int = 1000,
                 deploy: bool = False, layer_scale: bool = True) -> None:
        super().__init__()
        kernel_sizes = kernel_sizes or default_kernel_sizes(depths)
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, 2, 1), LayerNormChannelsFirst(dims[0] // 2), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1), LayerNormChannelsFirst(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1), LayerNormChannelsFirst(dims[i + 1])))
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(dims[i], kernel_sizes[i][j], deploy, layer_scale) for j in range(depths[i])))
            for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean([-2, -1])))


def plain_like(model: UniRepLKNet) -> PlainUniRepLKNet:
    """A plain module with ``model``'s structure (training or deploy) and a copy of its weights."""
    blocks = [b for s in model.stages for b in s]
    deploy = all(b.deploy for b in blocks)
    kernel_sizes = tuple(tuple(b.kernel_size for b in s) for s in model.stages)
    depths = tuple(len(s) for s in model.stages)
    dims = tuple(s[0].se.up.out_channels for s in model.stages)
    plain = PlainUniRepLKNet(depths, dims, kernel_sizes, in_chans=model.downsample_layers[0][0].in_channels,
                             num_classes=model.head.out_features, deploy=deploy,
                             layer_scale=blocks[0].gamma is not None)
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain.to(next(model.parameters()).dtype).train(model.training)
