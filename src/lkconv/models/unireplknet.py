"""UniRepLKNet: a universal perception large-kernel ConvNet.

Papers: "UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud, Time-Series and
Image Recognition" (CVPR 2024, arXiv:2311.15599) and "Scaling Up Your Kernels: Large Kernel Design in ConvNets
towards Universal Representations" (TPAMI 2025, arXiv:2410.08049). Reference code: AILab-CVC/UniRepLKNet
(Apache-2.0). This is an independent implementation whose state_dict keys and shapes equal the reference's, in
both the training and the deploy structure, so published checkpoints load with ``strict=True``.

Layout: blocks, then the model, then the variant table and registered constructors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.conv_bn import LargeDepthwiseConv2d
from ..layers.dcls import DCLSConv2d
from ..layers.dilated_reparam import DilatedReparamBlock
from ..layers.drop import DropPath
from ..layers.format import NCHWtoNHWC, NHWCtoNCHW
from ..layers.inception_dw import InceptionDWConv2d
from ..layers.lsconv import LSConv
from ..layers.norm import GRN, LayerNorm2d
from ..layers.se import SEBlock
from ..ops.reparam import fuse_bn
from ._base import StagedConvNet
from ._registry import register_model

__all__ = ["UniRepLKNet", "UniRepLKNetBlock", "default_kernel_sizes", "MIXERS"]

#: Spatial mixers a block can use (``mixers`` argument of :class:`UniRepLKNet`):
#: ``"drb"`` Dilated Reparam Block for K >= 7, plain depthwise conv for K = 3/5 (the reference);
#: ``"dw"`` plain K x K depthwise conv (FFT on the CPU for K >= 17);
#: ``"inception"`` Inception depthwise conv (3x3 square, 1xK and Kx1 bands, 1/8 of the channels each);
#: ``"lsconv"`` LSNet's LS convolution with a K x K perception kernel (channels divisible by 8);
#: ``"dcls"`` DCLS: ``min(34, K²)`` taps at learnable positions in a K x K grid (Gaussian interpolation).
MIXERS = ("drb", "dw", "inception", "lsconv", "dcls")
#: Taps per channel of a DCLS mixer (the DCLS paper's ConvNeXt setting), capped at K².
DCLS_KERNEL_COUNT = 34
# Mixers whose following BatchNorm folds into them in the deploy structure (the others keep the BatchNorm).
_FOLDABLE_MIXERS = ("drb", "dw", "dcls")


def _build_mixer(
    name: str, dim: int, kernel_size: int, deploy: bool, norm_layer: type[nn.Module], dd: dict
) -> nn.Module:
    """The block's spatial mixer ``dwconv`` for mixer ``name`` (see :data:`MIXERS`)."""
    if name == "drb":
        if kernel_size >= 7:
            return DilatedReparamBlock(dim, kernel_size, deploy=deploy, norm_layer=norm_layer, **dd)
        return LargeDepthwiseConv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim, bias=deploy, **dd)
    if name == "dw" or (name == "dcls" and deploy):  # a deployed DCLS mixer is its dense kernel
        return LargeDepthwiseConv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim, bias=deploy, **dd)
    if name == "inception":
        return InceptionDWConv2d(dim, 3, kernel_size, 0.125, **dd)
    if name == "lsconv":
        return LSConv(dim, lks=kernel_size, sks=3, groups=8, **dd)
    if name == "dcls":
        return DCLSConv2d(dim, min(DCLS_KERNEL_COUNT, kernel_size * kernel_size), kernel_size, bias=False, **dd)
    raise ValueError(f"unknown mixer {name!r}; accepted: {MIXERS}")


