"""``optimize_for_inference``: the fastest deploy module this machine can run, equal to the original.

It works on every registered model and on a run's ``PerceptionModel`` (adapter + backbone), as a sequence of
generic passes over an ``eval()`` copy; a pass that finds nothing to do changes nothing:

1. **re-parameterize**: every module with ``reparameterize()`` folds into its deploy structure (Dilated Reparam
   Blocks, BatchNorms inside blocks, GRN β, layer scale, RepLK small kernels, RepVGG mixers, ...);
2. **inference form**: every module with an ``inference_form()`` method is replaced by what it returns (see the
   protocol below) — UniRepLKNet's fast fused block, InceptionNeXt's block with its BatchNorm and γ folded, ...;
3. **fuse norms**: a channels-first LayerNorm (+ the exact GELU after it) runs as one fused C kernel
   (:mod:`lkconv.ops.fused`; the plain module spends about a third of its time in such element-wise passes), and
   an eval-mode BatchNorm2d next to a convolution in an ``nn.Sequential`` folds into it (convolution → BN always;
   BN → convolution when the convolution is unpadded and ungrouped, so the fold stays exact at the borders);
4. **plan depthwise convolutions**: every stride-1 zero-padded depthwise ``nn.Conv2d`` becomes a
   :class:`~lkconv.layers.planned_dwconv.PlannedDepthwiseConv2d`, its algorithm chosen per shape by measurement (or the plan
   cache) on ``example_input``;
5. **micro-batch**: a staged ConvNet runs its first :data:`MICRO_BATCH_STAGES` stages on micro-batches, so their
   wide activations are reused from the heap and stay in cache instead of being fresh 32–64 MB mappings per call.

Around them: one memory format for the whole network (channels_last: NHWC in memory, NCHW logically, so no
block pays a layout round trip), optionally bf16 and ``torch.compile`` (``dynamic=False``).

On CUDA (a model whose parameters are on a GPU) the same passes run and the layout is kept; the C kernels of
:mod:`lkconv.ops.fused` never see a GPU tensor (each entry falls back to its torch formula off the CPU), the depthwise
plans are measured among cuDNN in either layout and the FFT, the pointwise paths are not measured (off the CPU they
are all ``F.conv2d``), there is no micro-batching (a CPU-cache measure), and fp16 is allowed besides bf16.

The inference-form protocol
---------------------------
A block class may define ``inference_form(self) -> nn.Module``, next to the block in its family's file. It is
called once per block, after step 1 (the block is in its deploy structure), in eval mode, under ``no_grad``, on an
inference-only copy, so it may modify ``self`` and return it, or return a new module sharing its parameters. The
result must compute the same function as the block in eval mode (any layout, fp32 and bf16); it is not descended
into by this pass (a form owns its insides), but steps 3–4 still walk it. Blocks without the method are kept as
they are: their eval-mode forward is the plain, exact form. A form that wants to measure its own choices (e.g.
which GEMM path runs its pointwise layers) has a boolean attribute ``calibrate``: :func:`optimize_for_inference`
sets it for one forward of ``example_input`` (``choose_pointwise=True``) and the form clears it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..engine.device import model_device
from ..layers.conv_bn import fold_preceding_bn
from ..layers.norm import LayerNorm2d
from ..models._base import StagedConvNet
from ..models._reparam import reparameterize_model
from ..layers.planned_dwconv import PlannedDepthwiseConv2d
from ..ops.fused import layer_norm_channels
from ..ops.reparam import fuse_bn
from .fast_unireplknet import FastUniRepLKNetBlock

__all__ = ["optimize_for_inference", "OptimizedModel", "FastUniRepLKNetBlock", "apply_inference_forms",
           "fuse_norms", "plan_depthwise_convs"]


def _is_planned_dw(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
            and tuple(conv.stride) == (1, 1) and conv.padding_mode == "zeros")


def apply_inference_forms(module: nn.Module) -> int:
    """Pass 2: replaces, in place, every descendant that has ``inference_form()`` by its result; returns how many.

    ``module`` itself is not replaced (it is the container being optimized)."""
    n = 0
    for name, child in list(module.named_children()):
        form = getattr(child, "inference_form", None)
        if callable(form):
            setattr(module, name, form())
            n += 1
        else:
            n += apply_inference_forms(child)
    return n


class FastLayerNorm2d(nn.Module):
    """A channels-first LayerNorm (optionally with the GELU that follows it) in one pass over a channels_last map."""

    def __init__(self, norm: LayerNorm2d, gelu: bool) -> None:
        super().__init__()
        self.weight, self.bias, self.eps, self.gelu = norm.weight, norm.bias, norm.eps, gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_channels(x, self.weight, self.bias, self.eps, gelu=self.gelu)


def _is_bn2d(m: nn.Module) -> bool:
    return isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_var is not None


@torch.no_grad()
def _fold_bn_after(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Folds the BatchNorm that follows ``conv`` into it, in place."""
    w, b = fuse_bn(conv.weight, conv.bias, bn)
    conv.weight.copy_(w)
    if conv.bias is None:
        conv.bias = nn.Parameter(b)
    else:
        conv.bias.copy_(b)


