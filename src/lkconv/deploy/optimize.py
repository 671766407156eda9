"""``optimize_for_inference``: the fastest deploy module this machine can run, equal to the original.

Steps, each one exact in real arithmetic:

1. copy the model, ``eval()``, re-parameterize (Dilated Reparam Blocks, BatchNorms, GRN β, layer scale);
2. keep one memory format for the whole network: channels_last (NHWC in memory, NCHW logically), so no block
   pays a layout round trip;
3. run the dense layers on that layout without permutes, each block's two pointwise layers on the path measured
   fastest for its activations (:func:`~lkconv.ops.fused.pointwise_gelu` / :func:`~lkconv.ops.fused.pointwise_add`):
   a oneDNN 1×1 convolution with GELU or the residual addition in its epilogue
   (``torch.ops.mkldnn._convolution_pointwise``, the op inductor uses), the convolution alone (GELU then runs in the
   GRN kernel, the addition in place), or ``F.linear`` on the NHWC view;
4. GRN, the SE, and the stem's and downsampling layers' LayerNorm (+ GELU), run as fused C kernels
   (:mod:`lkconv.ops.fused`) — the plain module spends about a third of its time in these element-wise passes;
5. every stride-1 depthwise convolution becomes a :class:`~lkconv.ops.dwconv.PlannedDepthwiseConv2d`, its
   algorithm chosen per shape by measurement (or the plan cache) on ``example_input``;
6. the stem and the first two stages run on micro-batches, so their wide activations are reused from the heap and
   stay in cache instead of being fresh 32–64 MB mappings on every call;
7. optionally cast to bf16 and/or ``torch.compile`` (``dynamic=False``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.dilated_reparam import DilatedReparamBlock
from ..models._base import StagedConvNet
from ..models._reparam import reparameterize_model
from ..models.unireplknet import UniRepLKNetBlock
from ..layers.planned_dwconv import PlannedDepthwiseConv2d
from ..ops.dwconv import measure as _measure
from ..layers.norm import LayerNorm2d
from ..ops.fused import (PW1_PATHS, PW2_PATHS, gelu_grn, layer_norm_channels, pointwise_add, pointwise_gelu,
                         se_gate)

__all__ = ["optimize_for_inference", "OptimizedModel", "FastUniRepLKNetBlock"]


def _linear_to_conv1x1(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _is_planned_dw(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
            and tuple(conv.stride) == (1, 1) and conv.padding_mode == "zeros")


#: Timed bursts per pointwise path when a block chooses its paths (the minimum decides; 3 was too few to choose the
#: same paths twice in a row on a shared 2-core machine).
POINTWISE_REPS = 7
#: Pointwise paths chosen in this process, per (activation shapes, dtype, pw1 weight shape, threads).
_POINTWISE_CHOICES: dict[tuple, tuple[str, str]] = {}


class FastUniRepLKNetBlock(nn.Module):
    """A fused UniRepLKNet block in one memory format: dwconv → SE → 1×1 conv → GELU → GRN → 1×1 conv → + x."""

    def __init__(self, block: UniRepLKNetBlock) -> None:
        super().__init__()
        if not block.deploy:
            raise ValueError("FastUniRepLKNetBlock needs a re-parameterized block (call reparameterize_model first)")
        dw = block.dwconv.lk_origin if isinstance(block.dwconv, DilatedReparamBlock) else block.dwconv
        self.dwconv = dw
        self.se = block.se
        self.pw1 = _linear_to_conv1x1(block.pwconv1[1])
        self.grn_gamma = nn.Parameter(block.act[1].gamma.detach().reshape(1, -1, 1, 1).clone())
        self.pw2 = _linear_to_conv1x1(block.pwconv2[0])

        self.pw1_path, self.pw2_path = "conv_gelu", "conv_add"
        self.calibrate = False  # set by optimize_for_inference for its example forward

    def _ffn_in(self, y: torch.Tensor, path: str) -> torch.Tensor:
        y, gelu_done = pointwise_gelu(y, self.pw1.weight, self.pw1.bias, path)
        return gelu_grn(y, self.grn_gamma, gelu_done=gelu_done)  # (γ·N(x) + 1)·GELU(x): C kernels when available

    def _choose_paths(self, y: torch.Tensor, x: torch.Tensor) -> None:
        """Measure the ways of running the two pointwise layers on these inputs; keep the fastest of each.

        Blocks with the same activation and weight shapes (most blocks of a stage) share one measurement per process.
        """
        key = (tuple(y.shape), tuple(x.shape), y.dtype, tuple(self.pw1.weight.shape), torch.get_num_threads())
        if key not in _POINTWISE_CHOICES:
            times = _measure({p: (lambda p=p: self._ffn_in(y, p)) for p in PW1_PATHS}, POINTWISE_REPS)
            pw1 = min(times, key=times.__getitem__)
            z = self._ffn_in(y, pw1)
            times = _measure({p: (lambda p=p: pointwise_add(z, self.pw2.weight, self.pw2.bias, x, p))
                              for p in PW2_PATHS}, POINTWISE_REPS)
            _POINTWISE_CHOICES[key] = (pw1, min(times, key=times.__getitem__))
        self.pw1_path, self.pw2_path = _POINTWISE_CHOICES[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se = self.se
        y = se_gate(self.dwconv(x), se.down.weight, se.down.bias, se.up.weight, se.up.bias)  # in place when it can
        if self.calibrate:
            self._choose_paths(y, x)
            self.calibrate = False
        y = self._ffn_in(y, self.pw1_path)
        return pointwise_add(y, self.pw2.weight, self.pw2.bias, x, self.pw2_path)  # x + pw2(y)

    def extra_repr(self) -> str:
        return f"pw1={self.pw1_path}, pw2={self.pw2_path}"


class FastLayerNorm2d(nn.Module):
    """A channels-first LayerNorm (optionally with the GELU that follows it) in one pass over a channels_last map."""

    def __init__(self, norm: LayerNorm2d, gelu: bool) -> None:
        super().__init__()
        self.weight, self.bias, self.eps, self.gelu = norm.weight, norm.bias, norm.eps, gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_channels(x, self.weight, self.bias, self.eps, gelu=self.gelu)


def _fuse_norms(module: nn.Module) -> None:
    """LayerNorm2d (→ GELU) pairs become FastLayerNorm2d, also inside Sequentials (the stem and downsampling)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Sequential):
            layers = list(child)
            for i, layer in enumerate(layers):
                if isinstance(layer, LayerNorm2d):
                    gelu = i + 1 < len(layers) and type(layers[i + 1]) is nn.GELU and layers[i + 1].approximate == "none"
                    child[i] = FastLayerNorm2d(layer, gelu)
                    if gelu:
                        child[i + 1] = nn.Identity()
            _fuse_norms(child)
        elif isinstance(child, LayerNorm2d):
            setattr(module, name, FastLayerNorm2d(child, False))
        else:
            _fuse_norms(child)


