"""What a planned depthwise convolution is: the algorithm names, the validated problem description and its plan key.

:class:`Spec` holds everything a plan depends on (shape, kernel, dilation, padding, dtype, memory formats, torch
threads, whether autograd is needed); :func:`make_spec` builds it from the call's arguments after
:func:`check_args` has validated them. Nothing here runs a convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "ALGORITHMS",
    "ALGO_NAMES",
    "BF16_RTOL",
    "DIFFERENTIABLE",
    "DIRECT_DTYPES",
    "DIRECT_VARIANTS",
    "FP32_RTOL",
    "OUT_FORMATS",
    "DwConvShape",
    "Spec",
    "check_args",
    "make_spec",
    "pair",
    "resolve_padding",
    "useful_macs",
]

#: Direct-kernel variants: name -> (blocking mode, block size); mode 0 blocks output columns, mode 1 images.
DIRECT_VARIANTS: dict[str, tuple[int, int]] = {
    "direct:cols14": (0, 14),
    "direct:cols7": (0, 7),
    "direct:batch8": (1, 8),
    "direct:batch16": (1, 16),
}
#: Every concrete algorithm name a plan can hold.
ALGORITHMS: tuple[str, ...] = ("nchw", "nhwc", "fft", *DIRECT_VARIANTS)
#: The names ``algo`` accepts: the algorithms and the alias ``"direct"``.
ALGO_NAMES = (*ALGORITHMS, "direct")
OUT_FORMATS = (None, "nchw", "nhwc", "any")
DIRECT_DTYPES = (torch.float32, torch.bfloat16)
DIFFERENTIABLE = ("nchw", "nhwc", "fft")
_CL = torch.channels_last

#: Tolerances this module is tested to, relative to the largest output magnitude (see tests/ops/test_dwconv.py).
FP32_RTOL = 1e-5
BF16_RTOL = 2e-2


@dataclass(frozen=True)
class Spec:
    """Everything a plan depends on; :meth:`key` is its name in the plan cache."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    dtype: torch.dtype
    in_fmt: str
    out_fmt: str
    threads: int
    grad: bool
    device: str = "cpu"  # the device type: a CUDA plan is measured on the GPU and never shares a CPU plan's key

    @property
    def ho(self) -> int:
        return self.h + self.pt + self.pb - self.dh * (self.kh - 1)

    @property
    def wo(self) -> int:
        return self.w + self.pl + self.pr - self.dw * (self.kw - 1)

    def key(self) -> str:
        dt = str(self.dtype).replace("torch.", "")
        return (
            f"dw2d|n{self.n}|c{self.c}|h{self.h}|w{self.w}|k{self.kh}x{self.kw}|d{self.dh}x{self.dw}"
            f"|p{self.pt},{self.pb},{self.pl},{self.pr}|{dt}|in={self.in_fmt}|out={self.out_fmt}"
            f"|t{self.threads}|grad{int(self.grad)}"
        ) + ("" if self.device == "cpu" else f"|{self.device}")


@dataclass(frozen=True)
class DwConvShape:
    """A depthwise convolution problem for :func:`tune`.

    Attributes:
        n: batch size.
        c: channels.
        h: input height.
        w: input width.
        kernel_size: int or (kh, kw).
        dilation: int or (dh, dw).
        padding: int, (ph, pw), ``"same"`` or ``"valid"``.
    """

    n: int
    c: int
    h: int
    w: int
    kernel_size: int | tuple[int, int]
    dilation: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = "same"


def pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def resolve_padding(padding: Any, kh: int, kw: int, dh: int, dw: int) -> tuple[int, int, int, int]:
    """Return (top, bottom, left, right) padding."""
    if isinstance(padding, str):
        if padding == "same":
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        if padding == "valid":
            return 0, 0, 0, 0
        raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, "padding", 0)
    return ph, ph, pw, pw


def _memory_format(x: torch.Tensor) -> str:
    if x.is_contiguous():
        return "nchw"
    if x.is_contiguous(memory_format=_CL):
        return "nhwc"
    return "strided"


def check_args(x: Any, weight: Any, bias: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    c = x.shape[1]
    if weight.dim() != 4 or weight.shape[0] != c or weight.shape[1] != 1:
        raise ValueError(f"weight must have shape (C, 1, kh, kw) with C={c} (depthwise), got {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight dtype {weight.dtype} does not match x dtype {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight is on {weight.device} but x is on {x.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if bias.shape != (c,):
            raise ValueError(f"bias must have shape ({c},), got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias dtype {bias.dtype} does not match x dtype {x.dtype}")


def _needs_grad(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)


def make_spec(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: Any,
    dilation: Any,
    out_format: str | None,
) -> Spec:
    if out_format not in OUT_FORMATS:
        raise ValueError(f"out_format must be one of None, 'nchw', 'nhwc', 'any', got {out_format!r}")
    dh, dw = pair(dilation, "dilation", 1)
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    pt, pb, pl, pr = resolve_padding(padding, kh, kw, dh, dw)
    n, c, h, w = (int(s) for s in x.shape)
    in_fmt = _memory_format(x)
    out_fmt = out_format or ("nhwc" if in_fmt == "nhwc" else "nchw")
    spec = Spec(n, c, h, w, kh, kw, dh, dw, pt, pb, pl, pr, x.dtype, in_fmt, out_fmt, torch.get_num_threads(),
                 _needs_grad(x, weight, bias), x.device.type)
    if spec.ho <= 0 or spec.wo <= 0:
        raise ValueError(
            f"output would be empty: input {h}x{w}, kernel {kh}x{kw}, dilation {(dh, dw)}, padding {(pt, pb, pl, pr)}"
        )
    return spec


def useful_macs(
    n: int,
    c: int,
    h: int,
    w: int,
    kernel_size: int | tuple[int, int],
    dilation: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = "same",
) -> int:
    """Count the multiply-accumulates of a stride-1 depthwise conv whose input pixel is real (not padding).

    Args:
        n: batch size.
        c: channels.
        h: input height.
        w: input width.
        kernel_size: int or (kh, kw).
        dilation: int or (dh, dw).
        padding: int, (ph, pw), ``"same"`` or ``"valid"``.

    Returns:
        The number of useful MACs (a large kernel on a small map has far fewer than ``n*c*ho*wo*kh*kw``).
    """
    kh, kw = pair(kernel_size, "kernel_size", 1)
    dh, dw = pair(dilation, "dilation", 1)
    pt, pb, pl, pr = resolve_padding(padding, kh, kw, dh, dw)
    ho, wo = h + pt + pb - dh * (kh - 1), w + pl + pr - dw * (kw - 1)

    def taps(size: int, out: int, k: int, d: int, p: int) -> int:
        return sum(1 for o in range(out) for t in range(k) if 0 <= o + t * d - p < size)

    return n * c * taps(h, ho, kh, dh, pt) * taps(w, wo, kw, dw, pl)
