"""Statistics and pictures of the learned depthwise kernels of a model.

A depthwise conv is an ``nn.Conv2d`` (or ``nn.Conv1d``) with ``groups == in_channels > 1`` and a kernel of more than one
tap. Each of its ``out_channels`` filters is one kh x kw kernel. In a model that is not re-parameterized, every branch
of a Dilated Reparam Block is its own depthwise conv; pass ``reparameterize=True`` (or a model already passed through
``lkconv.reparameterize_model``) to see the merged large kernels instead.

Rules behind the statistics (per layer, all filters of the layer together):

- ``mean_l2_norm``: mean over filters of the filter's L2 norm.
- ``sparsity``: share of weights with ``|w| < sparsity_rtol * max|w|``, the max over the whole layer (1e-3 by
  default); a layer of zeros has sparsity 1.
- ``degenerate_share``: share of filters whose L2 norm is ``<= degenerate_rtol * median`` filter norm of the layer
  (1e-2 by default). The ``<=`` makes an all-zero filter degenerate even when the median itself is 0.
- ``spectral_entropy``: for each filter, the power spectrum ``P = |FFT2(w)|**2`` on the kernel's own kh x kw grid (no
  padding), ``p = P / sum(P)``, entropy ``-sum(p log p) / log(kh * kw)`` in [0, 1]: 1 for a flat spectrum (a delta
  kernel, all frequencies), 0 for a single frequency (a constant box filter, only DC). Averaged over the non-zero
  filters; ``None`` if all filters are zero.
- ``effective_radius``: for each filter, the smallest Euclidean distance r (in taps, from the kernel centre, dilation
  not applied) such that taps within distance r hold at least ``mass`` (90 %) of ``sum |w|``; averaged over the
  non-zero filters. ``effective_radius_ratio`` divides it by the half-width ``(max(kh, kw) - 1) / 2``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["depthwise_convs", "depthwise_kernels", "filter_stats", "kernel_stats", "plot_kernels"]


def _is_depthwise(module: nn.Module, min_kernel_size: int) -> bool:
    if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return False
    return module.groups == module.in_channels > 1 and max(module.kernel_size) >= min_kernel_size


def depthwise_convs(model: nn.Module, *, min_kernel_size: int = 2) -> list[tuple[str, nn.Conv1d | nn.Conv2d]]:
    """Lists the depthwise convs of a model in module order.

    Args:
        model: Any module.
        min_kernel_size: Smallest largest kernel side to include (2 leaves out 1x1 depthwise convs).

    Returns:
        ``(qualified name, module)`` pairs.
    """
    if min_kernel_size < 1:
        raise ValueError(f"min_kernel_size must be >= 1, got {min_kernel_size}")
    return [(name, m) for name, m in model.named_modules() if _is_depthwise(m, min_kernel_size)]


def _kernels(conv: nn.Conv1d | nn.Conv2d) -> np.ndarray:
    """The filters of a depthwise conv as an (N, kh, kw) float64 array (a Conv1d gives kh = 1)."""
    weight = conv.weight.detach().to("cpu", torch.float64).numpy()
    return weight.reshape(weight.shape[0], -1, weight.shape[-1])


def _maybe_reparameterize(model: nn.Module, reparameterize: bool) -> nn.Module:
    if not reparameterize:
        return model
    from lkconv import reparameterize_model  # lazily: analysis must not fix the import order of the package

    fused = copy.deepcopy(model)
    result = reparameterize_model(fused)
    return result if isinstance(result, nn.Module) else fused


def depthwise_kernels(
    model: nn.Module, *, min_kernel_size: int = 2, reparameterize: bool = False
) -> dict[str, np.ndarray]:
    """The kernels of every depthwise conv, keyed by module name.

    Args:
        model: Any module.
        min_kernel_size: See :func:`depthwise_convs`.
        reparameterize: Run ``lkconv.reparameterize_model`` on a copy first, to get the merged kernels.

    Returns:
        ``{name: (N, kh, kw) float64 array}``.
    """
    model = _maybe_reparameterize(model, reparameterize)
    return {name: _kernels(conv) for name, conv in depthwise_convs(model, min_kernel_size=min_kernel_size)}


def _spectral_entropy(kernel: np.ndarray) -> float:
    power = np.abs(np.fft.fft2(kernel)) ** 2
    p = power.ravel() / power.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(kernel.size))


def _effective_radius(kernel: np.ndarray, mass: float) -> float:
    kh, kw = kernel.shape
    yy, xx = np.mgrid[:kh, :kw]
    distance = np.hypot(yy - (kh - 1) / 2, xx - (kw - 1) / 2).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(np.abs(kernel).ravel()[order])
    # The tolerance keeps rounding in the cumulative sum from pushing mass = 1.0 past the last tap.
    index = int(np.argmax(cumulative >= mass * cumulative[-1] * (1 - 1e-12)))
    return float(distance[order][index])


def filter_stats(
    kernels: np.ndarray | torch.Tensor,
    *,
    sparsity_rtol: float = 1e-3,
    degenerate_rtol: float = 1e-2,
    mass: float = 0.9,
) -> dict[str, Any]:
    """Statistics of one layer's filters (the rules are in the module docstring).

    Args:
        kernels: (N, kh, kw) filters, or (N, k) for 1-D filters.
        sparsity_rtol: Weights below this share of the layer's largest ``|w|`` count as zero.
        degenerate_rtol: Filters with a norm up to this share of the median norm count as degenerate.
        mass: Share of ``sum |w|`` the effective radius must hold, in (0, 1].

    Returns:
        ``num_filters``, ``kernel_size`` ([kh, kw]), ``mean_l2_norm``, ``sparsity``, ``degenerate_share``,
        ``spectral_entropy``, ``effective_radius`` and ``effective_radius_ratio`` (the last three ``None`` when every
        filter is zero, the ratio also for a 1x1 kernel).
    """
    if isinstance(kernels, torch.Tensor):
        kernels = kernels.detach().to("cpu", torch.float64).numpy()
    data = np.asarray(kernels, dtype=np.float64)
    if data.ndim == 2:
        data = data[:, None, :]
    if data.ndim != 3 or data.shape[0] == 0:
        raise ValueError(f"kernels must have shape (N, kh, kw) or (N, k) with N >= 1, got {np.shape(kernels)}")
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1], got {mass}")
    num, kh, kw = data.shape
    norms = np.sqrt((data**2).sum(axis=(1, 2)))
    peak = np.abs(data).max()
    sparsity = float((np.abs(data) < sparsity_rtol * peak).mean()) if peak > 0 else 1.0
    degenerate = float((norms <= degenerate_rtol * np.median(norms)).mean())
    nonzero = [kernel for kernel, norm in zip(data, norms, strict=True) if norm > 0]
    entropy = float(np.mean([_spectral_entropy(k) for k in nonzero])) if nonzero and kh * kw > 1 else None
    radius = float(np.mean([_effective_radius(k, mass) for k in nonzero])) if nonzero else None
    half_width = (max(kh, kw) - 1) / 2
    return {
        "num_filters": num,
        "kernel_size": [kh, kw],
        "mean_l2_norm": float(norms.mean()),
        "sparsity": sparsity,
        "degenerate_share": degenerate,
        "spectral_entropy": entropy,
        "effective_radius": radius,
        "effective_radius_ratio": radius / half_width if radius is not None and half_width > 0 else None,
    }


def kernel_stats(
    model: nn.Module,
    *,
    min_kernel_size: int = 2,
    reparameterize: bool = False,
    sparsity_rtol: float = 1e-3,
    degenerate_rtol: float = 1e-2,
    mass: float = 0.9,
) -> list[dict[str, Any]]:
    """Per-layer statistics of the depthwise kernels of a model.

    Args:
        model: Any module.
        min_kernel_size: See :func:`depthwise_convs`.
        reparameterize: Run ``lkconv.reparameterize_model`` on a copy first, to measure the merged kernels.
        sparsity_rtol: See :func:`filter_stats`.
        degenerate_rtol: See :func:`filter_stats`.
        mass: See :func:`filter_stats`.

    Returns:
        One JSON-serialisable dict per depthwise conv, in module order: ``name``, ``type``, ``channels``,
        ``dilation`` ([dh, dw]), and the entries of :func:`filter_stats`.
    """
    model = _maybe_reparameterize(model, reparameterize)
    rows = []
    for name, conv in depthwise_convs(model, min_kernel_size=min_kernel_size):
        dilation = list(conv.dilation) if len(conv.dilation) == 2 else [1, conv.dilation[0]]
        stats = filter_stats(_kernels(conv), sparsity_rtol=sparsity_rtol, degenerate_rtol=degenerate_rtol, mass=mass)
        rows.append(
            {"name": name, "type": type(conv).__name__, "channels": conv.in_channels, "dilation": dilation, **stats}
        )
    return rows


def plot_kernels(
    model: nn.Module,
    path: str | Path,
    max_channels: int = 16,
    *,
    min_kernel_size: int = 2,
    reparameterize: bool = False,
    max_layers: int | None = None,
) -> Path:
    """Writes a PNG grid of depthwise kernels: one row per layer, the first ``max_channels`` filters per row.

    Args:
        model: Any module; pass a re-parameterized model (or ``reparameterize=True``) to see e.g. fused 13x13 kernels.
        path: Output file.
        max_channels: Filters shown per layer.
        min_kernel_size: See :func:`depthwise_convs`; e.g. 5 shows only the large kernels.
        reparameterize: Run ``lkconv.reparameterize_model`` on a copy first.
        max_layers: Show at most this many layers (the first ones); ``None`` shows all.

    Returns:
        The written path.

    Raises:
        ValueError: If the model has no depthwise conv with a kernel of at least ``min_kernel_size``.
        ImportError: If matplotlib is missing (``pip install lkconv[plot]``).
    """
    from lkconv.analysis.plots import plot_kernel_grid

    kernels = depthwise_kernels(model, min_kernel_size=min_kernel_size, reparameterize=reparameterize)
    if not kernels:
        raise ValueError(
            f"the model has no depthwise conv (groups == in_channels > 1) with a kernel side >= {min_kernel_size}"
        )
    if max_layers is not None:
        kernels = dict(list(kernels.items())[:max_layers])
    return plot_kernel_grid(kernels, path, max_channels=max_channels)
