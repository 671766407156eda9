"""Effective receptive field (ERF), following the RepLKNet recipe.

The recipe (Ding et al., "Scaling Up Your Kernels to 31x31", CVPR 2022, the ``erf/`` scripts of RepLKNet-pytorch,
which UniRepLKNet reuses):

1. Put the model in eval mode and take its last feature map ``out`` of shape (1, C, h, w) for one input image.
2. ``s = sum_c ReLU(out[0, c, h // 2, w // 2])`` (the central output position), ``g = ds / d(input)``.
   Where ``h`` or ``w`` is even there is no central position: ``h // 2`` is the one below and right of the centre,
   and on a small map (InceptionNeXt at 64 px ends in 2 x 2) the ERF then sits in a corner of the input while the
   squares of step 4 are centred, which makes their ratios meaningless. Here ``s`` is instead the mean of ``sum_c
   ReLU(out[0, c, y, x])`` over the central rows ``y`` and columns ``x`` (two of them along an even side, one along an
   odd side; :func:`central_positions`), so the ERF is centred on the input's centre for every map size. For odd
   maps this is exactly the recipe.
3. The image's map is ``sum over input channels of ReLU(g)``, an H x W map. Maps holding NaN are skipped and the others
   are averaged over the inputs (:func:`compute_erf`).
4. Analysis (:func:`analyze_erf`): ``d = log10(map + 1)``, ``d /= d.max()``; for each threshold t, the smallest centred
   square of side ``2i + 1`` (i = 1, 2, ...) whose share of ``sum(d)`` exceeds t. The "high-contribution area ratio"
   is ``side**2 / (H * W)``.

Caveat on the normalisation (kept as in the recipe, not changed here): ``log10(map + 1)`` is not scale-invariant.
Where the raw gradients are large (map >> 1) it compresses them logarithmically, which lifts the tails and makes the
ERF look larger. Where they are tiny (map << 1, common for untrained models, small inputs, or models whose features
are small), ``log10(1 + m) ~ m / ln 10``: most pixels get ``d ~ 0`` before the max normalisation, the transform
is practically linear, and the squares come out smaller. The same model can therefore give different numbers if its
input or feature scale changes. :func:`analyze_erf` reports ``map_max`` so that a reader can see which regime a map is
in; compare ERFs only between maps computed with the same inputs and preprocessing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DEFAULT_THRESHOLDS", "analyze_erf", "central_positions", "compute_erf", "erf_transform", "noise_inputs"]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def noise_inputs(
    num_inputs: int = 8,
    *,
    in_chans: int = 3,
    size: int | tuple[int, int] = 224,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """Yields standard-normal noise images, the default ERF inputs.

    Normal noise has the scale of ImageNet-normalised images, so it stands in for data when none is at hand.

    Args:
        num_inputs: Number of images.
        in_chans: Channels per image.
        size: ``H`` or ``(H, W)``.
        seed: Seed of the generator, so that two models can be compared on the same noise.

    Yields:
        Tensors of shape (1, in_chans, H, W).
    """
    if num_inputs < 1:
        raise ValueError(f"num_inputs must be >= 1, got {num_inputs}")
    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(seed)
    for _ in range(num_inputs):
        yield torch.randn(1, in_chans, height, width, generator=generator)


def _single_images(inputs: torch.Tensor | Iterable[Any]) -> Iterator[torch.Tensor]:
    """Splits the accepted input forms into (1, C, H, W) tensors."""
    if isinstance(inputs, torch.Tensor):
        inputs = [inputs]
    for item in inputs:
        if isinstance(item, (tuple, list)):  # (image, label) pairs from a data loader
            item = item[0]
        if not isinstance(item, torch.Tensor):
            raise ValueError(f"ERF inputs must be tensors or (tensor, label) pairs, got {type(item).__name__}")
        if item.dim() == 3:
            item = item.unsqueeze(0)
        if item.dim() != 4:
            raise ValueError(f"ERF input images must be (C, H, W) or (B, C, H, W), got shape {tuple(item.shape)}")
        yield from item.split(1)


def _feature_fn(model_or_fn: nn.Module | FeatureFn) -> FeatureFn:
    forward_features = getattr(model_or_fn, "forward_features", None)
    if callable(forward_features):
        return forward_features
    if callable(model_or_fn):
        return model_or_fn
    raise ValueError(f"expected an nn.Module with forward_features or a callable, got {type(model_or_fn).__name__}")


def _infer_device(model_or_fn: nn.Module | FeatureFn) -> torch.device:
    if isinstance(model_or_fn, nn.Module):
        for tensor in model_or_fn.parameters():
            return tensor.device
    return torch.device("cpu")


def central_positions(size: int) -> slice:
    """The central index of an odd ``size``, or the two central indices of an even one, as a slice.

    Examples: 7 -> ``slice(3, 4)``; 2 -> ``slice(0, 2)``; 8 -> ``slice(3, 5)``.
    """
    if size < 1:
        raise ValueError(f"a feature map side must be >= 1, got {size}")
    return slice((size - 1) // 2, size // 2 + 1)


def _erf_one(fn: FeatureFn, image: torch.Tensor) -> torch.Tensor:
    x = image.detach().clone().requires_grad_(True)
    out = fn(x)
    if isinstance(out, torch.Tensor) and out.dim() == 3 and out.shape[0] == 1:
        out = out.unsqueeze(2)  # a sequence model's (1, C, L) features: a map of height 1
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the feature function must return a (1, C, h, w) or (1, C, L) tensor, got {shape}")
    h, w = out.shape[-2:]
    centre = torch.relu(out[0, :, central_positions(h), central_positions(w)])  # (C, 1 or 2, 1 or 2)
    score = centre.sum(dim=0).mean()
    if not score.requires_grad:
        raise ValueError("the feature map does not depend on the input through autograd (was it detached?)")
    (grad,) = torch.autograd.grad(score, x)
    return torch.relu(grad[0]).sum(dim=0)


def compute_erf(
    model_or_fn: nn.Module | FeatureFn,
    inputs: torch.Tensor | Iterable[Any] | None = None,
    *,
    num_inputs: int = 8,
    size: int | tuple[int, int] = 224,
    in_chans: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Computes the mean ERF map of a model over some inputs.

    Args:
        model_or_fn: A model with ``forward_features`` (used in eval mode; its train/eval mode is restored afterwards),
            or any callable mapping a (1, C, H, W) input to a (1, C', h, w) feature map, or to (1, C', L) features
            (a sequence model reading a map of height 1, whose ERF is then a 1 x W map).
        inputs: A (N, C, H, W) or (C, H, W) tensor, or an iterable of such tensors or of ``(image, label)`` pairs
            (a data loader). Batches are split into single images, as the recipe uses batch 1. ``None`` means
            ``num_inputs`` noise images from :func:`noise_inputs`.
        num_inputs: Number of noise images when ``inputs`` is ``None``.
        size: ``H`` or ``(H, W)`` of the noise images.
        in_chans: Channels of the noise images; ``None`` uses ``model.in_chans`` or else 3.
        seed: Seed of the noise.
        device: Device to run on; ``None`` uses the device of the model's parameters (CPU for a plain callable).

    Returns:
        The averaged H x W map (float64), non-negative. Maps holding NaN are skipped with a warning.

    Raises:
        ValueError: On malformed inputs or outputs, or when every map held NaN.
    """
    fn = _feature_fn(model_or_fn)
    if inputs is None:
        chans = in_chans if in_chans is not None else int(getattr(model_or_fn, "in_chans", 3))
        inputs = noise_inputs(num_inputs, in_chans=chans, size=size, seed=seed)
    device = torch.device(device) if device is not None else _infer_device(model_or_fn)

    was_training = model_or_fn.training if isinstance(model_or_fn, nn.Module) else None
    if isinstance(model_or_fn, nn.Module):
        model_or_fn.eval()
    total: torch.Tensor | None = None
    used = skipped = 0
    try:
        for image in _single_images(inputs):
            erf_map = _erf_one(fn, image.to(device)).detach().to("cpu", torch.float64)
            if torch.isnan(erf_map).any():
                skipped += 1
                continue
            if total is not None and total.shape != erf_map.shape:
                sizes = f"{tuple(total.shape)} and {tuple(erf_map.shape)}"
                raise ValueError(f"all ERF inputs must have the same size, got {sizes}")
            total = erf_map if total is None else total + erf_map
            used += 1
    finally:
        if isinstance(model_or_fn, nn.Module) and was_training:
            model_or_fn.train()
    if total is None:
        raise ValueError(f"no usable ERF map: {skipped} input(s), all of them gave NaN" if skipped else "no inputs")
    if skipped:
        warnings.warn(f"compute_erf skipped {skipped} of {used + skipped} maps that held NaN", stacklevel=2)
    return (total / used).numpy()


