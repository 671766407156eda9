"""Selective Kernel Aggregation (SKA) of LSNet, in plain PyTorch.

SKA applies a *different* small kernel at every pixel. The kernels come from the large-kernel perception branch
(LKP) as ``w`` of shape ``(B, G, K*K, H, W)``; each is shared by ``C / G`` channels, interleaved: channel ``c`` uses
kernel ``c mod G``::

    y[b, c, i, j] = sum_{u, v in [-r, r]} x[b, c, i + u, j + v] * w[b, c mod G, (u + r) * K + (v + r), i, j]

with ``r = K // 2`` and zero padding. The reference implementation is a Triton / CUDA kernel; here it is written
with tensor ops, in three equivalent formulations:

* ``"shift"`` (default) -- pad once, then accumulate ``K*K`` shifted slices times the matching weight plane with
  in-place ``addcmul_`` into one output buffer; the backward pass is written by hand the same way (a
  ``torch.autograd.Function``), so no pass keeps per-tap intermediates alive. Not twice differentiable.
* ``"shift_autograd"`` -- the same shifted sum with out-of-place ops, differentiated by autograd (supports double
  backward, but its backward scatters every tap into a zero-filled padded buffer and is several times slower).
* ``"unfold"`` -- ``F.unfold`` into ``(B, C*K*K, H*W)`` patches and a broadcast multiply-sum. Materialises a
  ``K*K`` times larger tensor.

Measured on a shared 2-core CPU with one torch thread (float32, K=3, G=C/8, medians, noisy):
at (8, 64, 56, 56) ``"shift"`` takes 6.3 ms forward / 10.8 ms backward against 15.0 / 41.0 ms for
``"shift_autograd"`` and 77.5 / 77.0 ms for ``"unfold"``; at (8, 128, 28, 28) backward 6.8 vs 15.6 ms; at
(32, 384, 7, 7) the gap closes (backward 15.2 vs 18.7 vs 16.9 ms). ``"unfold"`` never wins.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["ska", "SKA_IMPLS"]

SKA_IMPLS = ("shift", "shift_autograd", "unfold")


def _check(x: torch.Tensor, w: torch.Tensor) -> tuple[int, int]:
    """Validates shapes; returns (groups G, kernel size K)."""
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if w.dim() != 5:
        raise ValueError(f"w must have shape (B, G, K*K, H, W), got {tuple(w.shape)}")
    b, c, h, wd = x.shape
    groups, kk = w.shape[1], w.shape[2]
    ks = math.isqrt(kk)
    if ks * ks != kk or ks % 2 == 0:
        raise ValueError(f"w.shape[2] must be K*K for an odd K, got {kk}")
    if w.shape[0] != b or w.shape[3:] != (h, wd):
        raise ValueError(f"w must have shape ({b}, G, K*K, {h}, {wd}), got {tuple(w.shape)}")
    if groups < 1 or c % groups != 0:
        raise ValueError(f"the channel count {c} must be divisible by the kernel groups G={groups}")
    if w.dtype != x.dtype:
        raise ValueError(f"x and w must have the same dtype, got {x.dtype} and {w.dtype}")
    return groups, ks


def _shift_forward(x: torch.Tensor, w: torch.Tensor, groups: int, ks: int) -> torch.Tensor:
    """In-place shifted-sum forward (no autograd graph)."""
    b, c, h, wd = x.shape
    r = ks // 2
    xp = F.pad(x, (r, r, r, r)).view(b, c // groups, groups, h + 2 * r, wd + 2 * r)
    wv = w.unsqueeze(1)
    y = torch.mul(xp[..., :h, :wd], wv[:, :, :, 0])
    for t in range(1, ks * ks):
        du, dv = divmod(t, ks)
        y.addcmul_(xp[..., du : du + h, dv : dv + wd], wv[:, :, :, t])
    return y.reshape(b, c, h, wd)


class _SKAShift(torch.autograd.Function):
    """Shifted-sum SKA with a hand-written, allocation-light backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, groups: int, ks: int) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x, w)
        ctx.groups, ctx.ks = groups, ks
        return _shift_forward(x, w, groups, ks)

    @staticmethod
    @once_differentiable
    def backward(  # noqa: D102
        ctx, grad_y: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, w = ctx.saved_tensors
        groups, ks = ctx.groups, ctx.ks
        b, c, h, wd = x.shape
        r = ks // 2
        gy = grad_y.reshape(b, c // groups, groups, h, wd)
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            xp = F.pad(x, (r, r, r, r)).view(b, c // groups, groups, h + 2 * r, wd + 2 * r)
            grad_w = torch.empty(w.shape, dtype=w.dtype, device=w.device)
            for t in range(ks * ks):
                du, dv = divmod(t, ks)
                torch.sum(xp[..., du : du + h, dv : dv + wd] * gy, dim=1, out=grad_w[:, :, t])
        if ctx.needs_input_grad[0]:
            wv = w.unsqueeze(1)
            gxp = torch.zeros(b, c // groups, groups, h + 2 * r, wd + 2 * r, dtype=x.dtype, device=x.device)
            for t in range(ks * ks):
                du, dv = divmod(t, ks)
                gxp[..., du : du + h, dv : dv + wd].addcmul_(gy, wv[:, :, :, t])
            grad_x = gxp[..., r : r + h, r : r + wd].reshape(b, c, h, wd)
        return grad_x, grad_w, None, None


def _ska_shift_autograd(x: torch.Tensor, w: torch.Tensor, groups: int, ks: int) -> torch.Tensor:
    b, c, h, wd = x.shape
    r = ks // 2
    xp = F.pad(x, (r, r, r, r)).view(b, c // groups, groups, h + 2 * r, wd + 2 * r)
    wv = w.unsqueeze(1)  # (B, 1, G, K*K, H, W): broadcasts over the C/G channel copies
    y = None
    for du in range(ks):
        for dv in range(ks):
            term = xp[..., du : du + h, dv : dv + wd] * wv[:, :, :, du * ks + dv]
            y = term if y is None else y + term
    return y.reshape(b, c, h, wd)


def _ska_unfold(x: torch.Tensor, w: torch.Tensor, groups: int, ks: int) -> torch.Tensor:
    b, c, h, wd = x.shape
    patches = F.unfold(x, ks, padding=ks // 2).view(b, c // groups, groups, ks * ks, h * wd)
    y = (patches * w.reshape(b, 1, groups, ks * ks, h * wd)).sum(dim=3)
    return y.reshape(b, c, h, wd)


def ska(x: torch.Tensor, w: torch.Tensor, impl: str = "shift") -> torch.Tensor:
    """Selective kernel aggregation: a per-pixel dynamic depthwise ``K x K`` filter.

    Args:
        x: Features ``(B, C, H, W)``.
        w: Per-pixel kernels ``(B, G, K*K, H, W)`` with ``C % G == 0`` and odd ``K``; channel ``c`` uses
            ``w[:, c % G]``.
        impl: ``"shift"`` (default, fastest on CPU; once differentiable), ``"shift_autograd"`` (twice
            differentiable) or ``"unfold"``.

    Returns:
        Tensor ``(B, C, H, W)``.
    """
    if impl not in SKA_IMPLS:
        raise ValueError(f"impl must be one of {SKA_IMPLS}, got {impl!r}")
    groups, ks = _check(x, w)
    if impl == "shift":
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
            return _SKAShift.apply(x, w, groups, ks)
        return _shift_forward(x, w, groups, ks)
    if impl == "shift_autograd":
        return _ska_shift_autograd(x, w, groups, ks)
    return _ska_unfold(x, w, groups, ks)
