"""The model protocol shared by the staged ConvNet families.

A family sets ``downsample_layers`` (one per stage; the first is the stem), ``stages`` (each an
``nn.Sequential`` of blocks), ``norm``, ``head``, ``num_features`` and ``feature_info``; this base supplies
``forward_features``, ``forward_head``, ``forward_intermediates``, ``reset_classifier``, ``prune_head``,
``set_grad_checkpointing``, ``no_weight_decay`` and ``group_matcher``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._features import feature_take_indices

__all__ = ["StagedConvNet"]


class StagedConvNet(nn.Module):
    downsample_layers: nn.ModuleList
    stages: nn.ModuleList
    norm: nn.Module
    head: nn.Module
    num_classes: int
    num_features: int
    feature_info: list[dict]

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    # --- forward ---------------------------------------------------------------------------------
    def _run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample_layers[i](x)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in self.stages[i]:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return self.stages[i](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: the unpooled last feature map (B, num_features, H/32, W/32)."""
        for i in range(len(self.stages)):
            x = self._run_stage(i, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, final norm and classifier; ``pre_logits`` stops before the classifier."""
        x = self.norm(x.mean(dim=(-2, -1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Iterable[int] | None = None,
        *,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs at ``indices`` (None: all; int n: last n; list: those).

        Returns:
            The list of intermediates if ``intermediates_only``, else ``(final_features, intermediates)``.
        """
        take = feature_take_indices(len(self.stages), indices)
        last = max(take) if (stop_early or intermediates_only) else len(self.stages) - 1
        intermediates = []
        for i in range(last + 1):
            x = self._run_stage(i, x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    # --- head -------------------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the classifier (0 → identity: ``forward`` returns pooled, normalised features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        ref = next(self.parameters())
        self.num_classes = num_classes
        self.head = (
            nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
            if num_classes > 0
            else nn.Identity()
        )
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def prune_head(self) -> None:
        """Drops the final norm and classifier (feature extraction)."""
        self.num_classes = 0
        self.norm = nn.Identity()
        self.head = nn.Identity()

    # --- training helpers -------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass to save memory (outputs are unchanged)."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameter names exempt from weight decay beyond 1-D tensors and biases (subclasses extend)."""
        return set()

    def group_matcher(self, coarse: bool = False) -> dict:
        """Regexes that group parameters by depth, for layer-wise learning-rate decay (timm's format)."""
        return {
            "stem": r"^downsample_layers\.0\.",
            "blocks": r"^stages\.(\d+)"
            if coarse
            else [
                (r"^downsample_layers\.(\d+)\.", (0,)),
                (r"^stages\.(\d+)\.(\d+)\.", None),
                (r"^norm\.", (99999,)),
            ],
        }