class UniRepLKNetBlock(nn.Module):
    """``x + DropPath(γ · BN(Linear(GRN(GELU(Linear(SE(BN(dwconv(x)))))))))``.

    ``dwconv`` is a Dilated Reparam Block for kernel_size ≥ 7 (LarK), a plain depthwise conv for 3 or 5 (SmaK).
    In the deploy structure the BatchNorms, GRN β and layer scale γ are folded into the neighbouring layers.
    ``mixer`` swaps ``dwconv`` for another spatial mixer of :data:`MIXERS` (ablations); with ``"inception"`` or
    ``"lsconv"`` the BatchNorm after the mixer stays in the deploy structure (it cannot fold into them).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        deploy: bool = False,
        ffn_factor: int = 4,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        mixer: str = "drb",
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"block kernel_size must be odd and >= 3, got {kernel_size}")
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
        self.kernel_size = kernel_size
        self.mixer = mixer
        self.deploy = deploy
        self.dwconv: nn.Module = _build_mixer(mixer, dim, kernel_size, deploy, norm_layer, dd)
        fold_norm = deploy and mixer in _FOLDABLE_MIXERS
        self.norm: nn.Module = nn.Identity() if fold_norm else norm_layer(dim, **dd)
        self.se = SEBlock(dim, dim // 4, **dd)
        ffn_dim = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(NCHWtoNHWC(), nn.Linear(dim, ffn_dim, **dd))
        self.act = nn.Sequential(nn.GELU(), GRN(ffn_dim, use_bias=not deploy, **dd))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim, bias=True, **dd), NHWCtoNCHW())
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim, bias=False, **dd), NHWCtoNCHW(), norm_layer(dim, **dd))
        self.gamma: nn.Parameter | None
        if not deploy and layer_scale_init_value is not None and layer_scale_init_value > 0:
            self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim, **dd))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @property
    def is_large_kernel(self) -> bool:
        return isinstance(self.dwconv, DilatedReparamBlock)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.dwconv(x)))
        if _channels_last(y) and isinstance(self.act[0], nn.GELU):
            y = self._pointwise_channels_last(y)
        else:
            y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    def _pointwise_channels_last(self, y: torch.Tensor) -> torch.Tensor:
        """The same pointwise layers (same parameters) as 1x1 convolutions on a channels_last tensor: no permutes,
        oneDNN's AVX-512 path instead of MKL's AVX2 ``F.linear``, and GRN reduced over H, W in place."""
        lin1, grn, lin2 = self.pointwise_layers()
        y = F.gelu(F.conv2d(y, lin1.weight[:, :, None, None], lin1.bias))
        out = F.conv2d(grn.forward_channels_first(y), lin2.weight[:, :, None, None], lin2.bias)
        return self.pwconv2[2](out) if len(self.pwconv2) > 2 else out

    def pointwise_layers(self) -> tuple[nn.Linear, GRN, nn.Linear]:
        """The FFN's first linear layer, its GRN and its second linear layer (for fused inference forms)."""
        return self.pwconv1[1], self.act[1], self.pwconv2[0]

    def inference_form(self) -> nn.Module:
        """The fast fused block (:class:`lkconv.deploy.fast_unireplknet.FastUniRepLKNetBlock`), same outputs.

        Part of the inference-form protocol (:mod:`lkconv.deploy.optimize`); needs the deploy structure.
        """
        # deploy builds on models, so the dependency back is taken on use rather than at import time
        from ..deploy.fast_unireplknet import FastUniRepLKNetBlock

        return FastUniRepLKNetBlock(self)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds the block into its deploy structure in place (idempotent; keeps device and dtype)."""
        if self.deploy:
            return
        # 1) depthwise conv (+ its dilated branches) and the BatchNorm after it -> one conv with bias.
        if isinstance(self.dwconv, DCLSConv2d):
            self.dwconv = self.dwconv.to_dense_conv()
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
            conv = self.dwconv.lk_origin
        else:
            conv = self.dwconv
        if self.mixer in _FOLDABLE_MIXERS and isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            w, b = fuse_bn(conv.weight, conv.bias, self.norm)
            conv_cls = LargeDepthwiseConv2d if self.mixer in ("dw", "dcls") else type(conv)
            fused = conv_cls(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                conv.groups, bias=True, device=w.device, dtype=w.dtype,
            )
            fused.weight.copy_(w)
            fused.bias.copy_(b)
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()
        # 2) GRN beta is added after normalisation, right before pwconv2's linear: b += W @ beta.
        grn: GRN = self.act[1]
        linear: nn.Linear = self.pwconv2[0]
        bias = linear.bias.clone() if linear.bias is not None else linear.weight.new_zeros(linear.out_features)
        if grn.beta is not None:
            bias = bias + linear.weight @ grn.beta.reshape(-1)
            grn.register_parameter("beta", None)
        # 3) pwconv2's BatchNorm and the layer scale fold into the linear.
        weight = linear.weight
        if len(self.pwconv2) > 2:
            weight, bias = fuse_bn(weight, bias, self.pwconv2[2])
        if self.gamma is not None:
            weight = weight * self.gamma.view(-1, 1)
            bias = bias * self.gamma
            self.gamma = None
        new_linear = nn.Linear(linear.in_features, linear.out_features, bias=True, device=weight.device, dtype=weight.dtype)
        new_linear.weight.copy_(weight)
        new_linear.bias.copy_(bias)
        self.pwconv2 = nn.Sequential(new_linear, NHWCtoNCHW())
        self.deploy = True


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.shape[1] > 1 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def default_kernel_sizes(depths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The reference's per-block kernel sizes for its four depth settings (LarK 13, SmaK 3)."""
    table = {
        (2, 2, 6, 2): ((3, 3), (13, 13), (13,) * 6, (13, 13)),
        (2, 2, 8, 2): ((3, 3), (13, 13), (13,) * 8, (13, 13)),
        (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)),
        (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)),
    }
    key = tuple(depths)
    if key not in table:
        raise ValueError(f"no default kernel sizes for depths={key}; pass kernel_sizes (known depths: {list(table)})")
    return table[key]


