"""GRN's formula (ConvNeXt-V2's Global Response Normalization), defined once: the GRN modules of
:mod:`lkconv.layers.norm` and the torch paths of :mod:`lkconv.ops.fused` call it, and the fused C kernels are tested
against it."""

from __future__ import annotations

import torch

__all__ = ["global_response_norm", "SUM_SQUARES_MAX_SPATIAL"]

# Spatial sizes (H*W) up to which G(x) is sqrt(sum(x^2)) instead of torch.linalg.vector_norm: its reduction kernel
# is slow for many short reductions (forward + backward, 2 threads: (64, 2, 2, 256) 3.5 ms vs 0.22 ms,
# (64, 8, 8, 64) 1.45 vs 0.61, (64, 16, 16, 64) 2.4 vs 1.8) and faster for larger maps ((64, 28, 28, 64) 7.3 vs 11.9).
SUM_SQUARES_MAX_SPATIAL = 256


def global_response_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None, channel_dim: int) -> torch.Tensor:
    """GRN's formula, the one reference definition (the fused C kernels of :mod:`lkconv.ops.fused` are tested
    against it): ``(γ·N(x) + 1)·x + β`` with ``N(x) = G(x) / (mean_c G(x) + 1e-6)`` and ``G(x)`` the per-channel L2
    norm over the two spatial dimensions (computed as ``sqrt(sum(x²))`` on maps of up to
    :data:`SUM_SQUARES_MAX_SPATIAL` positions, where that is faster; equal up to rounding, tested).

    Args:
        x: A 4-D map, channels at ``channel_dim`` (-1 for NHWC, 1 for NCHW) and the spatial dimensions elsewhere.
        gamma: Scale, broadcastable to ``x`` (shape C along ``channel_dim``).
        beta: Bias, same shape as ``gamma``, or None (folded away in the deploy structure).
        channel_dim: 1 or -1 (or 3).
    """
    if x.dim() != 4 or channel_dim not in (1, 3, -1):
        raise ValueError(f"GRN needs a 4-D map and channel_dim 1 or -1, got shape {tuple(x.shape)}, {channel_dim}")
    spatial = (2, 3) if channel_dim == 1 else (1, 2)
    if x.shape[spatial[0]] * x.shape[spatial[1]] <= SUM_SQUARES_MAX_SPATIAL:
        # the floor keeps the gradient finite where a channel is all zeros (sqrt's derivative at 0 is infinite;
        # vector_norm's backward gives 0 there): a run of the small model at 32 px, 1x1 maps in the last stage,
        # became NaN after 360 steps without it
        gx = x.square().sum(dim=spatial, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny).sqrt()
    else:
        gx = torch.linalg.vector_norm(x, ord=2, dim=spatial, keepdim=True)
    nx = gx / (gx.mean(dim=channel_dim, keepdim=True) + 1e-6)
    out = torch.addcmul(x, x, gamma * nx)  # x + x·γ·N(x) = (γ·N(x) + 1)·x in one rounding step
    return out if beta is None else out + beta
