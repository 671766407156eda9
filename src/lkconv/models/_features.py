"""Feature extraction helpers shared by every family (timm's ``feature_take_indices`` / getter semantics)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["feature_take_indices", "FeatureExtractor"]


def feature_take_indices(num_features: int, indices: int | Iterable[int] | None = None) -> list[int]:
    """Resolves ``indices``: None → all, an int n → the last n, a list → those (negative allowed)."""
    if indices is None:
        return list(range(num_features))
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"cannot take the last {indices} of {num_features} feature levels")
        return list(range(num_features - indices, num_features))
    out = []
    for i in indices:
        j = i + num_features if i < 0 else i
        if not 0 <= j < num_features:
            raise ValueError(f"feature index {i} out of range for {num_features} levels (accepted: -{num_features}..{num_features - 1})")
        out.append(j)
    return out


class FeatureExtractor(nn.Module):
    """Wraps a model so that ``forward`` returns a list of intermediate feature maps (``features_only=True``).

    The head and final norm are removed; ``feature_info`` describes the returned levels (``num_chs``,
    ``reduction``, ``module``) and offers ``channels()`` / ``reduction()`` accessors.
    """

    def __init__(self, model: nn.Module, out_indices: Iterable[int] | None = None) -> None:
        super().__init__()
        self.out_indices = feature_take_indices(len(model.feature_info), out_indices)
        model.prune_head()
        self.model = model
        self.feature_info = FeatureInfo([model.feature_info[i] for i in self.out_indices])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, intermediates_only=True, stop_early=True)


class FeatureInfo(list):
    """A list of per-level dicts with ``channels()`` and ``reduction()`` accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]
