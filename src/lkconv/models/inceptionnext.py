"""InceptionNeXt: a MetaNeXt (ConvNeXt-like) network whose token mixer is an Inception depthwise convolution.

Paper: "InceptionNeXt: When Inception Meets ConvNeXt" (CVPR 2024, arXiv:2303.16900). Reference code:
sail-sg/inceptionnext (Apache-2.0). This is an independent implementation; its state_dict keys follow the reference
(``stem.{0,1}``, ``stages.i.downsample.{0,1}``, ``stages.i.blocks.j.{token_mixer.dwconv_{hw,w,h}, norm, mlp.fc1,
mlp.fc2, gamma}``, ``head.{fc1, norm, fc2}``).

Block: ``x + DropPath(γ ⊙ MLP(BN(mixer(x))))``, MLP = 1x1 conv - GELU - 1x1 conv. Stem 4x4 stride-4 conv + BN;
downsampling BN + 2x2 stride-2 conv; head: global average pool -> Linear(3C) -> GELU -> LayerNorm -> Linear.

Layout: blocks, then the model, then the variant table and registered constructors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers.conv_bn import fold_preceding_bn
from ..layers.drop import DropPath
from ..layers.inception_dw import InceptionDWConv2d
from ._base import StagedConvNet
from ._registry import register_model

__all__ = ["InceptionNeXt", "MetaNeXtBlock", "MetaNeXtStage", "ConvMlp", "MlpHead"]


class ConvMlp(nn.Module):
    """1x1 conv -> GELU -> 1x1 conv on NCHW maps (children ``fc1``, ``act``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.fc1 = nn.Conv2d(dim, hidden, 1, **dd)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MlpHead(nn.Module):
    """Pooled features -> ``fc1`` (``mlp_ratio · C``) -> GELU -> LayerNorm -> dropout -> ``fc2`` (classes).

    ``fc2`` is ``nn.Identity`` when ``num_classes`` is 0; ``pre_logits`` stops before it.
    """

    def __init__(self, dim: int, num_classes: int, mlp_ratio: float = 3.0, drop: float = 0.0, *, device=None,
                 dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.hidden = int(mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, self.hidden, **dd)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(self.hidden, eps=1e-6, **dd)
        self.drop = nn.Dropout(drop)
        self.fc2: nn.Module = nn.Linear(self.hidden, num_classes, **dd) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.norm(self.act(self.fc1(x))))
        return x if pre_logits else self.fc2(x)


class MetaNeXtBlock(nn.Module):
    """``x + DropPath(γ ⊙ MLP(BN(token_mixer(x))))``.

    Args:
        dim: Channels.
        token_mixer: The spatial mixer module (built by the caller).
        mlp_ratio: MLP hidden width ratio.
        layer_scale_init_value: Initial γ (None or 0: no layer scale).
        drop_path: Stochastic depth rate.
    """

    def __init__(
        self,
        dim: int,
        token_mixer: nn.Module,
        mlp_ratio: float = 4.0,
        layer_scale_init_value: float | None = 1e-6,
        drop_path: float = 0.0,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.token_mixer = token_mixer
        self.norm = nn.BatchNorm2d(dim, **dd)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), **dd)
        self.gamma: nn.Parameter | None
        if layer_scale_init_value:
            self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim, **dd))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @torch.no_grad()
    def inference_form(self) -> nn.Module:
        """Itself with the BatchNorm folded into ``mlp.fc1`` and γ into ``mlp.fc2`` (exact in eval mode; in place).

        Part of the inference-form protocol (:mod:`lkconv.deploy.optimize`): called on an inference-only copy.
        """
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            fold_preceding_bn(self.mlp.fc1, self.norm)
            self.norm = nn.Identity()
        if self.gamma is not None:
            fc2 = self.mlp.fc2
            fc2.weight.mul_(self.gamma.view(-1, 1, 1, 1))
            fc2.bias.mul_(self.gamma)
            self.gamma = None
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class MetaNeXtStage(nn.Module):
    """``downsample`` (BN + 2x2 stride-2 conv, or identity for the first stage) then ``blocks``."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class InceptionNeXt(StagedConvNet):
    """InceptionNeXt backbone with an MLP classification head.

    Args:
        in_chans: Input channels.
        num_classes: Classifier outputs (0: ``forward`` returns the head's hidden features, ``head_hidden_size``).
        depths: Blocks per stage.
        dims: Channels per stage.
        band_kernel_size: Length of the Inception mixer's band kernels (1 x k and k x 1).
        square_kernel_size: Side of its square kernel.
        branch_ratio: Fraction of channels per convolution branch of the mixer.
        mlp_ratios: MLP ratio per stage.
        head_mlp_ratio: Hidden width of the head relative to the last stage width.
        layer_scale_init_value: Initial layer scale γ.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth, rising linearly over the blocks from 0.
        deploy: Accepted for a uniform interface; InceptionNeXt has nothing to re-parameterize.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        band_kernel_size: int = 11,
        square_kernel_size: int = 3,
        branch_ratio: float = 0.125,
        mlp_ratios: Sequence[float] = (4, 4, 4, 3),
        head_mlp_ratio: float = 3.0,
        layer_scale_init_value: float | None = 1e-6,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        deploy: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        depths, dims, mlp_ratios = tuple(depths), tuple(dims), tuple(mlp_ratios)
        if not (len(depths) == len(dims) == len(mlp_ratios) == 4):
            raise ValueError(f"depths, dims and mlp_ratios need 4 entries each, got {depths}, {dims}, {mlp_ratios}")
        if in_chans < 1 or num_classes < 0:
            raise ValueError(f"in_chans must be >= 1 and num_classes >= 0, got {in_chans}, {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.in_chans, self.num_classes, self.depths, self.dims = in_chans, num_classes, depths, dims
        self.num_features = dims[-1]
        self.default_input_size = (in_chans, 224, 224)
        self.drop_rate = drop_rate

        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4, **dd), nn.BatchNorm2d(dims[0], **dd))
        n_blocks = sum(depths)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            if i == 0:
                downsample: nn.Module = nn.Identity()
            else:
                downsample = nn.Sequential(
                    nn.BatchNorm2d(dims[i - 1], **dd), nn.Conv2d(dims[i - 1], dims[i], 2, 2, **dd)
                )
            blocks = [
                MetaNeXtBlock(
                    dims[i],
                    InceptionDWConv2d(dims[i], square_kernel_size, band_kernel_size, branch_ratio, **dd),
                    mlp_ratios[i], layer_scale_init_value, rates[cur + j], **dd,
                )
                for j in range(depths[i])
            ]
            self.stages.append(MetaNeXtStage(downsample, blocks))
            cur += depths[i]
        self.feature_info = [{"num_chs": dims[i], "reduction": 4 * 2**i, "module": f"stages.{i}"} for i in range(4)]
        self.norm = nn.Identity()  # the head holds the final norm
        self.head_mlp_ratio = head_mlp_ratio
        self.head: nn.Module = MlpHead(dims[-1], num_classes, head_mlp_ratio, drop_rate, **dd)
        self.head_hidden_size = self.head.hidden
        self.apply(_init_weights)

    # --- protocol overrides -------------------------------------------------------------------------------
    def _run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            x = self.stem(x)
        stage: MetaNeXtStage = self.stages[i]
        x = stage.downsample(x)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in stage.blocks:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return stage.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool then the MLP head; ``pre_logits`` returns the head's hidden features (3C)."""
        x = self.norm(x.mean(dim=(-2, -1)))
        if isinstance(self.head, MlpHead):
            return self.head(x, pre_logits=pre_logits)
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head.fc2 if isinstance(self.head, MlpHead) else self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the last layer of the MLP head (0: identity, ``forward`` returns the 3C hidden features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if not isinstance(self.head, MlpHead):  # pruned head: fall back to a plain classifier on the features
            super().reset_classifier(num_classes)
            return
        ref = self.head.fc1.weight
        self.num_classes = num_classes
        if num_classes > 0:
            fc2 = nn.Linear(self.head.hidden, num_classes, device=ref.device, dtype=ref.dtype)
            _init_weights(fc2)
            self.head.fc2 = fc2
        else:
            self.head.fc2 = nn.Identity()

    def prune_head(self) -> None:
        """Drops the whole MLP head (feature extraction); ``forward`` then returns pooled features (C)."""
        super().prune_head()
        self.head_hidden_size = self.num_features

    def no_weight_decay(self) -> set[str]:
        """Layer scales."""
        return {n for n, _ in self.named_parameters() if n.endswith(".gamma")}

    def group_matcher(self, coarse: bool = False) -> dict:
        return {
            "stem": r"^stem\.",
            "blocks": r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample\.", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)\.", None),
            ],
        }

    def post_step(self) -> None:
        """Hook for the trainer after each optimizer step (nothing to do for InceptionNeXt)."""

    def stage_summary(self) -> list[dict]:
        return [{"stage": i, "depth": self.depths[i], "width": self.dims[i], "reduction": 4 * 2**i} for i in range(4)]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# --- variants --------------------------------------------------------------------------------------------
_VARIANTS: dict[str, dict] = {
    "atto": {"depths": (2, 2, 6, 2), "dims": (40, 80, 160, 320), "band_kernel_size": 9, "branch_ratio": 0.25},
    "tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)},
    "small": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768)},
    "base": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024)},
}


def _create(variant: str, **kwargs) -> InceptionNeXt:
    return InceptionNeXt(**{**_VARIANTS[variant], **kwargs})


@register_model
def inception_next_atto(**kwargs) -> InceptionNeXt:
    return _create("atto", **kwargs)


@register_model
def inception_next_tiny(**kwargs) -> InceptionNeXt:
    return _create("tiny", **kwargs)


@register_model
def inception_next_small(**kwargs) -> InceptionNeXt:
    return _create("small", **kwargs)


@register_model
def inception_next_base(**kwargs) -> InceptionNeXt:
    return _create("base", **kwargs)
