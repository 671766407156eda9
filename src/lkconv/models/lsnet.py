"""LSNet: "see large, focus small" -- a lightweight network mixing with LS convolutions.

Paper: "LSNet: See Large, Focus Small" (CVPR 2025, arXiv:2503.23135). Reference code: jameslahm/lsnet (MIT). This
is an independent implementation of the same architecture:

* stem: three 3x3 stride-2 conv-BN (ReLU between), stride 8;
* four stages at H/8 ... H/64, stage ``i > 0`` entered through a depthwise 3x3 stride-2 conv-BN and a 1x1 conv-BN;
* block ``j`` of a stage: ``j`` even -> RepVGG-style depthwise mixer (3x3 DW + 1x1 DW + identity) and
  Squeeze-Excite(0.25); ``j`` odd -> LS convolution in stages 1-3 or multi-head self-attention with learned
  relative-position biases (LeViT style) in stage 4; then a residual FFN (1x1 conv-BN, ReLU, 1x1 conv-BN, ratio 2);
* head: BatchNorm1d on the pooled features, then Linear.

The module layout follows lkconv's protocol (``downsample_layers``, ``stages``, ``norm``, ``head``) rather than the
reference's ``patch_embed``/``blocksN``, so the reference's checkpoints need a key map (not provided).
``deploy=True`` (or :func:`lkconv.reparameterize_model`) folds every conv-BN pair and each RepVGG mixer into a single
3x3 depthwise conv with bias.

Layout: blocks, then the model, then the variant table and registered constructors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..layers.conv_bn import ConvBN
from ..layers.drop import DropPath
from ..layers.lsconv import LSConv
from ..layers.se import SEBlock
from ..ops.reparam import fuse_bn, pad_kernel_to
from ._base import StagedConvNet
from ._registry import register_model

__all__ = ["LSNet", "LSNetBlock", "RepVGGDW", "RelPosAttention", "Residual", "FFN"]


def _cbn(in_c: int, out_c: int, k: int = 1, stride: int = 1, groups: int = 1, *, bn_weight_init: float = 1.0,
         deploy: bool = False, dd: dict) -> ConvBN:
    """Conv-BN with the reference's child names ``c`` and ``bn``."""
    return ConvBN(in_c, out_c, k, stride, k // 2, groups, conv_name="c", bn_weight_init=bn_weight_init,
                  deploy=deploy, **dd)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds to the nearest multiple of ``divisor`` (at least ``divisor``), as SE widths usually are."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class Residual(nn.Module):
    """``x + DropPath(m(x))``."""

    def __init__(self, m: nn.Module, drop_path: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.m(x))