def _fuse_sequential(seq: nn.Sequential) -> None:
    layers = list(seq)
    for i, layer in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, LayerNorm2d):
            gelu = type(nxt) is nn.GELU and nxt.approximate == "none"
            seq[i] = FastLayerNorm2d(layer, gelu)
            if gelu:
                seq[i + 1] = layers[i + 1] = nn.Identity()
        elif type(layer) is nn.Conv2d and nxt is not None and _is_bn2d(nxt):
            _fold_bn_after(layer, nxt)
            seq[i + 1] = layers[i + 1] = nn.Identity()
        elif _is_bn2d(layer) and type(nxt) is nn.Conv2d and nxt.groups == 1 and all(p == 0 for p in nxt.padding) \
                and not isinstance(nxt.padding, str):
            fold_preceding_bn(nxt, layer)
            seq[i] = layers[i] = nn.Identity()


def fuse_norms(module: nn.Module) -> None:
    """Pass 3: LayerNorm2d (→ GELU) becomes :class:`FastLayerNorm2d`, and eval-mode BatchNorm2d next to a plain
    convolution in an ``nn.Sequential`` folds into it (see the module docstring). In place; exact in eval mode."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Sequential):
            _fuse_sequential(child)
            fuse_norms(child)
        elif isinstance(child, LayerNorm2d):
            setattr(module, name, FastLayerNorm2d(child, False))
        else:
            fuse_norms(child)


def plan_depthwise_convs(module: nn.Module) -> int:
    """Pass 4: every stride-1, zero-padded depthwise ``nn.Conv2d`` becomes a planned one; returns how many."""
    n = 0
    for name, child in module.named_children():
        if _is_planned_dw(child):
            setattr(module, name, PlannedDepthwiseConv2d.from_conv(child))
            n += 1
        else:
            n += plan_depthwise_convs(child)
    return n


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

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool, micro_batch: int | None = None,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.net = net
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.channels_last = channels_last
        self.micro_batch = micro_batch
        self._compiled: nn.Module | None = None

    def _staged_forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        n = len(net.stages)
        split = min(MICRO_BATCH_STAGES, n)
        parts = []
        for part in x.split(self.micro_batch):
            for i in range(split):
                part = net._run_stage(i, part)
            parts.append(part)
        x = torch.cat(parts)
        for i in range(split, n):
            x = net._run_stage(i, x)
        return net.forward_head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            x = x.to(device=self.device, dtype=self.dtype)
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


def _runs_by_stages(net: nn.Module) -> bool:
    """Whether ``net``'s forward is exactly its stages (``_run_stage``) then ``forward_head`` (the base protocol),
    so the first stages may run on micro-batches."""
    return (isinstance(net, StagedConvNet) and isinstance(getattr(net, "stages", None), nn.ModuleList)
            and type(net).forward is StagedConvNet.forward
            and type(net).forward_features is StagedConvNet.forward_features)


def _auto_micro_batch(net: nn.Module, example: torch.Tensor) -> int | None:
    """The micro-batch size that keeps the early stages' widest activation near MICRO_BATCH_ELEMENTS, or None."""
    if not _runs_by_stages(net) or example.dim() != 4:
        return None
    with torch.inference_mode():
        first = net._run_stage(0, example[:1].contiguous(memory_format=torch.channels_last))
    per_sample = 4 * first.numel()  # a first-stage FFN is up to 4x its width
    return max(1, MICRO_BATCH_ELEMENTS // per_sample)


@torch.no_grad()
def optimize_for_inference(model: nn.Module, example_input: torch.Tensor, *, dtype: torch.dtype = torch.float32,
                           compile: bool = False, channels_last: bool = True,
                           plan_depthwise: bool = True, micro_batch: int | str | None = "auto",
                           choose_pointwise: bool = True, calibration=None) -> OptimizedModel:
    """Returns a fused, layout-consistent, planned copy of ``model`` whose outputs equal the original's.

    Args:
        model: Any lkconv model, or a module containing them (a run's ``PerceptionModel``); left unchanged.
        example_input: A batch of the shape you will run; plans are measured on it (and warm any compile).
        dtype: ``torch.float32`` (outputs equal to 1e-4 relative) or ``torch.bfloat16`` (faster, approximate);
            ``torch.float16`` too for a CUDA model; ``torch.int8`` (CPU) quantizes UniRepLKNet's pointwise layers
            after calibrating on ``calibration``, the rest in bf16 (:func:`lkconv.deploy.int8.optimize_int8`).
        compile: Also ``torch.compile`` the network (``dynamic=False``: one compile per input shape). TorchDynamo
            keeps at most ``torch._dynamo.config.recompile_limit`` (8) graphs per Python function, shared by all
            models of the same class in a process; past it, further models run eagerly (with a warning). Raise the
            limit when one process compiles many models or input shapes.
        channels_last: Keep 4-D activations channels_last end to end (the default, and the fast path here).
        plan_depthwise: Swap depthwise convolutions for planned ones.
        micro_batch: Run the stem and the first two stages on slices of this many samples (see
            :class:`OptimizedModel`; staged ConvNets only); ``"auto"`` sizes them from ``example_input``, None runs
            whole batches.
        choose_pointwise: Let inference forms that can (``calibrate``; UniRepLKNet's fast block) measure how to run
            their pointwise layers (oneDNN with GELU / the residual addition in the epilogue, oneDNN alone, or
            ``F.linear``; see :func:`lkconv.ops.fused.pointwise_gelu`) on ``example_input``'s activations, once per
            distinct block shape (UniRepLKNet-T at batch 16: ~5 s); False keeps oneDNN with the epilogues. With
            ``dtype=torch.int8``: let each block keep int8 or its bf16 form, whichever measured faster; False: int8
            everywhere.
        calibration: With ``dtype=torch.int8`` only: input batches, a dataset or a run directory to calibrate the
            activation ranges on (see :func:`lkconv.deploy.int8.calibration_batches`).
    """
    if dtype == torch.int8:
        from .int8 import optimize_int8

        if compile:
            raise ValueError("compile=True is not supported with dtype=torch.int8")
        return optimize_int8(model, example_input, calibration, channels_last=channels_last,
                             plan_depthwise=plan_depthwise, micro_batch=micro_batch, choose=choose_pointwise)
    if calibration is not None:
        raise ValueError("calibration= is used with dtype=torch.int8 only")
    if not (micro_batch is None or micro_batch == "auto" or (isinstance(micro_batch, int) and micro_batch > 0)):
        raise ValueError(f"micro_batch must be a positive int, 'auto' or None, got {micro_batch!r}")
    device = model_device(model)
    on_cpu = device.type == "cpu"
    allowed = (torch.float32, torch.bfloat16) if on_cpu else (torch.float32, torch.bfloat16, torch.float16)
    if dtype not in allowed:
        accepted = ", ".join(map(str, allowed)) + (", torch.int8 (with calibration=)" if on_cpu else "")
        raise ValueError(f"dtype must be one of {accepted} for a {device.type} model, got {dtype}")
    example_input = example_input.to(device)
    net = copy.deepcopy(model).eval()
    reparameterize_model(net)  # 1
    apply_inference_forms(net)  # 2
    fuse_norms(net)  # 3
    if plan_depthwise:
        plan_depthwise_convs(net)  # 4
    net = net.to(dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    if not _runs_by_stages(net) or not on_cpu:
        micro_batch = None
    elif micro_batch == "auto":  # 5
        micro_batch = _auto_micro_batch(net, example_input.to(dtype))
    wrapped = OptimizedModel(net, dtype, channels_last, micro_batch, device)
    wrapped.eval()
    wrapped(example_input)  # measures the depthwise plans for these shapes (or reads them from the cache)
    if choose_pointwise and on_cpu:
        calibrating = [m for m in net.modules() if isinstance(getattr(m, "calibrate", None), bool)]
        for m in calibrating:
            m.calibrate = True
        wrapped(example_input)  # each such form measures its choices on the activations it sees
        for m in calibrating:
            m.calibrate = False
    if compile:
        wrapped._compiled = torch.compile(net, dynamic=False)
        wrapped(example_input)
    return wrapped
