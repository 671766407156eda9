"""Depthwise convolution for training on the CPU: the planned forward, and a backward that skips padding taps.

PyTorch's CPU depthwise backward spends most of a UniRepLKNet training step computing the *weight* gradient of the
large and dilated kernels (measured on a Zen 4 core pair, batch 16: 23.6 ms for 320 channels of 8×8 with a 13×13
kernel, against 1.5 ms for the forward), because most taps of a large kernel on a small map fall on padding and the
reduction over the batch and the map is not vectorized over channels. Here:

* forward: :func:`lkconv.ops.dwconv.depthwise_conv2d` (the planned algorithm for the shape);
* input gradient: the same planned operator on the output gradient with the kernel rotated by 180° and the
  complementary padding ``(k − 1)·d − p``;
* weight gradient: ``lk_dwconv2d_grad_weight`` in lkconv's C kernels — channels as 16-lane vectors, only the taps
  that meet the map, a fixed reduction order (deterministic);
* bias gradient: a sum over (N, H, W).

:func:`depthwise_conv2d_train` applies where all of this holds (fp32 CPU tensors, stride 1, symmetric zero
padding, the C kernels loaded, not under ``torch.compile``) and the kernel is larger than an undilated 3×3 (there
oneDNN's backward is as fast or faster: measured 4.5 vs 6.9 ms for 80 channels of 32×32) and otherwise returns ``F.conv2d``'s result, so callers
need no conditions of their own. First derivatives only (``once_differentiable``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native
from .dwconv import depthwise_conv2d

__all__ = ["depthwise_conv2d_train", "depthwise_train_applies", "depthwise_grad_weight"]

_CL = torch.channels_last


def depthwise_train_applies(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation, groups: int) -> bool:
    """Whether :func:`depthwise_conv2d_train` takes the fast path for these arguments (else it calls F.conv2d)."""
    if not (isinstance(padding, tuple) and len(padding) == 2 and all(isinstance(p, int) for p in padding)):
        return False
    kh, kw = weight.shape[-2:]
    if kh * kw <= 9 and tuple(dilation) == (1, 1):  # plain 3x3: oneDNN's backward is as fast or faster on big maps
        return False
    return (x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and groups == x.shape[1] == weight.shape[0] and weight.shape[1] == 1 and tuple(stride) == (1, 1)
            and (kh - 1) * dilation[0] >= padding[0] and (kw - 1) * dilation[1] >= padding[1]
            and not torch.compiler.is_compiling() and native.load() is not None)


def depthwise_grad_weight(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: tuple[int, int],
                          padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """The weight gradient (C, 1, kh, kw) of a stride-1 depthwise convolution, by the C kernel (fp32 CPU)."""
    lib = native.load()
    if lib is None:
        raise RuntimeError("the C kernels are unavailable (LKCONV_NO_EXT=1 or no compiler)")
    x, g = x.contiguous(memory_format=_CL), grad_out.contiguous(memory_format=_CL)
    n, c, h, w = x.shape
    ho, wo = g.shape[-2:]
    kh, kw = kernel_size
    out = torch.empty(c, 1, kh, kw, dtype=torch.float32)
    threads = torch.get_num_threads() if native.threads_supported() else 1
    rc = lib.lk_dwconv2d_grad_weight(x.data_ptr(), g.data_ptr(), out.data_ptr(), n, c, h, w, ho, wo, kh, kw,
                                     dilation[0], dilation[1], padding[0], padding[1], threads)
    if rc != 0:
        raise MemoryError("lk_dwconv2d_grad_weight: out of memory for the partial sums")
    return out


class _DepthwiseTrainFn(torch.autograd.Function):
    # Under CPU autocast (``amp: true``) the planned forward would hand F.conv2d's bf16 result to a backward that is
    # fp32-only: this op runs in fp32 (autocast off inside, inputs fp32) and its backward sees fp32 gradients.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, x, weight, bias, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (padding, dilation, bias is not None)
        return depthwise_conv2d(x, weight, bias, padding, dilation)

    @staticmethod
    @once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        (ph, pw), (dh, dw), has_bias = ctx.conf
        kh, kw = weight.shape[-2:]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            flipped = weight.flip(-1, -2).contiguous()
            gx = depthwise_conv2d(grad_out, flipped, None, ((kh - 1) * dh - ph, (kw - 1) * dw - pw), (dh, dw))
            if gx.shape != x.shape:  # not a 'same'-type padding: the transposed conv is not a plain correlation
                gx = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, 1, (ph, pw), (dh, dw), x.shape[1])
        if ctx.needs_input_grad[1]:
            gw = depthwise_grad_weight(x, grad_out, (kh, kw), (ph, pw), (dh, dw))
        if has_bias and ctx.needs_input_grad[2]:
            gb = grad_out.sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None


def depthwise_conv2d_train(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, 1, padding, dilation, groups=C)``, differentiable, on the fast CPU path when it
    applies (see the module docstring)."""
    if depthwise_train_applies(x, weight, (1, 1), padding, dilation, x.shape[1]):
        return _DepthwiseTrainFn.apply(x, weight, bias, tuple(padding), tuple(dilation))
    return F.conv2d(x, weight, bias, 1, padding, dilation, x.shape[1])