class FFN(nn.Module):
    """1x1 conv-BN -> ReLU -> 1x1 conv-BN (the last BN starts at zero, so the residual branch starts silent)."""

    def __init__(self, dim: int, hidden: int, deploy: bool = False, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.pw1 = _cbn(dim, hidden, deploy=deploy, dd=dd)
        self.act = nn.ReLU()
        self.pw2 = _cbn(hidden, dim, bn_weight_init=0.0, deploy=deploy, dd=dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """``BN(DW3x3(x)) + BN(DW1x1(x)) + x``, which folds into one 3x3 depthwise conv with bias.

    Args:
        dim: Channels.
        deploy: Build the fused conv (``conv``, a plain ``nn.Conv2d`` with bias) directly.
    """

    def __init__(self, dim: int, deploy: bool = False, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        self.deploy = deploy
        if deploy:
            self.conv: nn.Module = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=True, **dd)
        else:
            self.conv = _cbn(dim, dim, 3, groups=dim, dd=dd)
            self.conv1 = _cbn(dim, dim, 1, groups=dim, dd=dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.conv(x)
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds both BatchNorms, the 1x1 branch and the identity into one 3x3 conv (in place, idempotent)."""
        if self.deploy:
            return
        w3, b3 = fuse_bn(self.conv.conv.weight, None, self.conv.bn)
        w1, b1 = fuse_bn(self.conv1.conv.weight, None, self.conv1.bn)
        weight = w3 + pad_kernel_to(w1, 3)
        weight[:, 0, 1, 1] += 1.0  # identity: a centred unit tap per channel
        fused = nn.Conv2d(self.dim, self.dim, 3, 1, 1, groups=self.dim, bias=True, device=weight.device,
                          dtype=weight.dtype)
        fused.weight.copy_(weight)
        fused.bias.copy_(b3 + b1)
        self.conv = fused
        del self.conv1
        self.deploy = True


class RelPosAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map with learned relative-position biases (LeViT).

    ``q, k, v`` come from a 1x1 conv-BN; ``q`` also passes a depthwise 3x3 conv-BN; logits are
    ``q·k / sqrt(key_dim) + B[h, |Δy|, |Δx|]``; the output goes through ReLU and a 1x1 conv-BN (γ starts at 0).
    The bias table ``attention_biases`` has ``num_heads x resolution²`` entries, one per absolute offset
    ``(|Δy|, |Δx|)`` in a ``resolution x resolution`` map (``index = |Δy|·resolution + |Δx|``, the reference's order
    for a square map). Maps of other sizes use the same table: smaller maps its top-left part, larger maps clamp
    offsets to ``resolution - 1``.

    Args:
        dim: Channels.
        key_dim: Query/key width per head.
        num_heads: Heads.
        attn_ratio: Value width per head relative to ``key_dim`` (None: ``dim / (key_dim · num_heads)``).
        resolution: Side of the map the bias table is laid out for (the stage's map at the default input size).
        deploy: Build the conv-BN pairs fused.
    """

    def __init__(
        self,
        dim: int,
        key_dim: int = 16,
        num_heads: int = 4,
        attn_ratio: float | None = None,
        resolution: int = 7,
        deploy: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if key_dim < 1 or num_heads < 1 or resolution < 1:
            raise ValueError(
                f"key_dim, num_heads and resolution must be >= 1, got {key_dim}, {num_heads}, {resolution}"
            )
        attn_ratio = dim / (key_dim * num_heads) if attn_ratio is None else attn_ratio
        self.num_heads, self.key_dim, self.resolution = num_heads, key_dim, resolution
        self.scale = key_dim**-0.5
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        if self.d < 1:
            raise ValueError(f"attn_ratio * key_dim must be >= 1, got {attn_ratio} * {key_dim}")
        self.dh = self.d * num_heads
        self.qkv = _cbn(dim, self.dh + 2 * self.nh_kd, deploy=deploy, dd=dd)
        self.dw = _cbn(self.nh_kd, self.nh_kd, 3, groups=self.nh_kd, deploy=deploy, dd=dd)
        self.proj = nn.Sequential(nn.ReLU(), _cbn(self.dh, dim, bn_weight_init=0.0, deploy=deploy, dd=dd))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution, **dd))
        self._index_cache: dict[tuple, torch.Tensor] = {}

    def bias_index(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(N, N)`` indices into the bias table for an ``height x width`` map (``N = height · width``)."""
        key = (height, width, str(device))
        idx = self._index_cache.get(key)
        if idx is None:
            ys = torch.arange(height, device=device).repeat_interleave(width)
            xs = torch.arange(width, device=device).repeat(height)
            r = self.resolution
            dy = (ys[:, None] - ys[None, :]).abs().clamp(max=r - 1)
            dx = (xs[:, None] - xs[None, :]).abs().clamp(max=r - 1)
            idx = dy * r + dx
            if device.type != "meta":
                self._index_cache[key] = idx
        return idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)
        q = q.reshape(b, self.num_heads, self.key_dim, n)
        k = k.reshape(b, self.num_heads, self.key_dim, n)
        v = v.reshape(b, self.num_heads, self.d, n)
        bias = self.attention_biases[:, self.bias_index(h, w, x.device)]  # (heads, N, N)
        attn = ((q.transpose(-2, -1) @ k) * self.scale + bias).softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).reshape(b, self.dh, h, w)
        return self.proj(out)

    def extra_repr(self) -> str:
        return (f"key_dim={self.key_dim}, num_heads={self.num_heads}, value_dim={self.d}, "
                f"resolution={self.resolution}")


class LSNetBlock(nn.Module):
    """``ffn(se(mixer(x)))``; the mixer and SE depend on the block's parity and stage (see the module docstring).

    Args:
        dim: Channels.
        index: Block index within its stage (even: RepVGG mixer + SE; odd: LS conv or attention).
        last_stage: Whether the block is in the last stage (odd blocks use attention there).
        key_dim: Attention query/key width per head.
        num_heads: Attention heads.
        resolution: Attention bias table side.
        ffn_ratio: FFN hidden width ratio.
        drop_path: Stochastic depth on the residual FFN and attention branches.
        deploy: Build the fused structure.
    """

    def __init__(
        self,
        dim: int,
        index: int,
        last_stage: bool,
        key_dim: int = 16,
        num_heads: int = 4,
        resolution: int = 4,
        ffn_ratio: float = 2.0,
        drop_path: float = 0.0,
        deploy: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if index % 2 == 0:
            self.mixer: nn.Module = RepVGGDW(dim, deploy=deploy, **dd)
            self.se: nn.Module = SEBlock(dim, _make_divisible(dim * 0.25), **dd)
        else:
            self.se = nn.Identity()
            if last_stage:
                attn = RelPosAttention(dim, key_dim, num_heads, resolution=resolution, deploy=deploy, **dd)
                self.mixer = Residual(attn, drop_path)
            else:
                self.mixer = LSConv(dim, **dd)
        self.ffn = Residual(FFN(dim, int(dim * ffn_ratio), deploy=deploy, **dd), drop_path)

    def inference_form(self) -> nn.Module:
        """Itself: its deploy structure is already fused (conv-BN pairs, the RepVGG mixer). Inference-form protocol, see :mod:`lkconv.deploy.optimize`."""
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSNet(StagedConvNet):
    """LSNet backbone with a BatchNorm1d + Linear head.

    Args:
        in_chans: Input channels.
        num_classes: Classifier outputs (0: no classifier).
        dims: Channels per stage.
        depths: Blocks per stage (0 allowed: the stage is its downsampling only).
        num_heads: Attention heads (used by the last stage).
        key_dim: Attention query/key width per head.
        ffn_ratio: FFN hidden width ratio.
        img_size: Input side the attention bias tables are laid out for (other sizes work, see
            :class:`RelPosAttention`).
        drop_path_rate: Stochastic depth, rising linearly over the blocks from 0.
        deploy: Build the fused structure.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        dims: Sequence[int] = (64, 128, 256, 384),
        depths: Sequence[int] = (0, 2, 8, 10),
        num_heads: int = 4,
        key_dim: int = 16,
        ffn_ratio: float = 2.0,
        img_size: int = 224,
        drop_path_rate: float = 0.0,
        deploy: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        dims, depths = tuple(dims), tuple(depths)
        if len(dims) != 4 or len(depths) != 4 or min(depths) < 0:
            raise ValueError(f"dims and depths need 4 entries each (depths >= 0), got dims={dims}, depths={depths}")
        if dims[0] % 4 != 0:
            raise ValueError(f"dims[0] must be divisible by 4 (the stem widens C/4 -> C/2 -> C), got {dims[0]}")
        if in_chans < 1 or num_classes < 0:
            raise ValueError(f"in_chans must be >= 1 and num_classes >= 0, got {in_chans}, {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if img_size < 64:
            raise ValueError(f"img_size must be >= 64 (the network downsamples by 64), got {img_size}")
        self.in_chans, self.num_classes, self.dims, self.depths = in_chans, num_classes, dims, depths
        self.num_features = dims[-1]
        self.default_input_size = (in_chans, img_size, img_size)
        self.deploy = deploy

        c0 = dims[0]
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            _cbn(in_chans, c0 // 4, 3, 2, deploy=deploy, dd=dd), nn.ReLU(),
            _cbn(c0 // 4, c0 // 2, 3, 2, deploy=deploy, dd=dd), nn.ReLU(),
            _cbn(c0 // 2, c0, 3, 2, deploy=deploy, dd=dd),
        )])
        for i in range(1, 4):
            self.downsample_layers.append(nn.Sequential(
                _cbn(dims[i - 1], dims[i - 1], 3, 2, groups=dims[i - 1], deploy=deploy, dd=dd),
                _cbn(dims[i - 1], dims[i], 1, deploy=deploy, dd=dd),
            ))
        n_blocks = sum(depths)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        resolution = img_size // 8
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            if i > 0:
                resolution = (resolution - 1) // 2 + 1
            self.stages.append(nn.Sequential(*[
                LSNetBlock(dims[i], j, i == 3, key_dim, num_heads, resolution, ffn_ratio, rates[cur + j], deploy, **dd)
                for j in range(depths[i])
            ]))
            cur += depths[i]
        self.feature_info = [{"num_chs": dims[i], "reduction": 8 * 2**i, "module": f"stages.{i}"} for i in range(4)]
        self.norm = nn.BatchNorm1d(dims[-1], **dd)
        self.head = nn.Linear(dims[-1], num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def no_weight_decay(self) -> set[str]:
        """Attention bias tables."""
        return {n for n, _ in self.named_parameters() if n.endswith("attention_biases")}

    def post_step(self) -> None:
        """Hook for the trainer after each optimizer step (nothing to do for LSNet)."""

    def stage_summary(self) -> list[dict]:
        out = []
        for i in range(4):
            mixers = ["repvgg" if j % 2 == 0 else ("attention" if i == 3 else "lsconv") for j in range(self.depths[i])]
            out.append({"stage": i, "depth": self.depths[i], "width": self.dims[i], "mixers": mixers,
                        "reduction": 8 * 2**i})
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuses every conv-BN pair and RepVGG mixer (same as :func:`lkconv.reparameterize_model`)."""
        for m in list(self.modules()):
            if m is not self and hasattr(m, "reparameterize"):
                m.reparameterize()
        self.deploy = True


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# --- variants --------------------------------------------------------------------------------------------
_VARIANTS: dict[str, dict] = {
    "t": {"dims": (64, 128, 256, 384), "depths": (0, 2, 8, 10)},
    "s": {"dims": (96, 192, 320, 448), "depths": (1, 2, 8, 10)},
    "b": {"dims": (128, 256, 384, 512), "depths": (4, 6, 8, 10)},
}


def _create(variant: str, **kwargs) -> LSNet:
    return LSNet(**{**_VARIANTS[variant], **kwargs})


@register_model
def lsnet_t(**kwargs) -> LSNet:
    return _create("t", **kwargs)


@register_model
def lsnet_s(**kwargs) -> LSNet:
    return _create("s", **kwargs)


@register_model
def lsnet_b(**kwargs) -> LSNet:
    return _create("b", **kwargs)