def erf_transform(erf_map: np.ndarray) -> np.ndarray:
    """The recipe's normalisation ``d = log10(map + 1) / max``, used for the analysis and the heatmaps.

    Args:
        erf_map: A non-negative H x W map from :func:`compute_erf`.

    Returns:
        ``d`` in [0, 1] (float64).

    Raises:
        ValueError: If the map is not 2-D, holds negative or non-finite values, or is all zero.
    """
    data = np.asarray(erf_map, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"an ERF map must be 2-D (H, W), got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the ERF map holds NaN or inf")
    if (data < 0).any():
        raise ValueError("the ERF map must be non-negative (it is a sum of ReLU'd gradients)")
    data = np.log10(data + 1.0)
    peak = data.max()
    if peak <= 0:
        raise ValueError("the ERF map is all zero: the central output did not depend on the input (dead ReLUs?)")
    return data / peak


def _centred_square_sums(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the centred squares of side 2i+1 (clipped to the map) for i = 1 .. max(H, W) // 2."""
    height, width = data.shape
    cy, cx = height // 2, width // 2
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = data.cumsum(0).cumsum(1)
    radii = np.arange(1, max(height, width, 2) // 2 + 1)
    top, bottom = np.maximum(cy - radii, 0), np.minimum(cy + radii + 1, height)
    left, right = np.maximum(cx - radii, 0), np.minimum(cx + radii + 1, width)
    sums = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
    areas = (bottom - top) * (right - left)
    return sums, areas


def analyze_erf(erf_map: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Measures the high-contribution area of an ERF map, as in RepLKNet's ``analyze_erf``.

    For each threshold t, the smallest centred square of side ``2i + 1`` (i = 1, 2, ...) that holds more than
    ``t * sum(d)``, with ``d`` from :func:`erf_transform`. The square is centred at ``(H // 2, W // 2)``, the position
    whose output the ERF was taken at.

    Non-square maps (and squares that would leave the map): the squares are clipped to the map, and ``i`` grows until
    the clipped square covers the whole map, so a threshold below 1 is always reached. ``side`` is then the unclipped
    side ``2i + 1`` and ``area_ratio`` the clipped area over ``H * W``. On a square map, as long as the square fits
    (side <= H), this is exactly the recipe's ``side**2 / (H * W)``; the recipe itself stops at ``i = H // 2 - 1``
    and reports nothing when the threshold is not reached by then, where this function goes on to the full map.

    Args:
        erf_map: A non-negative H x W map from :func:`compute_erf`.
        thresholds: Shares of the total in (0, 1).

    Returns:
        A JSON-serialisable dict: ``height``, ``width``, ``map_max`` and ``map_sum`` (of the raw map; see the caveat in
        the module docstring), and ``thresholds``, a list of ``{"threshold", "side", "area_ratio"}`` in the given order.

    Raises:
        ValueError: If a threshold is outside (0, 1), or the map is not valid for :func:`erf_transform`.
    """
    for t in thresholds:
        if not 0.0 < float(t) < 1.0:
            raise ValueError(f"thresholds must lie in (0, 1) (e.g. {DEFAULT_THRESHOLDS}), got {t}")
    raw = np.asarray(erf_map, dtype=np.float64)
    data = erf_transform(raw)
    height, width = data.shape
    sums, areas = _centred_square_sums(data)
    # The total is taken from the same integral image, so the full-map square has a share of exactly 1.
    shares = sums / sums[-1]
    results = []
    for t in thresholds:
        i = int(np.argmax(shares > t))  # the last square covers the whole map and has share 1 > t
        side, area_ratio = 2 * (i + 1) + 1, float(areas[i] / (height * width))
        results.append({"threshold": float(t), "side": side, "area_ratio": area_ratio})
    return {
        "height": height,
        "width": width,
        "map_max": float(raw.max()),
        "map_sum": float(raw.sum()),
        "thresholds": results,
    }