#: Stages run per micro-batch (the stem and the first two stages, where the maps are large).
MICRO_BATCH_STAGES = 2
#: Micro-batch size target: the widest activation of those stages (the FFN's, 4x the stage width) stays near this
#: many elements (16 MB in fp32), so it is reused from the allocator's heap and stays in the L3 cache instead of
#: being a fresh, page-faulting mapping of 32-64 MB on every call.
MICRO_BATCH_ELEMENTS = 4 * 2**20


class OptimizedModel(nn.Module):
    """Wraps the optimized network: takes the same input as the original (any layout, fp32) and returns fp32.

    With ``micro_batch`` set (a staged ConvNet only), the stem and the first :data:`MICRO_BATCH_STAGES` stages run
    on slices of at most ``micro_batch`` samples and the rest on the whole batch. In eval mode every layer is per
    sample (BatchNorms are folded, LayerNorm is per pixel, GRN and SE are per sample), so the result is the same.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool, micro_batch: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.micro_batch = micro_batch
        self._compiled: nn.Module | None = None

    def _staged_forward(self, x: torch.Tensor) -> torch.Tensor:
        net, split = self.net, min(MICRO_BATCH_STAGES, len(self.net.stages))
        parts = []
        for part in x.split(self.micro_batch):
            for i in range(split):
                part = net.stages[i](net.downsample_layers[i](part))
            parts.append(part)
        x = torch.cat(parts)
        for i in range(split, len(net.stages)):
            x = net.stages[i](net.downsample_layers[i](x))
        return net.forward_head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            x = x.to(self.dtype)
            if self._compiled is not None:
                if not x.is_inference():
                    # TorchDynamo guards on the dispatch keys: a normal tensor and an inference tensor would compile
                    # (and count against torch._dynamo.config.recompile_limit) twice. One copy keeps one graph.
                    x = x.clone()
                out = self._compiled(x)
            elif self.micro_batch and x.shape[0] > self.micro_batch:
                out = self._staged_forward(x)
            else:
                out = self.net(x)
        return out.float() if out.is_floating_point() else out


def _auto_micro_batch(net: nn.Module, example: torch.Tensor) -> int | None:
    """The micro-batch size that keeps the early stages' widest activation near MICRO_BATCH_ELEMENTS, or None."""
    if not isinstance(net, StagedConvNet) or example.dim() != 4:
        return None
    with torch.inference_mode():
        stem = net.downsample_layers[0](example[:1].contiguous(memory_format=torch.channels_last))
    per_sample = 4 * stem.numel()  # the first stage's FFN is 4x its width
    return max(1, MICRO_BATCH_ELEMENTS // per_sample)


def _swap_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, UniRepLKNetBlock):
            setattr(module, name, FastUniRepLKNetBlock(child))
        else:
            _swap_blocks(child)


