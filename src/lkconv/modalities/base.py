"""The adapter interface: a module that maps a raw batch of one modality to a B×C×H×W map for the backbone."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ModalityAdapter", "PerceptionModel"]


class ModalityAdapter(nn.Module):
    """Base of every adapter.

    Subclasses set ``out_chans`` (the backbone's ``in_chans``) and implement ``forward(raw) -> (B, C, H, W)``.
    ``config()`` returns the keyword arguments that rebuild the adapter (saved in a run's ``config.json``).
    Train-time augmentation that acts on whole batches runs only in ``training`` mode.
    """

    name: str = ""
    out_chans: int

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def postprocess(self, output: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Maps the backbone's output back using the raw batch (e.g. undoing a per-window normalisation so a
        forecast comes out in the data's units). Identity by default."""
        return output

    def output_shape(self, raw_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of ``forward`` for a raw batch of ``raw_shape`` (one eval-mode pass on zeros)."""
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                return tuple(self(torch.zeros(raw_shape)).shape)
        finally:
            self.train(was)


class PerceptionModel(nn.Module):
    """``backbone(adapter(raw))``: one network for any modality. ``backbone`` follows the model protocol."""

    def __init__(self, adapter: ModalityAdapter, backbone: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.backbone = backbone

    def _backbone_input(self, raw: torch.Tensor) -> torch.Tensor:
        # Adapters may compute in fp32 whatever the input (e.g. audio filterbanks); a backbone cast to bf16/fp16
        # (optimize_for_inference) takes its own dtype.
        x = self.adapter(raw)
        p = next(self.backbone.parameters(), None)
        if p is not None and x.is_floating_point() and x.dtype != p.dtype:
            x = x.to(p.dtype)
        return x

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.adapter.postprocess(self.backbone(self._backbone_input(raw)), raw)

    def forward_features(self, raw: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self._backbone_input(raw))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)
