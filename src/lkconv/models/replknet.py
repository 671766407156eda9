"""RepLKNet: depthwise kernels up to 31x31, re-parameterized with a parallel small kernel.

Paper: "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs" (CVPR 2022, arXiv:2203.06717).
Reference code: DingXiaoH/RepLKNet-pytorch (MIT). This is an independent implementation; its training-structure
state_dict keys follow the reference (``stem.i.conv/bn``, ``stages.i.blocks.j.{prelkb_bn, pw1, large_kernel.
lkb_origin, large_kernel.small_conv, pw2}`` for RepLK blocks, ``{preffn_bn, pw1, pw2}`` for ConvFFN blocks,
``transitions.i``, ``norm``, ``head``).

Deploy structure (``deploy=True`` or :func:`lkconv.reparameterize_model`): every conv-BN pair is folded (the conv
keeps its key and gains a bias), the small kernel is zero-padded into the large one (``large_kernel.lkb_reparam``,
as the reference's ``small_kernel_merged``) and the pre-block BatchNorms (``prelkb_bn``, ``preffn_bn``) are folded
into the following 1x1 convs. The reference only merges the large kernel, so its ``small_kernel_merged`` layout
(``lkb_reparam`` with the other BatchNorms kept) is not this deploy layout; its training checkpoints load here.

Large depthwise kernels (>= 17) run by FFT on the CPU (:class:`lkconv.layers.conv_bn.LargeDepthwiseConv2d`).

Layout: blocks, then the model, then the variant table and registered constructors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers.conv_bn import ConvBN, LargeDepthwiseConv2d, fold_preceding_bn
from ..layers.drop import DropPath
from ..ops.reparam import fuse_bn, pad_kernel_to
from ._base import StagedConvNet
from ._registry import register_model

__all__ = ["RepLKNet", "RepLKBlock", "ConvFFN", "ReparamLargeKernelConv", "RepLKNetStage"]


def _conv_bn(in_c: int, out_c: int, k: int, stride: int = 1, groups: int = 1, *, relu: bool = False,
             conv_layer: type[nn.Conv2d] = nn.Conv2d, norm_layer: type[nn.Module] = nn.BatchNorm2d,
             deploy: bool = False, dd: dict) -> ConvBN:
    """The reference's ``conv_bn`` / ``conv_bn_relu`` (children ``conv``, ``bn``, ``nonlinear``)."""
    return ConvBN(in_c, out_c, k, stride, k // 2, groups, act_layer=nn.ReLU if relu else None, conv_layer=conv_layer,
                  norm_layer=norm_layer, deploy=deploy, **dd)


class ReparamLargeKernelConv(nn.Module):
    """``BN(DWConv_K(x)) + BN(DWConv_k(x))`` (k the small kernel, both "same" padded) -> one K x K conv with bias.

    Args:
        channels: Channels (the convs are depthwise).
        kernel_size: Large kernel K (odd).
        small_kernel: Parallel small kernel k (odd, <= K), or None for none (RepLKNet-XL).
        deploy: Build the merged conv ``lkb_reparam`` directly.
        norm_layer: BatchNorm class.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        small_kernel: int | None = 5,
        deploy: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if small_kernel is not None and (small_kernel < 1 or small_kernel % 2 == 0 or small_kernel > kernel_size):
            raise ValueError(f"small_kernel must be None or odd and <= kernel_size={kernel_size}, got {small_kernel}")
        self.channels, self.kernel_size, self.small_kernel = channels, kernel_size, small_kernel
        self.deploy = deploy
        if deploy:
            self.lkb_reparam = LargeDepthwiseConv2d(channels, channels, kernel_size, 1, kernel_size // 2,
                                                    groups=channels, bias=True, **dd)
        else:
            self.lkb_origin = _conv_bn(channels, channels, kernel_size, groups=channels,
                                       conv_layer=LargeDepthwiseConv2d, norm_layer=norm_layer, dd=dd)
            if small_kernel is not None:
                self.small_conv = _conv_bn(channels, channels, small_kernel, groups=channels, norm_layer=norm_layer,
                                           dd=dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.lkb_reparam(x)
        out = self.lkb_origin(x)
        if self.small_kernel is not None:
            out = out + self.small_conv(x)
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merges both branches into ``lkb_reparam`` in place (idempotent; keeps device and dtype)."""
        if self.deploy:
            return
        conv = self.lkb_origin.conv
        weight, bias = fuse_bn(conv.weight, None, self.lkb_origin.bn)
        if self.small_kernel is not None:
            small_w, small_b = fuse_bn(self.small_conv.conv.weight, None, self.small_conv.bn)
            weight = weight + pad_kernel_to(small_w, self.kernel_size)
            bias = bias + small_b
        merged = LargeDepthwiseConv2d(self.channels, self.channels, self.kernel_size, 1, self.kernel_size // 2,
                                      groups=self.channels, bias=True, fft_min_kernel=conv.fft_min_kernel,
                                      device=weight.device, dtype=weight.dtype)
        merged.weight.copy_(weight)
        merged.bias.copy_(bias)
        self.lkb_reparam = merged
        del self.lkb_origin
        if self.small_kernel is not None:
            del self.small_conv
        self.deploy = True

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, small_kernel={self.small_kernel}"


