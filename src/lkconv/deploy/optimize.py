"""``optimize_for_inference``: the fastest deploy module this machine can run, equal to the original.

Steps, each one exact in real arithmetic:

1. copy the model, ``eval()``, re-parameterize (Dilated Reparam Blocks, BatchNorms, GRN β, layer scale);
2. keep one memory format for the whole network: channels_last (NHWC in memory, NCHW logically), so no block
   pays a layout round trip;
3. run the dense layers on the fastest path: UniRepLKNet's pointwise ``Linear`` layers (which the reference runs on
   permuted NHWC tensors; ``F.linear`` goes through MKL, AVX2-speed on AMD CPUs) become 1×1 convolutions on the
   channels_last tensor (oneDNN's AVX-512 path), and GRN runs directly on that layout;
4. every stride-1 depthwise convolution becomes a :class:`~lkconv.ops.dwconv.PlannedDepthwiseConv2d`, its
   algorithm chosen per shape by measurement (or the plan cache) on ``example_input``;
5. optionally cast to bf16 and/or ``torch.compile`` (``dynamic=False``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.dilated_reparam import DilatedReparamBlock
from ..models._reparam import reparameterize_model
from ..models.unireplknet import UniRepLKNetBlock
from ..ops.dwconv import PlannedDepthwiseConv2d

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.dwconv(x))
        y = F.gelu(self.pw1(y))
        gx = torch.linalg.vector_norm(y, ord=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        y = torch.addcmul(y, y, self.grn_gamma * nx)  # (γ·N(x) + 1)·x
        return x + self.pw2(y)


class OptimizedModel(nn.Module):
    """Wraps the optimized network: takes the same input as the original (any layout, fp32) and returns fp32."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self._compiled: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.to(self.dtype)
        with torch.inference_mode():
            out = (self._compiled or self.net)(x)
        return out.float() if out.is_floating_point() else out


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
                           plan_depthwise: bool = True) -> OptimizedModel:
    """Returns a fused, layout-consistent, planned copy of ``model`` whose outputs equal the original's.

    Args:
        model: Any lkconv model (or a module containing one); left unchanged.
        example_input: A batch of the shape you will run; plans are measured on it (and warm any compile).
        dtype: ``torch.float32`` (outputs equal to 1e-4 relative) or ``torch.bfloat16`` (faster, approximate).
        compile: Also ``torch.compile`` the network (``dynamic=False``: one compile per input shape).
        channels_last: Keep activations channels_last end to end (the default, and the fast path here).
        plan_depthwise: Swap depthwise convolutions for planned ones.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    net = copy.deepcopy(model).eval()
    reparameterize_model(net)
    _swap_blocks(net)
    if plan_depthwise:
        _plan_depthwise(net)
    net = net.to(dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    wrapped = OptimizedModel(net, dtype, channels_last)
    wrapped.eval()
    wrapped(example_input)  # measures the depthwise plans for these shapes (or reads them from the cache)
    if compile:
        wrapped._compiled = torch.compile(net, dynamic=False)
        wrapped(example_input)
    return wrapped
