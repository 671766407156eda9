"""Dilated Reparam Block (UniRepLKNet): a large depthwise kernel trained beside dilated small kernels.

Training structure for kernel K (all depthwise)::

    out = BN0(conv_KxK(x)) + sum_i BN_i(conv_{k_i}, dilation r_i (x))

Every branch is linear, so after training the branches fold into the large kernel (``reparameterize``) and the
block becomes one K×K depthwise conv with bias. Module names match the reference checkpoints: ``lk_origin``,
``origin_bn``, ``dil_conv_k{k}_{r}``, ``dil_bn_k{k}_{r}``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.reparam import dilate_kernel, equivalent_kernel_size, fuse_bn, merge_kernels
from .conv_bn import LargeDepthwiseConv2d

__all__ = ["DilatedReparamBlock", "DILATED_BRANCHES", "dilated_branches"]

# kernel size K -> ((k, r), ...): the reference's branch table ("we did not tune them carefully").
DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def dilated_branches(kernel_size: int) -> tuple[tuple[int, int], ...]:
    """The (kernel, dilation) pairs of the parallel branches for a large kernel of ``kernel_size``."""
    if kernel_size not in DILATED_BRANCHES:
        raise ValueError(
            f"Dilated Reparam Block has no branch table for kernel_size={kernel_size}; "
            f"accepted kernel sizes: {sorted(DILATED_BRANCHES)}"
        )
    return DILATED_BRANCHES[kernel_size]


def _dw_conv(channels: int, k: int, dilation: int, bias: bool, dd: dict) -> nn.Conv2d:
    padding = (equivalent_kernel_size(k, dilation) - 1) // 2
    return LargeDepthwiseConv2d(channels, channels, k, stride=1, padding=padding, dilation=dilation, groups=channels,
                                bias=bias, **dd)


class DilatedReparamBlock(nn.Module):
    """Depthwise large-kernel conv with parallel dilated branches that re-parameterize into it.

    Args:
        channels: Number of channels (the conv is depthwise).
        kernel_size: Large kernel size K; one of the keys of :data:`DILATED_BRANCHES` (5, 7, 9, 11, 13, 15, 17).
        deploy: Build the fused structure (one K×K conv with bias) directly.
        norm_layer: BatchNorm class for the branches (``nn.SyncBatchNorm`` for synchronised statistics).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        deploy: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        branches = dilated_branches(kernel_size)
        self.channels = channels
        self.kernel_size = kernel_size
        self.lk_origin = _dw_conv(channels, kernel_size, 1, bias=deploy, dd=dd)
        self.origin_bn: nn.Module | None = None if deploy else norm_layer(channels, **dd)
        # The branches are attributes (not a ModuleDict) so that checkpoint keys read dwconv.dil_conv_k5_1.weight.
        self.branches: tuple[tuple[int, int], ...] = () if deploy else branches
        for k, r in self.branches:
            setattr(self, f"dil_conv_k{k}_{r}", _dw_conv(channels, k, r, bias=False, dd=dd))
            setattr(self, f"dil_bn_k{k}_{r}", norm_layer(channels, **dd))

    @property
    def deploy(self) -> bool:
        return self.origin_bn is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.origin_bn is None:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            conv = getattr(self, f"dil_conv_k{k}_{r}")
            bn = getattr(self, f"dil_bn_k{k}_{r}")
            out = out + bn(conv(x))
        return out

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single K×K kernel and bias equal (in eval mode) to the whole block."""
        if self.origin_bn is None:
            bias = self.lk_origin.bias
            return self.lk_origin.weight.detach().clone(), (
                bias.detach().clone() if bias is not None else self.lk_origin.weight.new_zeros(self.channels)
            )
        w, b = fuse_bn(self.lk_origin.weight, self.lk_origin.bias, self.origin_bn)
        for k, r in self.branches:
            bw, bb = fuse_bn(getattr(self, f"dil_conv_k{k}_{r}").weight, None, getattr(self, f"dil_bn_k{k}_{r}"))
            w, b = merge_kernels(w, b, dilate_kernel(bw, r), bb)
        return w, b

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds every branch and BatchNorm into ``lk_origin`` (in place, idempotent, keeps device and dtype)."""
        if self.origin_bn is None:
            return
        w, b = self.fused_kernel()
        conv = _dw_conv(self.channels, self.kernel_size, 1, bias=True, dd={"device": w.device, "dtype": w.dtype})
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.lk_origin = conv
        self.origin_bn = None
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        self.branches = ()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, branches={self.branches}"
