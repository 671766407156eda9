"""Sequence classifiers built on global (sequence-long) convolutions: SGConv and long convolutions.

``SequenceConvNet``: a Conv1d embedding (``stem``), ``depth`` pre-norm residual blocks
``x + DropPath(mixer(LN(x)))``, ``x + DropPath(MLP(LN(x)))`` with the mixer an :class:`lkconv.layers.sgconv.SGConv`
or a :class:`lkconv.layers.longconv.LongConv`, then mean pooling over time, LayerNorm and a Linear classifier.
Input ``(B, C, L)``, or a map ``(B, C', H, W)`` with ``C'·H = C`` read as a sequence along W (so the audio
adapter's log-mel map is a sequence of frames with the mel bins as channels); features stay ``(B, dim, L)`` (no
downsampling). It follows the model protocol where it applies:
``forward_features``/``forward_head``/``forward_intermediates`` (over blocks), ``feature_info`` (reduction 1),
``reset_classifier``, ``prune_head``, ``set_grad_checkpointing``, ``group_matcher``, ``features_only``.

Layout: blocks, then the model, then the variant table and registered constructors.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers.drop import DropPath
from ..layers.longconv import LongConv
from ..layers.sgconv import SGConv
from ._base import StagedConvNet
from ._features import feature_take_indices
from ._registry import register_model

__all__ = ["SequenceConvNet", "SequenceBlock", "SEQUENCE_MIXERS"]

SEQUENCE_MIXERS = ("sgconv", "longconv")


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, L)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class SequenceBlock(nn.Module):
    """``x + DropPath(mixer(LN(x)))`` then ``x + DropPath(fc2(GELU(fc1(LN(x)))))`` on ``(B, dim, L)``.

    Args:
        dim: Channels.
        mixer: ``"sgconv"`` or ``"longconv"``.
        max_len: Longest sequence the mixer's kernel is built for.
        mlp_ratio: MLP hidden width ratio.
        drop_path: Stochastic depth rate.
        bidirectional: Non-causal mixer (a causal and an anti-causal kernel).
        mixer_kwargs: Extra arguments for the mixer layer.
    """

    def __init__(
        self,
        dim: int,
        mixer: str = "sgconv",
        max_len: int = 1024,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
        bidirectional: bool = True,
        mixer_kwargs: dict | None = None,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if mixer not in SEQUENCE_MIXERS:
            raise ValueError(f"mixer must be one of {SEQUENCE_MIXERS}, got {mixer!r}")
        kw = {"bidirectional": bidirectional, **(mixer_kwargs or {}), **dd}
        self.norm1 = _ChannelLayerNorm(dim, **dd)
        self.mixer: nn.Module = SGConv(dim, max_len, **kw) if mixer == "sgconv" else LongConv(dim, max_len, **kw)
        self.norm2 = _ChannelLayerNorm(dim, **dd)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Conv1d(dim, hidden, 1, **dd)
        self.act = nn.GELU()
        self.fc2 = nn.Conv1d(hidden, dim, 1, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def inference_form(self) -> nn.Module:
        """Itself: LayerNorms, a global convolution and an MLP: nothing to fuse. Inference-form protocol, see :mod:`lkconv.deploy.optimize`."""
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.fc2(self.act(self.fc1(self.norm2(x)))))


class SequenceConvNet(StagedConvNet):
    """Global-convolution sequence classifier (see the module docstring).

    Args:
        in_chans: Input channels C of the ``(B, C, L)`` input.
        num_classes: Classifier outputs (0: no classifier).
        dim: Model width.
        depth: Residual blocks.
        mixer: ``"sgconv"`` or ``"longconv"``.
        max_len: Longest sequence the kernels are built for (longer inputs see zero-padded kernels).
        mlp_ratio: MLP hidden width ratio.
        embed_kernel_size: Kernel of the Conv1d embedding (odd; "same" padding).
        bidirectional: Non-causal mixers (the default for classification).
        drop_path_rate: Stochastic depth, rising linearly over the blocks from 0.
        mixer_kwargs: Extra arguments for every mixer layer (e.g. ``kernel_dim`` for SGConv).
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 1000,
        dim: int = 128,
        depth: int = 4,
        mixer: str = "sgconv",
        max_len: int = 1024,
        mlp_ratio: float = 2.0,
        embed_kernel_size: int = 1,
        bidirectional: bool = True,
        drop_path_rate: float = 0.0,
        mixer_kwargs: dict | None = None,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if mixer not in SEQUENCE_MIXERS:
            raise ValueError(f"mixer must be one of {SEQUENCE_MIXERS}, got {mixer!r}")
        if in_chans < 1 or num_classes < 0 or dim < 1 or depth < 1 or max_len < 1:
            raise ValueError(f"in_chans, dim, depth and max_len must be >= 1 and num_classes >= 0, got in_chans="
                             f"{in_chans}, dim={dim}, depth={depth}, max_len={max_len}, num_classes={num_classes}")
        if embed_kernel_size < 1 or embed_kernel_size % 2 == 0:
            raise ValueError(f"embed_kernel_size must be a positive odd integer, got {embed_kernel_size}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.in_chans, self.num_classes, self.dim, self.depth = in_chans, num_classes, dim, depth
        self.mixer, self.max_len = mixer, max_len
        self.num_features = dim
        self.default_input_size = (in_chans, max_len)

        self.stem = nn.Conv1d(in_chans, dim, embed_kernel_size, padding=embed_kernel_size // 2, **dd)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            SequenceBlock(dim, mixer, max_len, mlp_ratio, rates[i], bidirectional, mixer_kwargs, **dd)
            for i in range(depth)
        )
        self.feature_info = [{"num_chs": dim, "reduction": 1, "module": f"blocks.{i}"} for i in range(depth)]
        self.norm = nn.LayerNorm(dim, **dd)
        self.head = nn.Linear(dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # --- protocol overrides -------------------------------------------------------------------------------
    def _run_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            x = self.stem(x)
        block = self.blocks[i]
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(B, in_chans, L)``; a 2-D map ``(B, C, H, W)`` with ``C·H == in_chans`` is read as a sequence
        along W with C·H channels (a spectrogram's mel bins, an image's rows), so 2-D modality adapters feed it."""
        if x.dim() == 4 and x.shape[1] * x.shape[2] == self.in_chans:
            return x.flatten(1, 2)
        if x.dim() != 3 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input (B, {self.in_chans}, L) or a map (B, C, H, W) with C·H = "
                             f"{self.in_chans}, got {tuple(x.shape)}")
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding and blocks: ``(B, dim, L)``."""
        x = self._check_input(x)
        for i in range(self.depth):
            x = self._run_block(i, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean over time, LayerNorm, classifier."""
        x = self.norm(x.mean(dim=-1))
        return x if pre_logits else self.head(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Iterable[int] | None = None,
        *,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Block outputs ``(B, dim, L)`` at ``indices`` (None: all; int n: last n; list: those)."""
        x = self._check_input(x)
        take = feature_take_indices(self.depth, indices)
        last = max(take) if (stop_early or intermediates_only) else self.depth - 1
        intermediates = []
        for i in range(last + 1):
            x = self._run_block(i, x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def no_weight_decay(self) -> set[str]:
        """The mixers' kernel parameters and skip weights (regularised by their own structure, not by decay)."""
        return {n for n, _ in self.named_parameters() if n.endswith((".mixer.kernel", ".mixer.D"))}

    def group_matcher(self, coarse: bool = False) -> dict:
        return {
            "stem": r"^stem\.",
            "blocks": r"^blocks\.(\d+)" if coarse else [(r"^blocks\.(\d+)\.", None), (r"^norm\.", (99999,))],
        }

    def post_step(self) -> None:
        """Hook for the trainer after each optimizer step (nothing to do here)."""


# --- variants --------------------------------------------------------------------------------------------
_VARIANTS: dict[str, dict] = {
    "sgconvnet_tiny": {"mixer": "sgconv", "dim": 128, "depth": 4, "max_len": 1024},
    "longconvnet_tiny": {"mixer": "longconv", "dim": 128, "depth": 4, "max_len": 1024},
}


def _create(variant: str, **kwargs) -> SequenceConvNet:
    return SequenceConvNet(**{**_VARIANTS[variant], **kwargs})


@register_model
def sgconvnet_tiny(**kwargs) -> SequenceConvNet:
    return _create("sgconvnet_tiny", **kwargs)


@register_model
def longconvnet_tiny(**kwargs) -> SequenceConvNet:
    return _create("longconvnet_tiny", **kwargs)
