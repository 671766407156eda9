"""Re-parameterization math on plain tensors: fuse BatchNorm, dilate kernels, merge kernels.

Every function here is exact in real arithmetic; the tests check each against the unfused computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fuse_bn", "dilate_kernel", "pad_kernel_to", "merge_kernels", "equivalent_kernel_size"]


def fuse_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Folds an eval-mode BatchNorm that follows a conv (or linear) into its weight and bias.

    Args:
        weight: Weight whose first dimension is the output channel (conv or linear).
        bias: The layer's bias, or None.
        bn: The BatchNorm applied to the layer's output; its running statistics are used.

    Returns:
        The fused ``(weight, bias)``: ``W·γ/σ`` and ``β + (b − μ)·γ/σ`` with ``σ = sqrt(var + eps)``.
    """
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    b = torch.zeros_like(bn.running_mean) if bias is None else bias
    fused_w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    fused_b = beta + (b - bn.running_mean) * scale
    return fused_w, fused_b


def equivalent_kernel_size(kernel_size: int, dilation: int) -> int:
    """Size of the dense kernel that a ``kernel_size`` kernel with ``dilation`` covers: ``(k − 1)·r + 1``."""
    return (kernel_size - 1) * dilation + 1


def dilate_kernel(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """Inserts ``dilation − 1`` zeros between the taps of a 2-D kernel.

    Args:
        weight: Kernel of shape ``(out, in_per_group, k, k)``.
        dilation: Dilation rate ``r ≥ 1``.

    Returns:
        The equivalent dense kernel of side ``(k − 1)·r + 1``; a conv with it (dilation 1) equals the dilated conv.
    """
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if dilation == 1:
        return weight
    out_c, in_c, kh, kw = weight.shape
    dense = weight.new_zeros(out_c, in_c, equivalent_kernel_size(kh, dilation), equivalent_kernel_size(kw, dilation))
    dense[:, :, ::dilation, ::dilation] = weight
    return dense


def pad_kernel_to(weight: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Zero-pads a centred kernel symmetrically to ``size`` (both differences must be even)."""
    th, tw = (size, size) if isinstance(size, int) else size
    kh, kw = weight.shape[-2:]
    if (th - kh) % 2 or (tw - kw) % 2 or th < kh or tw < kw:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {th}x{tw}: sizes must differ by a non-negative even number")
    ph, pw = (th - kh) // 2, (tw - kw) // 2
    return F.pad(weight, (pw, pw, ph, ph))


def merge_kernels(
    large_w: torch.Tensor, large_b: torch.Tensor, small_w: torch.Tensor, small_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adds a smaller centred kernel (already dense, i.e. dilation expanded) into a larger one; biases add."""
    return large_w + pad_kernel_to(small_w, tuple(large_w.shape[-2:])), large_b + small_b
