"""Semantic segmentation network: a registered 2-D backbone's stages, normalised, under a UPerNet head.

State-dict layout (what MMSegmentation's ``EncoderDecoder`` saves, so the reference's ADE20K checkpoints load
strictly with :func:`load_mmseg_checkpoint`)::

    backbone.<the family's own keys>      stem, downsampling layers, stages
    backbone.norm{i}.weight/bias          per-stage LayerNorm (channels first), as the reference's feature mode
    decode_head.*                         UPerHead (see lkconv.models.heads.upernet)
    auxiliary_head.*                      FCNHead on the third stage (training only)

``forward`` returns logits at the input's resolution; in training mode with an auxiliary head it returns
``(logits, auxiliary_logits)``, both at the input's resolution.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..layers.norm import LayerNorm2d
from ._checkpoint import CheckpointMismatchError, read_torch_file
from ._registry import create_model
from .heads.upernet import FCNHead, UPerHead, resize

__all__ = ["SegmentationNet", "segmentation_model", "default_head_channels", "load_mmseg_checkpoint",
           "AUX_STAGE", "REFERENCE_HEAD_CHANNELS"]

#: The reference's UPerNet width (mmseg ``upernet_r50``); its auxiliary FCN head has half of it (256).
REFERENCE_HEAD_CHANNELS = 512
#: The stage the auxiliary head reads (0-based: the third, stride 16).
AUX_STAGE = 2


def default_head_channels(backbone_width: int) -> int:
    """Head width for a backbone whose last stage has ``backbone_width`` channels: the reference's 512 for wide
    backbones (UniRepLKNet-T and up, whose ADE20K checkpoints then load), half the last stage's width for narrower
    ones, at least 32 — a 512-wide head on a 128-wide backbone would hold most of the parameters and time (the
    fused pyramid runs at a quarter of the input resolution)."""
    if backbone_width >= REFERENCE_HEAD_CHANNELS:
        return REFERENCE_HEAD_CHANNELS
    return int(max(32, backbone_width // 2))


class SegmentationNet(nn.Module):
    """Backbone stages → per-stage norms → UPerHead, upsampled to the input size (plus the auxiliary FCN head).

    Args:
        backbone: A staged 2-D model (the model protocol of :mod:`lkconv.models._base`); its classifier and final
            norm are removed here.
        num_classes: Output classes.
        head_channels: UPerHead width (None: :func:`default_head_channels`).
        aux_channels: Auxiliary FCN head width (None: half the head width; 0: no auxiliary head).
        pool_scales: Pyramid pooling sizes.
        dropout: Dropout2d before both classifiers.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, head_channels: int | None = None,
                 aux_channels: int | None = None, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 dropout: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 for segmentation, got {num_classes}")
        info = getattr(backbone, "feature_info", None)
        if not info or not hasattr(backbone, "forward_intermediates"):
            raise ValueError(f"{type(backbone).__name__} has no per-stage features (feature_info / "
                             "forward_intermediates); segmentation needs a staged 2-D backbone")
        widths = [int(f["num_chs"]) for f in info]
        backbone.prune_head()
        for i, width in enumerate(widths):  # the reference's feature mode: norm0..norm3 on the backbone
            backbone.add_module(f"norm{i}", LayerNorm2d(width))
        head_channels = default_head_channels(widths[-1]) if head_channels is None else int(head_channels)
        aux_channels = head_channels // 2 if aux_channels is None else int(aux_channels)
        self.backbone = backbone
        self.num_classes, self.widths = num_classes, widths
        self.decode_head = UPerHead(widths, head_channels, num_classes, pool_scales, dropout)
        self.auxiliary_head = (FCNHead(widths[AUX_STAGE], aux_channels, num_classes, dropout)
                               if aux_channels > 0 and len(widths) > AUX_STAGE else None)
        self.num_features = widths[-1]
        self._init_heads()

    def _init_heads(self) -> None:
        for head in (self.decode_head, self.auxiliary_head):
            if head is None:
                continue
            for m in head.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            nn.init.normal_(head.conv_seg.weight, std=0.01)  # the classifiers start near zero, as mmseg's

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The normalised outputs of every stage (fine to coarse)."""
        feats = self.backbone.forward_intermediates(x, intermediates_only=True)
        return [getattr(self.backbone, f"norm{i}")(f) for i, f in enumerate(feats)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's normalised map (what analysis tools look at)."""
        return self.stage_features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.stage_features(x)
        out = resize(self.decode_head(feats), size)
        if self.training and self.auxiliary_head is not None:
            return out, resize(self.auxiliary_head(feats[AUX_STAGE]), size)
        return out

    # --- the model protocol the engine uses ----------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        own = self.backbone.no_weight_decay() if hasattr(self.backbone, "no_weight_decay") else set()
        return {f"backbone.{n}" for n in own}

    def post_step(self) -> None:
        step = getattr(self.backbone, "post_step", None)
        if callable(step):
            step()


def segmentation_model(model_name: str, *, num_classes: int, head_channels: int | None = None,
                       aux_channels: int | None = None, pool_scales: Sequence[int] = (1, 2, 3, 6),
                       dropout: float = 0.1, **backbone_args: Any) -> SegmentationNet:
    """A :class:`SegmentationNet` on the registered backbone ``model_name`` (``backbone_args``: ``in_chans``,
    ``drop_path_rate``, ``depths``, ``dims``, ``kernel_sizes``, ``deploy``, … as for ``create_model``)."""
    backbone = create_model(model_name, num_classes=0, **backbone_args)
    net = SegmentationNet(backbone, num_classes, head_channels=head_channels, aux_channels=aux_channels,
                          pool_scales=pool_scales, dropout=dropout)
    net.model_name = model_name
    net.model_args = {"num_classes": num_classes, "head_channels": head_channels, "aux_channels": aux_channels,
                      **backbone_args}
    return net


def load_mmseg_checkpoint(net: SegmentationNet, path: str | os.PathLike) -> dict[str, Any]:
    """Loads an MMSegmentation ``EncoderDecoder`` checkpoint (``{"meta", "state_dict", ...}`` or a bare state
    dict with ``backbone.*`` / ``decode_head.*`` / ``auxiliary_head.*`` keys) into ``net``, strictly, reading the
    file with ``weights_only=True``. Returns the file's ``meta`` (empty when it has none): class names
    (``CLASSES``), palette, versions.

    Raises:
        CheckpointMismatchError: naming the missing and unexpected keys and the shape mismatches.
    """
    obj = read_torch_file(path)
    if not isinstance(obj, dict):
        raise CheckpointMismatchError(f"{path} holds a {type(obj).__name__}, not an mmseg checkpoint")
    sd = obj.get("state_dict", obj)
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    own = net.state_dict()
    if net.auxiliary_head is None:  # an inference-only net takes a checkpoint that has the auxiliary head
        sd = {k: v for k, v in sd.items() if not k.startswith("auxiliary_head.")}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")

        parts = [f"checkpoint {path} does not fit the segmentation network "
                 f"({getattr(net, 'model_name', type(net.backbone).__name__)}, {net.num_classes} classes)"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", shapes)):
            if items:
                parts.append(f"{label}: {show(items)}")
        raise CheckpointMismatchError("\n".join(parts))
    net.load_state_dict(sd, strict=True)
    meta = obj.get("meta", {}) if "state_dict" in obj else {}
    return meta if isinstance(meta, dict) else {}