class RepLKBlock(nn.Module):
    """``x + DropPath(BN∘Conv1x1(ReLU(LK(ReLU(BN∘Conv1x1(BN(x)))))))`` with ``LK`` a :class:`ReparamLargeKernelConv`.

    Args:
        dim: Block input and output channels C.
        dw_channels: Width of the large-kernel part (``C · dw_ratio``).
        kernel_size: Large kernel K.
        small_kernel: Parallel small kernel (None: none).
        drop_path: Stochastic depth rate.
        deploy: Build the fused structure.
        norm_layer: BatchNorm class.
    """

    def __init__(
        self,
        dim: int,
        dw_channels: int,
        kernel_size: int,
        small_kernel: int | None = 5,
        drop_path: float = 0.0,
        deploy: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.deploy = deploy
        self.pw1 = _conv_bn(dim, dw_channels, 1, relu=True, norm_layer=norm_layer, deploy=deploy, dd=dd)
        self.pw2 = _conv_bn(dw_channels, dim, 1, norm_layer=norm_layer, deploy=deploy, dd=dd)
        self.large_kernel = ReparamLargeKernelConv(dw_channels, kernel_size, small_kernel, deploy=deploy,
                                                   norm_layer=norm_layer, **dd)
        self.lk_nonlinear = nn.ReLU()
        self.prelkb_bn: nn.Module = nn.Identity() if deploy else norm_layer(dim, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def inference_form(self) -> nn.Module:
        """Itself: its deploy structure is already plain convolutions (the large kernel gets planned). Inference-form protocol, see :mod:`lkconv.deploy.optimize`."""
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw1(self.prelkb_bn(x))
        out = self.pw2(self.lk_nonlinear(self.large_kernel(out)))
        return x + self.drop_path(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds every BatchNorm and the small kernel in place (idempotent)."""
        if self.deploy:
            return
        self.pw1.reparameterize()
        fold_preceding_bn(self.pw1.conv, self.prelkb_bn)
        self.prelkb_bn = nn.Identity()
        self.large_kernel.reparameterize()
        self.pw2.reparameterize()
        self.deploy = True


class ConvFFN(nn.Module):
    """``x + DropPath(BN∘Conv1x1(GELU(BN∘Conv1x1(BN(x)))))`` with hidden width ``C · ffn_ratio``."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        drop_path: float = 0.0,
        deploy: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.deploy = deploy
        self.preffn_bn: nn.Module = nn.Identity() if deploy else norm_layer(dim, **dd)
        self.pw1 = _conv_bn(dim, hidden, 1, norm_layer=norm_layer, deploy=deploy, dd=dd)
        self.pw2 = _conv_bn(hidden, dim, 1, norm_layer=norm_layer, deploy=deploy, dd=dd)
        self.nonlinear = nn.GELU()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def inference_form(self) -> nn.Module:
        """Itself: its deploy structure is already two 1x1 convolutions. Inference-form protocol, see :mod:`lkconv.deploy.optimize`."""
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw2(self.nonlinear(self.pw1(self.preffn_bn(x))))
        return x + self.drop_path(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds the three BatchNorms into the two 1x1 convs in place (idempotent)."""
        if self.deploy:
            return
        self.pw1.reparameterize()
        fold_preceding_bn(self.pw1.conv, self.preffn_bn)
        self.preffn_bn = nn.Identity()
        self.pw2.reparameterize()
        self.deploy = True


class RepLKNetStage(nn.Module):
    """Alternating :class:`RepLKBlock` and :class:`ConvFFN` (``blocks``), then ``norm`` (identity by default)."""

    def __init__(self, blocks: Iterable[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.Identity() if norm is None else norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class RepLKNet(StagedConvNet):
    """RepLKNet backbone with a BN -> global average pool -> Linear head.

    Args:
        in_chans: Input channels.
        num_classes: Classifier outputs (0: no classifier).
        large_kernel_sizes: Large kernel per stage (odd).
        depths: RepLK blocks per stage (each followed by a ConvFFN, so a stage holds ``2 · depth`` blocks).
        dims: Channels per stage.
        small_kernel: Small kernel trained beside the large ones (None: none, as RepLKNet-XL).
        dw_ratio: Width of the large-kernel part of a RepLK block relative to the stage width.
        ffn_ratio: ConvFFN hidden width ratio.
        drop_path_rate: Stochastic depth, rising linearly over the RepLK blocks from 0 (a RepLK block and its
            ConvFFN share a rate, as in the reference).
        deploy: Build the fused structure.
        use_sync_bn: Use ``nn.SyncBatchNorm`` in the blocks.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        large_kernel_sizes: Sequence[int] = (31, 29, 27, 13),
        depths: Sequence[int] = (2, 2, 18, 2),
        dims: Sequence[int] = (128, 256, 512, 1024),
        small_kernel: int | None = 5,
        dw_ratio: float = 1.0,
        ffn_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        deploy: bool = False,
        use_sync_bn: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        large_kernel_sizes, depths, dims = tuple(large_kernel_sizes), tuple(depths), tuple(dims)
        if not (len(large_kernel_sizes) == len(depths) == len(dims) == 4):
            raise ValueError(f"large_kernel_sizes, depths and dims need 4 entries each, got {large_kernel_sizes}, "
                             f"{depths}, {dims}")
        if in_chans < 1 or num_classes < 0:
            raise ValueError(f"in_chans must be >= 1 and num_classes >= 0, got {in_chans}, {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if dw_ratio <= 0 or ffn_ratio <= 0:
            raise ValueError(f"dw_ratio and ffn_ratio must be > 0, got {dw_ratio}, {ffn_ratio}")
        self.in_chans, self.num_classes, self.deploy = in_chans, num_classes, deploy
        self.depths, self.dims, self.large_kernel_sizes = depths, dims, large_kernel_sizes
        self.small_kernel = small_kernel
        self.num_features = dims[-1]
        self.default_input_size = (in_chans, 224, 224)
        norm_layer = nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d

        c0 = dims[0]
        cbr = {"relu": True, "norm_layer": norm_layer, "deploy": deploy, "dd": dd}
        self.stem = nn.Sequential(
            _conv_bn(in_chans, c0, 3, 2, **cbr),
            _conv_bn(c0, c0, 3, 1, groups=c0, **cbr),
            _conv_bn(c0, c0, 1, 1, **cbr),
            _conv_bn(c0, c0, 3, 2, groups=c0, **cbr),
        )
        n_blocks = sum(depths)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        cur = 0
        for i in range(4):
            blocks: list[nn.Module] = []
            for j in range(depths[i]):
                blocks.append(RepLKBlock(dims[i], int(dims[i] * dw_ratio), large_kernel_sizes[i], small_kernel,
                                         rates[cur + j], deploy, norm_layer, **dd))
                blocks.append(ConvFFN(dims[i], int(dims[i] * ffn_ratio), rates[cur + j], deploy, norm_layer, **dd))
            self.stages.append(RepLKNetStage(blocks))
            cur += depths[i]
            if i < 3:
                self.transitions.append(nn.Sequential(
                    _conv_bn(dims[i], dims[i + 1], 1, 1, **cbr),
                    _conv_bn(dims[i + 1], dims[i + 1], 3, 2, groups=dims[i + 1], **cbr),
                ))
        self.feature_info = [{"num_chs": dims[i], "reduction": 4 * 2**i, "module": f"stages.{i}"} for i in range(4)]
        self.norm = nn.BatchNorm2d(dims[-1], **dd)
        self.head = nn.Linear(dims[-1], num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    # --- protocol overrides -------------------------------------------------------------------------------
    def _run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x) if i == 0 else self.transitions[i - 1](x)
        stage: RepLKNetStage = self.stages[i]
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in stage.blocks:
                x = checkpoint(block, x, use_reentrant=False)
            return stage.norm(x)
        return stage(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """BatchNorm on the feature map, global average pool, classifier (the reference's order)."""
        x = self.norm(x).mean(dim=(-2, -1))
        return x if pre_logits else self.head(x)

    def group_matcher(self, coarse: bool = False) -> dict:
        """Regexes grouping parameters by depth; a transition joins the stage it leads into."""
        return {
            "stem": r"^stem\.",
            "blocks": r"^(?:stages|transitions)\.(\d+)" if coarse else [
                (r"^transitions\.(\d+)\.", (99998,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)\.", None),
                (r"^stages\.(\d+)\.norm\.", (99999,)),
                (r"^norm\.", (99999,)),
            ],
        }

    def post_step(self) -> None:
        """Hook for the trainer after each optimizer step (nothing to do for RepLKNet)."""

    def stage_summary(self) -> list[dict]:
        """Per stage: RepLK blocks (each also has a ConvFFN), width, kernel sizes, small kernel, reduction."""
        return [{"stage": i, "depth": self.depths[i], "width": self.dims[i],
                 "kernel_sizes": [self.large_kernel_sizes[i]] * self.depths[i], "lark": self.depths[i], "smak": 0,
                 "small_kernel": self.small_kernel, "reduction": 4 * 2**i} for i in range(4)]

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuses every block, the stem and the transitions (same as :func:`lkconv.reparameterize_model`)."""
        for m in list(self.modules()):
            if m is not self and hasattr(m, "reparameterize"):
                m.reparameterize()
        self.deploy = True


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# --- variants --------------------------------------------------------------------------------------------
_VARIANTS: dict[str, dict] = {
    "31b": {"large_kernel_sizes": (31, 29, 27, 13), "depths": (2, 2, 18, 2), "dims": (128, 256, 512, 1024),
            "small_kernel": 5, "dw_ratio": 1.0},
    "31l": {"large_kernel_sizes": (31, 29, 27, 13), "depths": (2, 2, 18, 2), "dims": (192, 384, 768, 1536),
            "small_kernel": 5, "dw_ratio": 1.0},
    "xl": {"large_kernel_sizes": (27, 27, 27, 13), "depths": (2, 2, 18, 2), "dims": (256, 512, 1024, 2048),
           "small_kernel": None, "dw_ratio": 1.5},
}


def _create(variant: str, **kwargs) -> RepLKNet:
    return RepLKNet(**{**_VARIANTS[variant], **kwargs})


@register_model
def replknet_31b(**kwargs) -> RepLKNet:
    return _create("31b", **kwargs)


@register_model
def replknet_31l(**kwargs) -> RepLKNet:
    return _create("31l", **kwargs)


@register_model
def replknet_xl(**kwargs) -> RepLKNet:
    return _create("xl", **kwargs)