class UniRepLKNet(StagedConvNet):
    """UniRepLKNet backbone with a classification head.

    Args:
        in_chans: Input channels (3 for RGB; 1 for a spectrogram; anything a modality adapter produces).
        num_classes: Classifier outputs (0: no classifier, ``forward`` returns pooled features).
        depths: Blocks per stage.
        dims: Channels per stage.
        drop_path_rate: Stochastic depth, rising linearly over the blocks from 0 to this value.
        layer_scale_init_value: Initial layer scale γ (None or ≤ 0 disables it).
        head_init_scale: Multiplies the initial classifier weights (0.001 for 22K→1K fine-tuning).
        kernel_sizes: Per-stage tuples of per-block kernel sizes (default: the reference table for ``depths``).
        deploy: Build the re-parameterized (fused) structure.
        use_sync_bn: Use ``nn.SyncBatchNorm`` inside blocks.
        mixers: Spatial mixer per stage, one of :data:`MIXERS` each, or one name for all stages (default
            ``"drb"``: the reference). With ``"dcls"`` call :meth:`post_step` after every optimizer step.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        head_init_scale: float = 1.0,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        deploy: bool = False,
        use_sync_bn: bool = False,
        mixers: str | Sequence[str] | None = None,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        depths, dims = tuple(depths), tuple(dims)
        if mixers is None:
            mixers = ("drb",) * 4
        elif isinstance(mixers, str):
            mixers = (mixers,) * 4
        mixers = tuple(mixers)
        if len(mixers) != 4 or any(m not in MIXERS for m in mixers):
            raise ValueError(f"mixers must be one name or 4 names (one per stage) among {MIXERS}, got {mixers}")
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims need 4 entries each, got depths={depths}, dims={dims}")
        if in_chans < 1 or num_classes < 0:
            raise ValueError(f"in_chans must be >= 1 and num_classes >= 0, got {in_chans}, {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        kernel_sizes = default_kernel_sizes(depths) if kernel_sizes is None else tuple(tuple(k) for k in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(k) != d for k, d in zip(kernel_sizes, depths)):
            raise ValueError(f"kernel_sizes must give one kernel per block for depths={depths}, got {kernel_sizes}")
        self.model_args = {
            "in_chans": in_chans, "num_classes": num_classes, "depths": depths, "dims": dims,
            "drop_path_rate": drop_path_rate, "layer_scale_init_value": layer_scale_init_value,
            "head_init_scale": head_init_scale, "kernel_sizes": kernel_sizes, "deploy": deploy, "use_sync_bn": use_sync_bn,
            "mixers": mixers,
        }
        self.in_chans, self.num_classes, self.deploy = in_chans, num_classes, deploy
        self.depths, self.dims, self.kernel_sizes, self.mixers = depths, dims, kernel_sizes, mixers
        self.num_features = dims[-1]
        self.default_input_size = (in_chans, 224, 224)
        norm_layer = nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d

        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(
            nn.Sequential(
                nn.Conv2d(in_chans, dims[0] // 2, 3, 2, 1, **dd),
                LayerNorm2d(dims[0] // 2, **dd),
                nn.GELU(),
                nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1, **dd),
                LayerNorm2d(dims[0], **dd),
            )
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1, **dd), LayerNorm2d(dims[i + 1], **dd))
            )
        n_blocks = sum(depths)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            blocks = [
                UniRepLKNetBlock(
                    dims[i], kernel_sizes[i][j], drop_path=rates[cur + j], layer_scale_init_value=layer_scale_init_value,
                    deploy=deploy, norm_layer=norm_layer, mixer=mixers[i], **dd,
                )
                for j in range(depths[i])
            ]
            self.stages.append(nn.Sequential(*blocks))
            cur += depths[i]
        self.feature_info = [
            {"num_chs": dims[i], "reduction": 4 * 2**i, "module": f"stages.{i}"} for i in range(4)
        ]
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6, **dd)
        self.head = nn.Linear(dims[-1], num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(head_init_scale)
                self.head.bias.mul_(head_init_scale)

    def no_weight_decay(self) -> set[str]:
        """Layer scale and GRN parameters (not 1-D, so a generic 1-D rule would miss the GRN ones), and DCLS
        positions and widths."""
        return {n for n, _ in self.named_parameters() if n.endswith((".gamma", ".beta", ".dwconv.P", ".dwconv.SIG"))}

    @torch.no_grad()
    def post_step(self) -> None:
        """Call after every optimizer step: clamps DCLS positions to their grids (a no-op without DCLS mixers)."""
        for m in self.modules():
            if isinstance(m, DCLSConv2d):
                m.clamp_parameters()

    def stage_summary(self) -> list[dict]:
        """Per stage: depth, width, kernel sizes, number of large-kernel (LarK) and small-kernel (SmaK) blocks."""
        out = []
        for i, ks in enumerate(self.kernel_sizes):
            lark = sum(k >= 7 for k in ks)
            out.append({"stage": i, "depth": len(ks), "width": self.dims[i], "kernel_sizes": list(ks), "lark": lark,
                        "smak": len(ks) - lark, "reduction": 4 * 2**i, "mixer": self.mixers[i]})
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuses every block (same as :func:`lkconv.reparameterize_model`)."""
        for m in self.modules():
            if isinstance(m, UniRepLKNetBlock):
                m.reparameterize()
        self.deploy = True


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# --- variants --------------------------------------------------------------------------------------------
_VARIANTS: dict[str, dict] = {
    "a": {"depths": (2, 2, 6, 2), "dims": (40, 80, 160, 320)},
    "f": {"depths": (2, 2, 6, 2), "dims": (48, 96, 192, 384)},
    "p": {"depths": (2, 2, 6, 2), "dims": (64, 128, 256, 512)},
    "n": {"depths": (2, 2, 8, 2), "dims": (80, 160, 320, 640)},
    "t": {"depths": (3, 3, 18, 3), "dims": (80, 160, 320, 640)},
    "s": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768)},
    "b": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024)},
    "l": {"depths": (3, 3, 27, 3), "dims": (192, 384, 768, 1536)},
    "xl": {"depths": (3, 3, 27, 3), "dims": (256, 512, 1024, 2048)},
}