def _plan_depthwise(module: nn.Module) -> int:
    n = 0
    for name, child in module.named_children():
        if _is_planned_dw(child):
            setattr(module, name, PlannedDepthwiseConv2d.from_conv(child))
            n += 1
        else:
            n += _plan_depthwise(child)
    return n


@torch.no_grad()
def optimize_for_inference(model: nn.Module, example_input: torch.Tensor, *, dtype: torch.dtype = torch.float32,
                           compile: bool = False, channels_last: bool = True,
                           plan_depthwise: bool = True, micro_batch: int | str | None = "auto",
                           choose_pointwise: bool = True) -> OptimizedModel:
    """Returns a fused, layout-consistent, planned copy of ``model`` whose outputs equal the original's.

    Args:
        model: Any lkconv model (or a module containing one); left unchanged.
        example_input: A batch of the shape you will run; plans are measured on it (and warm any compile).
        dtype: ``torch.float32`` (outputs equal to 1e-4 relative) or ``torch.bfloat16`` (faster, approximate).
        compile: Also ``torch.compile`` the network (``dynamic=False``: one compile per input shape). TorchDynamo
            keeps at most ``torch._dynamo.config.recompile_limit`` (8) graphs per Python function, shared by all
            models of the same class in a process; past it, further models run eagerly (with a warning). Raise the
            limit when one process compiles many models or input shapes.
        channels_last: Keep activations channels_last end to end (the default, and the fast path here).
        plan_depthwise: Swap depthwise convolutions for planned ones.
        micro_batch: Run the stem and the first two stages on slices of this many samples (see
            :class:`OptimizedModel`); ``"auto"`` sizes them from ``example_input``, None runs whole batches.
        choose_pointwise: Measure, per block, how to run its two pointwise layers (oneDNN with GELU / the residual
            addition in the epilogue, oneDNN alone, or ``F.linear``; see :func:`lkconv.ops.fused.pointwise_gelu`)
            on ``example_input``'s activations, once per distinct block shape (UniRepLKNet-T at batch 16: ~5 s);
            False keeps oneDNN with the epilogues.
    """
    if not (micro_batch is None or micro_batch == "auto" or (isinstance(micro_batch, int) and micro_batch > 0)):
        raise ValueError(f"micro_batch must be a positive int, 'auto' or None, got {micro_batch!r}")
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    net = copy.deepcopy(model).eval()
    reparameterize_model(net)
    _swap_blocks(net)
    _fuse_norms(net)
    if plan_depthwise:
        _plan_depthwise(net)
    net = net.to(dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    if micro_batch == "auto":
        micro_batch = _auto_micro_batch(net, example_input.to(dtype))
    wrapped = OptimizedModel(net, dtype, channels_last, micro_batch if isinstance(net, StagedConvNet) else None)
    wrapped.eval()
    wrapped(example_input)  # measures the depthwise plans for these shapes (or reads them from the cache)
    if choose_pointwise:
        blocks = [m for m in net.modules() if isinstance(m, FastUniRepLKNetBlock)]
        for block in blocks:
            block.calibrate = True
        wrapped(example_input)  # each block measures its pointwise paths on the activations it sees
        for block in blocks:
            block.calibrate = False
    if compile:
        wrapped._compiled = torch.compile(net, dynamic=False)
        wrapped(example_input)
    return wrapped
