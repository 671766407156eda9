"""The algorithms a plan can name, each run on a validated :class:`~lkconv.ops.dwconv.spec.Spec`.

* ``"nchw"`` / ``"nhwc"``: ``F.conv2d`` (oneDNN) on an input in that layout (:func:`run_torch`);
* ``"fft"``: real FFT of the padded input times the kernel's spectrum (``_run_fft``);
* ``"direct:..."``: lkconv's C kernel (:mod:`lkconv.ops.native`), NCHW and channels_last natively, fp32 and bf16,
  no autograd (:func:`run_direct`); :class:`PackedWeight` keeps a module's weight packed for it between calls.

An algorithm whose native layout differs from the input's pays the conversions here (and is timed with them).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import torch
import torch.nn.functional as F

from lkconv.ops import native
from lkconv.ops.dwconv.spec import DIRECT_VARIANTS, Spec

__all__ = ["PackedWeight", "direct_available", "run", "run_direct", "run_torch"]

_CL = torch.channels_last


def _to_format(t: torch.Tensor, fmt: str) -> torch.Tensor:
    if fmt == "nhwc":
        return t.contiguous(memory_format=_CL)
    if fmt == "nchw":
        return t.contiguous()
    return t


def run_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: Spec, fmt: str) -> torch.Tensor:
    x = _to_format(x, fmt)
    if s.pt == s.pb and s.pl == s.pr:
        y = F.conv2d(x, weight, bias, 1, (s.pt, s.pl), (s.dh, s.dw), s.c)
    else:
        y = F.conv2d(F.pad(x, (s.pl, s.pr, s.pt, s.pb)), weight, bias, 1, 0, (s.dh, s.dw), s.c)
    return _to_format(y, s.out_fmt)


def _run_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: Spec) -> torch.Tensor:
    cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    k = weight[:, 0].to(cdt)
    if s.dh > 1 or s.dw > 1:
        dil = k.new_zeros(s.c, s.dh * (s.kh - 1) + 1, s.dw * (s.kw - 1) + 1)
        dil[:, :: s.dh, :: s.dw] = k
        k = dil
    xp = F.pad(x.to(cdt), (s.pl, s.pr, s.pt, s.pb))
    size = (xp.shape[-2], xp.shape[-1])
    # circular cross-correlation of the padded input; outputs [0, ho) x [0, wo) never wrap
    spec = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(k, s=size).conj()
    y = torch.fft.irfft2(spec, s=size)[..., : s.ho, : s.wo]
    if bias is not None:
        y = y + bias.to(cdt).view(1, -1, 1, 1)
    return _to_format(y.to(x.dtype), "nchw" if s.out_fmt == "any" else s.out_fmt)


class PackedWeight:
    """Cache of a weight packed for the C kernel (full tap window), refreshed when the weight changes."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._packed: torch.Tensor | None = None

    def get(self, lib: ctypes.CDLL, weight: torch.Tensor, threads: int) -> torch.Tensor:
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape), weight.stride())
        if self._key != key or self._packed is None:
            c, _, kh, kw = weight.shape
            win = (ctypes.c_int32 * 4)(0, kh, 0, kw)
            w = weight.detach().contiguous()
            packed = torch.empty(math.ceil(c / 16) * kh * kw * 16, dtype=torch.float32)
            lib.lk_pack_weight(w.data_ptr(), packed.data_ptr(), c, kh, kw, win, int(w.dtype == torch.bfloat16),
                               threads)
            self._key, self._packed = key, packed
        return self._packed


def run_direct(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: Spec,
    variant: str,
    packed: PackedWeight | None = None,
) -> torch.Tensor:
    if x.device.type != "cpu":  # the C kernel reads host memory: a GPU pointer would crash the process
        raise ValueError(f"the direct (C) depthwise kernel runs on CPU tensors only, got a {x.device.type} tensor")
    lib = native.load()
    if lib is None:
        raise RuntimeError("the C depthwise kernel is unavailable (see the earlier warning)")
    mode, block = DIRECT_VARIANTS[variant]
    in_nhwc = s.in_fmt == "nhwc"
    x = x.contiguous(memory_format=_CL) if in_nhwc else x.contiguous()
    out_nhwc = s.out_fmt == "nhwc" or (s.out_fmt == "any" and in_nhwc)
    threads = s.threads if native.threads_supported() else 1
    bf = int(x.dtype == torch.bfloat16)
    b = None if bias is None else bias.detach().contiguous()
    y = torch.empty((s.n, s.c, s.ho, s.wo), dtype=x.dtype, memory_format=_CL if out_nhwc else torch.contiguous_format)
    bptr = None if b is None else b.data_ptr()
    if packed is not None:
        win = (ctypes.c_int32 * 4)(0, s.kh, 0, s.kw)
        wpk = packed.get(lib, weight, threads)
        rc = lib.lk_dwconv2d(
            x.data_ptr(), wpk.data_ptr(), win, bptr, y.data_ptr(), s.n, s.c, s.h, s.w, s.ho, s.wo,
            s.kh, s.kw, s.dh, s.dw, s.pt, s.pl, int(in_nhwc), int(out_nhwc), bf, mode, block, threads,
        )  # fmt: skip
    else:  # the kernel packs the used tap window of the weight itself
        w = weight.detach().contiguous()
        rc = lib.lk_dwconv2d_raw(
            x.data_ptr(), w.data_ptr(), bptr, y.data_ptr(), s.n, s.c, s.h, s.w, s.ho, s.wo,
            s.kh, s.kw, s.dh, s.dw, s.pt, s.pl, int(in_nhwc), int(out_nhwc), bf, mode, block, threads,
        )  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"the C depthwise kernel failed with code {rc}")
    return y


def run(
    algo: str,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: Spec,
    packed: PackedWeight | None = None,
) -> torch.Tensor:
    if algo == "nchw" or algo == "nhwc":
        return run_torch(x, weight, bias, s, algo)
    if algo == "fft":
        return _run_fft(x, weight, bias, s)
    return run_direct(x, weight, bias, s, algo, packed)


def direct_available() -> bool:
    """Return whether lkconv's C kernel can be used (compiling it on first call)."""
    return native.load() is not None