def _create(variant: str, **kwargs) -> UniRepLKNet:
    return UniRepLKNet(**{**_VARIANTS[variant], **kwargs})


@register_model
def unireplknet_a(**kwargs) -> UniRepLKNet:
    return _create("a", **kwargs)


@register_model
def unireplknet_f(**kwargs) -> UniRepLKNet:
    return _create("f", **kwargs)


@register_model
def unireplknet_p(**kwargs) -> UniRepLKNet:
    return _create("p", **kwargs)


@register_model
def unireplknet_n(**kwargs) -> UniRepLKNet:
    return _create("n", **kwargs)


@register_model
def unireplknet_t(**kwargs) -> UniRepLKNet:
    return _create("t", **kwargs)


@register_model
def unireplknet_s(**kwargs) -> UniRepLKNet:
    return _create("s", **kwargs)


@register_model
def unireplknet_b(**kwargs) -> UniRepLKNet:
    return _create("b", **kwargs)


@register_model
def unireplknet_l(**kwargs) -> UniRepLKNet:
    return _create("l", **kwargs)


@register_model
def unireplknet_xl(**kwargs) -> UniRepLKNet:
    return _create("xl", **kwargs)


@register_model
def unireplknet_a_dcls(**kwargs) -> UniRepLKNet:
    """UniRepLKNet-A whose LarK blocks (13x13) use DCLS mixers: 34 taps at learnable positions (needs post_step)."""
    return _create("a", **{"mixers": ("drb", "dcls", "dcls", "dcls"), **kwargs})
