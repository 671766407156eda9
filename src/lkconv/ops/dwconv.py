"""Stride-1 depthwise 2-D convolution with per-shape algorithm plans.

On a CPU the fastest way to run a depthwise convolution depends on the shape: PyTorch's oneDNN path is fast in NCHW
for mid-size kernels (9-15) and in channels_last for small and very large ones, and a large kernel over a small map
mostly multiplies padding. :func:`depthwise_conv2d` therefore picks an algorithm per shape:

``"nchw"``
    ``F.conv2d`` on an NCHW-contiguous input (oneDNN).
``"nhwc"``
    ``F.conv2d`` on a channels_last input (oneDNN).
``"fft"``
    real FFT (``torch.fft.rfft2``) of the padded input times the kernel's spectrum; only pays off for very large kernels
    on large maps.
``"direct:cols14"``, ``"direct:cols7"``, ``"direct:batch8"``, ``"direct:batch16"``
    lkconv's C kernel (:mod:`lkconv.ops._dwconv_ext`, compiled on first use): 16 channels per vector, a register block
    of up to 14/7 output columns or of up to 8/16 images, taps that fall wholly on padding skipped. It reads and writes
    NCHW and channels_last natively, so no layout round trip is paid; fp32 and bf16 (fp32 accumulation); no autograd.
``"direct"``
    alias: the direct variant the heuristic prefers for the shape.

A plan is keyed by (N, C, H, W, kernel, dilation, padding, dtype, input and output memory format, torch threads,
whether autograd is needed) and is chosen by measurement on first use (a warm-up call per candidate, slow ones
dropped, then a few round-robin repetitions, best of them), by :func:`tune` ahead of time, or by a heuristic when
autotuning is off (``LKCONV_AUTOTUNE=0`` or :func:`lkconv.ops.plans.set_autotune`). Measured plans persist in
:class:`lkconv.ops.plans.PlanCache`.

The output keeps the input's memory format unless ``out_format`` says otherwise; an algorithm whose native layout
differs from the input's pays (and is timed with) the conversions.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lkconv.ops import plans as _plans

__all__ = [
    "ALGORITHMS",
    "DIRECT_VARIANTS",
    "DwConvShape",
    "PlannedDepthwiseConv2d",
    "depthwise_conv2d",
    "direct_available",
    "plan_for",
    "tune",
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
_ALGO_NAMES = (*ALGORITHMS, "direct")
_OUT_FORMATS = (None, "nchw", "nhwc", "any")
_DIRECT_DTYPES = (torch.float32, torch.bfloat16)
_DIFFERENTIABLE = ("nchw", "nhwc", "fft")
_CL = torch.channels_last

#: Tolerances this module is tested to, relative to the largest output magnitude (see tests/ops/test_dwconv.py).
FP32_RTOL = 1e-5
BF16_RTOL = 2e-2


@dataclass(frozen=True)
class _Spec:
    """Everything a plan depends on."""

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
        )


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


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
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


def _resolve_padding(padding: Any, kh: int, kw: int, dh: int, dw: int) -> tuple[int, int, int, int]:
    """Return (top, bottom, left, right) padding."""
    if isinstance(padding, str):
        if padding == "same":
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        if padding == "valid":
            return 0, 0, 0, 0
        raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    ph, pw = _pair(padding, "padding", 0)
    return ph, ph, pw, pw


def _memory_format(x: torch.Tensor) -> str:
    if x.is_contiguous():
        return "nchw"
    if x.is_contiguous(memory_format=_CL):
        return "nhwc"
    return "strided"


def _check_args(x: Any, weight: Any, bias: Any) -> None:
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


def _make_spec(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: Any,
    dilation: Any,
    out_format: str | None,
) -> _Spec:
    if out_format not in _OUT_FORMATS:
        raise ValueError(f"out_format must be one of None, 'nchw', 'nhwc', 'any', got {out_format!r}")
    dh, dw = _pair(dilation, "dilation", 1)
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    pt, pb, pl, pr = _resolve_padding(padding, kh, kw, dh, dw)
    n, c, h, w = (int(s) for s in x.shape)
    in_fmt = _memory_format(x)
    out_fmt = out_format or ("nhwc" if in_fmt == "nhwc" else "nchw")
    spec = _Spec(n, c, h, w, kh, kw, dh, dw, pt, pb, pl, pr, x.dtype, in_fmt, out_fmt, torch.get_num_threads(),
                 _needs_grad(x, weight, bias))
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
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    pt, pb, pl, pr = _resolve_padding(padding, kh, kw, dh, dw)
    ho, wo = h + pt + pb - dh * (kh - 1), w + pl + pr - dw * (kw - 1)

    def taps(size: int, out: int, k: int, d: int, p: int) -> int:
        return sum(1 for o in range(out) for t in range(k) if 0 <= o + t * d - p < size)

    return n * c * taps(h, ho, kh, dh, pt) * taps(w, wo, kw, dw, pl)


# ----------------------------------------------------------------------------------------------------------- algorithms


def _to_format(t: torch.Tensor, fmt: str) -> torch.Tensor:
    if fmt == "nhwc":
        return t.contiguous(memory_format=_CL)
    if fmt == "nchw":
        return t.contiguous()
    return t


def _run_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: _Spec, fmt: str) -> torch.Tensor:
    x = _to_format(x, fmt)
    if s.pt == s.pb and s.pl == s.pr:
        y = F.conv2d(x, weight, bias, 1, (s.pt, s.pl), (s.dh, s.dw), s.c)
    else:
        y = F.conv2d(F.pad(x, (s.pl, s.pr, s.pt, s.pb)), weight, bias, 1, 0, (s.dh, s.dw), s.c)
    return _to_format(y, s.out_fmt)


def _run_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: _Spec) -> torch.Tensor:
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


class _PackedWeight:
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


def _run_direct(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: _Spec,
    variant: str,
    packed: _PackedWeight | None = None,
) -> torch.Tensor:
    from lkconv.ops import _dwconv_ext

    lib = _dwconv_ext.load()
    if lib is None:
        raise RuntimeError("the C depthwise kernel is unavailable (see the earlier warning)")
    mode, block = DIRECT_VARIANTS[variant]
    in_nhwc = s.in_fmt == "nhwc"
    x = x.contiguous(memory_format=_CL) if in_nhwc else x.contiguous()
    out_nhwc = s.out_fmt == "nhwc" or (s.out_fmt == "any" and in_nhwc)
    threads = s.threads if _dwconv_ext.threads_supported() else 1
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


def _run(
    algo: str,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: _Spec,
    packed: _PackedWeight | None = None,
) -> torch.Tensor:
    if algo == "nchw" or algo == "nhwc":
        return _run_torch(x, weight, bias, s, algo)
    if algo == "fft":
        return _run_fft(x, weight, bias, s)
    return _run_direct(x, weight, bias, s, algo, packed)


# ----------------------------------------------------------------------------------------------------------- planning


def direct_available() -> bool:
    """Return whether lkconv's C kernel can be used (compiling it on first call)."""
    from lkconv.ops import _dwconv_ext

    return _dwconv_ext.load() is not None


def _candidates(s: _Spec, device: torch.device) -> list[str]:
    """Algorithms applicable to the spec, in the order they are measured (likely winners first)."""
    if s.grad:
        allowed = list(_DIFFERENTIABLE)
    else:
        allowed = ["nchw", "nhwc", "fft"]
        if device.type == "cpu" and s.dtype in _DIRECT_DTYPES and direct_available():
            allowed += ["direct:cols14"]
            if s.wo > 7:
                allowed.append("direct:cols7")
            if s.n >= 4:
                allowed.append("direct:batch8")
            if s.n >= 12:
                allowed.append("direct:batch16")
    if not (max(s.kh, s.kw) >= 31 and min(s.h, s.w) >= 28):
        allowed.remove("fft")  # measured never to win below this (see docs/bench_dwconv.md)
    first = _heuristic(s, allowed)
    return [first] + [a for a in allowed if a != first]


def _nchw_is_slow_path(s: _Spec) -> bool:
    """Whether PyTorch's NCHW depthwise conv is on its slow (non-oneDNN) path for this kernel, judged on a cheap proxy.

    With torch 2.x on x86, kernels of 17 and more run 30-85x slower in NCHW than in channels_last; one warm-up call of
    that path on a big batch can take seconds, so first-use tuning probes it on a single 16-channel image first.
    """
    if max(s.kh, s.kw) < 17 or s.n * s.c <= 16:
        return False
    proxy = replace(s, n=1, c=16, in_fmt="nchw", out_fmt="any")
    xp = torch.randn(1, 16, s.h, s.w, dtype=s.dtype)
    wp = torch.randn(16, 1, s.kh, s.kw, dtype=s.dtype)
    times = _measure({a: (lambda a=a: _run_torch(xp, wp, None, proxy, a)) for a in ("nchw", "nhwc")}, 2, prune=1e9)
    return times["nchw"] > 4 * times["nhwc"]


def _heuristic(s: _Spec, allowed: Sequence[str]) -> str:
    """Pick an algorithm without timing anything.

    The rules summarise the plans measured on the benchmark grid (docs/bench_dwconv.md; torch 2.13 oneDNN, AVX-512):
    the direct kernel wins for NCHW inputs and for large kernels, except that oneDNN's channels_last kernel is as fast
    for small kernels on channels_last batches and big maps, and for batched kernels of 17+ on 14x14 maps.
    """
    taps = s.kh * s.kw
    if any(a.startswith("direct:") for a in allowed):
        cl_io = s.in_fmt == "nhwc" and s.out_fmt != "nchw" and "nhwc" in allowed
        if s.n >= 8 and s.wo <= 8 and "direct:batch8" in allowed:
            return "direct:batch8"
        if cl_io and taps <= 49 and (s.n > 1 or s.h * s.w >= 56 * 56):
            return "nhwc"
        if cl_io and s.n > 1 and max(s.kh, s.kw) >= 17 and s.wo <= 16:
            return "nhwc"
        if (s.wo <= 16 or (max(s.kh, s.kw) >= 31 and s.wo <= 32)) and "direct:cols7" in allowed:
            return "direct:cols7"
        return "direct:cols14"
    if "fft" in allowed and taps >= 64 * 64 and s.h * s.w >= 64 * 64:
        return "fft"
    if 9 <= max(s.kh, s.kw) <= 15:
        return "nchw"
    return "nhwc"


def _time_call(fn: Callable[[], Any], calls: int = 1, settle: bool = False) -> float:
    """Run ``fn`` ``calls`` times back to back and return the seconds per call (the planner's only timing primitive);
    with ``settle``, one more untimed call first.

    With one torch thread all the work runs on the calling thread, so its CPU time is used: it does not count the time
    the thread spends preempted by other processes. With more threads it is wall-clock time.
    """
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    if settle:
        fn()  # untimed: absorbs the switch from whatever ran before (see BURST_SECONDS)
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


#: A timed sample is a burst of back-to-back calls lasting about this long (at most :data:`BURST_MAX_CALLS` calls),
#: after an untimed one. Measured at 2 threads: a sub-millisecond call right after a *different* candidate can take
#: 2x its steady time (identical oneDNN calls 0.11 vs 0.19 ms after PyTorch's slow NCHW path: allocator and cache
#: state), which decided plans by noise.
BURST_SECONDS = 1e-3
BURST_MAX_CALLS = 16
#: Bursts of candidates faster than this start with an untimed call (slower ones: the switch is a small fraction).
SETTLE_BELOW_SECONDS = 0.02


def _measure(fns: Mapping[str, Callable[[], Any]], reps: int | None, prune: float = 4.0) -> dict[str, float]:
    """Time each candidate: two warm-up calls each (the first absorbs one-off costs such as oneDNN primitive creation;
    candidates whose second call is over ``prune`` x the best are dropped), then ``reps`` round-robin bursts of the
    rest (see :data:`BURST_SECONDS`; None: as many bursts as fit in about 0.1 s, between 3 and 10).

    Returns milliseconds per call per candidate: the minimum over the bursts (the warm-up for dropped ones). The
    minimum, not the median, decides: on a shared machine preemption only ever adds time, and with few repetitions a
    median can land on a preempted sample and pick the wrong algorithm.
    """
    warm: dict[str, float] = {}
    for name, fn in fns.items():
        fn()
        warm[name] = _time_call(fn)
    best = min(warm.values())
    keep = [n for n, t in warm.items() if t <= prune * best + 1e-4]
    calls = {n: int(min(BURST_MAX_CALLS, max(1, BURST_SECONDS // max(warm[n], 1e-9)))) for n in keep}
    samples: dict[str, list[float]] = {n: [] for n in keep}
    if reps is None:
        reps = int(min(10, max(3, 0.1 / max(sum(warm[n] * calls[n] for n in keep), 1e-9))))
    for r in range(max(1, reps)):
        for i in range(len(keep)):  # rotate the order so no candidate always runs right after the same one
            name = keep[(i + r) % len(keep)]
            samples[name].append(_time_call(fns[name], calls[name], settle=warm[name] < SETTLE_BELOW_SECONDS))
    return {n: 1e3 * (min(samples[n]) if n in samples else warm[n]) for n in fns}


#: A direct variant must beat the best PyTorch algorithm by this factor to be chosen: near-ties go to PyTorch, whose
#: speed does not depend on lkconv's kernel having been measured under the same machine load. At 2 threads identical
#: calls vary by 5-10 % between measurements on this class of machine (docs/bench_dwconv.md), so a direct kernel
#: judged 3-7 % faster at planning time was as often slower in the benchmark; 0.93 keeps those on PyTorch's path,
#: which can only cost the few percent the direct kernel might have gained.
DIRECT_MARGIN = 0.93


#: Timed bursts of the head-to-head run that confirms a direct kernel against PyTorch's best algorithm.
CONFIRM_REPS = 7


def _best_torch(times_ms: Mapping[str, float]) -> str | None:
    torch_times = {a: t for a, t in times_ms.items() if not a.startswith("direct:")}
    return min(torch_times, key=torch_times.__getitem__) if torch_times else None


def _pick(times_ms: Mapping[str, float]) -> str:
    """Choose the fastest algorithm, breaking near-ties (within :data:`DIRECT_MARGIN`) in favour of PyTorch's."""
    best = min(times_ms, key=times_ms.__getitem__)
    best_torch = _best_torch(times_ms)
    if best.startswith("direct:") and best_torch is not None and times_ms[best] > DIRECT_MARGIN * times_ms[best_torch]:
        return best_torch
    return best


_memo: dict[_Spec, str] = {}
_Runner = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", Any], torch.Tensor]
# per-call fast path: (shapes, strides, dtypes, devices, padding, dilation, algo, out_format, threads, grad) -> runner;
# skips validation and planning for argument combinations already seen
_fast: dict[tuple[Any, ...], _Runner] = {}
_memo_owner: _plans.PlanCache | None = None
_memo_lock = threading.Lock()


def _clear_memo() -> None:
    """Forget in-process plan choices (they are re-read from the plan cache or re-planned on next use)."""
    with _memo_lock:
        _memo.clear()
        _fast.clear()


def _choose(
    s: _Spec,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    cache: _plans.PlanCache | None,
    autotune: bool | None = None,
    reps: int | None = None,
    force: bool = False,
) -> str:
    global _memo_owner
    cache = cache or _plans.default_cache()
    with _memo_lock:
        if _memo_owner is not cache:
            _memo.clear()
            _fast.clear()
            _memo_owner = cache
        if not force and s in _memo:
            return _memo[s]
    candidates = _candidates(s, x.device)
    entry = None if force else cache.get(s.key())
    algo = None
    if entry is not None:
        if entry["algo"] in candidates:
            algo = entry["algo"]
        else:  # e.g. the kernel is disabled now: the best measured one still available
            measured = entry.get("times_ms", {})
            times = {a: t for a, t in measured.items() if a in candidates and isinstance(t, (int, float))}
            algo = _pick(times) if times else None
    if algo is None:
        tune_now = _plans.autotune_enabled() if autotune is None else autotune
        if tune_now and len(candidates) > 1:
            with torch.no_grad():
                xs = x.detach()
                ws, bs = weight.detach(), None if bias is None else bias.detach()
                fns = {a: (lambda a=a: _run(a, xs, ws, bs, s)) for a in candidates}
                if "nchw" in fns and "nhwc" in fns and _nchw_is_slow_path(s):
                    del fns["nchw"]
                times = _measure(fns, reps)
                algo = _pick(times)
                entry = {"algo": algo, "times_ms": {a: round(t, 4) for a, t in times.items()}, "source": "measured"}
                rival = _best_torch(times) if algo.startswith("direct:") else None
                if rival is not None:  # confirm a direct pick head to head with PyTorch's best, more repetitions
                    duel = _measure({algo: fns[algo], rival: fns[rival]}, max(CONFIRM_REPS, reps or 0))
                    entry["confirm_ms"] = {a: round(t, 4) for a, t in duel.items()}
                    algo = entry["algo"] = _pick(duel)
            cache.put(s.key(), entry)
        else:
            algo = candidates[0]
    with _memo_lock:
        _memo[s] = algo
    return algo


def plan_for(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int | tuple[int, int] | str = "same",
    dilation: int | tuple[int, int] = 1,
    *,
    out_format: str | None = None,
    autotune: bool | None = None,
) -> str:
    """Return the algorithm :func:`depthwise_conv2d` would use for these arguments (measuring it if needed).

    Args:
        x: input (N, C, H, W).
        weight: depthwise weight (C, 1, kh, kw).
        bias: optional bias (C,).
        padding: int, (ph, pw), ``"same"`` or ``"valid"``.
        dilation: int or (dh, dw).
        out_format: None (match the input), ``"nchw"``, ``"nhwc"`` or ``"any"``.
        autotune: override :func:`lkconv.ops.plans.autotune_enabled` for this call.

    Returns:
        One of :data:`ALGORITHMS`.
    """
    _check_args(x, weight, bias)
    s = _make_spec(x, weight, bias, padding, dilation, out_format)
    return _choose(s, x, weight, bias, None, autotune)


def depthwise_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int | tuple[int, int] | str = "same",
    dilation: int | tuple[int, int] = 1,
    *,
    algo: str | None = None,
    out_format: str | None = None,
    _packed: _PackedWeight | None = None,
) -> torch.Tensor:
    """Stride-1 depthwise convolution, ``F.conv2d(x, weight, bias, 1, padding, dilation, groups=C)``, planned per shape.

    Args:
        x: input (N, C, H, W), NCHW or channels_last (other strides are made NCHW-contiguous).
        weight: depthwise weight (C, 1, kh, kw), same dtype and device as ``x``; any kernel size, even and non-square
            included.
        bias: optional bias (C,).
        padding: int, (ph, pw), ``"same"`` (asymmetric for even extents, as in PyTorch) or ``"valid"``.
        dilation: int or (dh, dw).
        algo: None to use the plan, or one of ``"nchw"``, ``"nhwc"``, ``"fft"``, ``"direct"`` or a
            ``"direct:..."`` variant (see :data:`ALGORITHMS`).
        out_format: None (same memory format as ``x``), ``"nchw"``, ``"nhwc"``, or ``"any"`` (whatever the algorithm
            produces natively).

    Returns:
        The output (N, C, Ho, Wo) in ``x``'s dtype; equal to ``F.conv2d`` within 1e-5 of the largest output magnitude
        in fp32 and 2e-2 in bf16 (the direct kernel accumulates bf16 in fp32, so it is usually closer than oneDNN).

    Raises:
        TypeError: for non-tensor arguments or mismatched dtypes.
        ValueError: for bad shapes, padding, dilation, ``algo`` or ``out_format``, an empty output, or a direct
            algorithm forced where it cannot run (autograd needed, non-CPU device, dtype other than fp32/bf16).
    """
    try:
        grad = torch.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        )
        fast_key = (
            x.shape, x.stride(), x.dtype, x.device, weight.shape, weight.dtype, weight.device,
            None if bias is None else (bias.shape, bias.dtype, bias.device),
            padding, dilation, algo, out_format, torch.get_num_threads(), grad,
        )  # fmt: skip
        hit = _fast.get(fast_key)
    except (AttributeError, TypeError):  # not tensors, or unhashable arguments: the full path reports or handles them
        fast_key, hit = None, None
    if hit is not None:
        return hit(x, weight, bias, _packed)
    _check_args(x, weight, bias)
    if algo is not None and algo not in _ALGO_NAMES:
        raise ValueError(f"algo must be None or one of {_ALGO_NAMES}, got {algo!r}")
    s = _make_spec(x, weight, bias, padding, dilation, out_format)
    chosen = algo
    if algo is None:
        if x.device.type != "cpu":
            chosen = "nhwc" if s.in_fmt == "nhwc" else "nchw"
        else:
            chosen = _choose(s, x, weight, bias, None)
    elif algo.startswith("direct"):
        if s.grad:
            raise ValueError(f"algo {algo!r} has no backward; run under torch.no_grad() or use 'nchw', 'nhwc' or 'fft'")
        if x.device.type != "cpu" or s.dtype not in _DIRECT_DTYPES:
            raise ValueError(f"algo {algo!r} needs a CPU fp32/bf16 input, got {x.device.type} {s.dtype}")
        if algo == "direct":
            chosen = _heuristic(s, list(DIRECT_VARIANTS))
    y = _run(chosen, x, weight, bias, s, _packed)
    if fast_key is not None:
        runner = _make_runner(chosen, s, y)
        with _memo_lock:
            if len(_fast) >= 4096:  # e.g. ever-changing input sizes: keep the table bounded
                _fast.clear()
            _fast[fast_key] = runner
    return y


def _make_runner(algo: str, s: _Spec, first_out: torch.Tensor) -> _Runner:
    """Return the fastest call sequence for later calls with the same arguments' metadata.

    When a PyTorch algorithm gets its input in its own layout with symmetric padding and (as seen on ``first_out``)
    already produces the requested output layout, later calls go straight to ``torch.conv2d``.
    """
    wanted = {"nchw": torch.contiguous_format, "nhwc": _CL}.get(s.out_fmt)
    out_ok = wanted is None or first_out.is_contiguous(memory_format=wanted)
    if algo in ("nchw", "nhwc") and algo == s.in_fmt and s.pt == s.pb and s.pl == s.pr and out_ok:
        conv, pad, dil, groups = torch.conv2d, (s.pt, s.pl), (s.dh, s.dw), s.c

        def run_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, packed: Any) -> torch.Tensor:
            return conv(x, w, b, 1, pad, dil, groups)

        return run_conv
    if algo in DIRECT_VARIANTS and s.in_fmt in ("nchw", "nhwc"):
        from lkconv.ops import _dwconv_ext

        kernel = _dwconv_ext.load().lk_dwconv2d_raw  # loaded: the first call just ran it
        mode, block = DIRECT_VARIANTS[algo]
        out_nhwc = s.out_fmt == "nhwc" or (s.out_fmt == "any" and s.in_fmt == "nhwc")
        threads = s.threads if _dwconv_ext.threads_supported() else 1
        shape, fmt = (s.n, s.c, s.ho, s.wo), _CL if out_nhwc else torch.contiguous_format
        const = (s.n, s.c, s.h, s.w, s.ho, s.wo, s.kh, s.kw, s.dh, s.dw, s.pt, s.pl, int(s.in_fmt == "nhwc"),
                 int(out_nhwc), int(s.dtype == torch.bfloat16), mode, block, threads)

        def run_direct(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, packed: Any) -> torch.Tensor:
            if packed is not None:
                return _run_direct(x, w, b, s, algo, packed)
            y = torch.empty(shape, dtype=x.dtype, memory_format=fmt)  # x's layout is fixed by the fast-path key
            w = w.contiguous()
            b = None if b is None else b.contiguous()
            rc = kernel(x.data_ptr(), w.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(), *const)
            if rc != 0:
                raise RuntimeError(f"the C depthwise kernel failed with code {rc}")
            return y

        return run_direct

    def run_any(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, packed: Any) -> torch.Tensor:
        return _run(algo, x, w, b, s, packed)

    return run_any


def _shape_args(shape: DwConvShape | Sequence[Any] | Mapping[str, Any]) -> DwConvShape:
    if isinstance(shape, DwConvShape):
        return shape
    if isinstance(shape, Mapping):
        try:
            return DwConvShape(**shape)
        except TypeError as exc:
            raise TypeError(f"bad shape mapping {dict(shape)!r}: {exc}") from None
    if isinstance(shape, Sequence) and not isinstance(shape, str) and 5 <= len(shape) <= 7:
        return DwConvShape(*shape)
    raise TypeError(
        f"a shape must be a DwConvShape, a mapping of its fields, or a tuple (n, c, h, w, kernel_size"
        f"[, dilation[, padding]]), got {shape!r}"
    )


def tune(
    shapes: Iterable[DwConvShape | Sequence[Any] | Mapping[str, Any]],
    *,
    dtype: torch.dtype = torch.float32,
    memory_format: str = "nchw",
    out_format: str | None = None,
    threads: int | None = None,
    reps: int | None = None,
    force: bool = False,
    cache: _plans.PlanCache | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> dict[str, str]:
    """Measure and store plans for a list of shapes ahead of time (the ``lkconv tune`` command calls this).

    Args:
        shapes: :class:`DwConvShape` objects, mappings of its fields, or tuples
            ``(n, c, h, w, kernel_size[, dilation[, padding]])``.
        dtype: input dtype to plan for.
        memory_format: input layout, ``"nchw"`` or ``"nhwc"``.
        out_format: as in :func:`depthwise_conv2d`.
        threads: torch threads to plan for (set for the duration of the call); None keeps the current number.
        reps: timed repetitions per candidate (after two warm-up calls each); None adapts it to the shape (3-10).
        force: re-measure shapes that already have a plan.
        cache: plan cache to fill; None means the default one.
        progress: optional callback ``progress(key, algo)`` after each shape.

    Returns:
        A dict from plan key to the chosen algorithm.

    Raises:
        TypeError: for a malformed shape or a non-floating dtype.
        ValueError: for a bad memory format, thread count, or shape values.
    """
    if memory_format not in ("nchw", "nhwc"):
        raise ValueError(f"memory_format must be 'nchw' or 'nhwc', got {memory_format!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if reps is not None and (not isinstance(reps, int) or reps < 1):
        raise ValueError(f"reps must be a positive int or None, got {reps!r}")
    specs = [_shape_args(s) for s in shapes]
    cache = cache or _plans.default_cache()
    old_threads = torch.get_num_threads()
    result: dict[str, str] = {}
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        gen = torch.Generator().manual_seed(0)
        for sh in specs:
            kh, kw = _pair(sh.kernel_size, "kernel_size", 1)
            for name, v in (("n", sh.n), ("c", sh.c), ("h", sh.h), ("w", sh.w)):
                if not isinstance(v, int) or v < 1:
                    raise ValueError(f"shape field {name} must be a positive int, got {v!r} in {sh!r}")
            x = torch.randn(sh.n, sh.c, sh.h, sh.w, generator=gen).to(dtype)
            if memory_format == "nhwc":
                x = x.contiguous(memory_format=_CL)
            w = (torch.randn(sh.c, 1, kh, kw, generator=gen) / (kh * kw)).to(dtype)
            with torch.no_grad():
                s = _make_spec(x, w, None, sh.padding, sh.dilation, out_format)
                algo = _choose(s, x, w, None, cache, autotune=True, reps=reps, force=force)
            result[s.key()] = algo
            if progress is not None:
                progress(s.key(), algo)
    finally:
        torch.set_num_threads(old_threads)
        _clear_memo()  # in-process choices are re-read from the (re)tuned cache
    cache.save()
    return result


# ----------------------------------------------------------------------------------------------------------- module


class PlannedDepthwiseConv2d(nn.Module):
    """Depthwise ``Conv2d`` (stride 1, zero padding) that runs :func:`depthwise_conv2d` with per-shape plans.

    Args:
        channels: input = output channels.
        kernel_size: int or (kh, kw).
        padding: int, (ph, pw), ``"same"`` or ``"valid"``.
        dilation: int or (dh, dw).
        bias: whether to learn a bias.
        algo: fixed algorithm (see :func:`depthwise_conv2d`), or None to plan per shape.
        out_format: output memory format policy (see :func:`depthwise_conv2d`).
        device: parameter device.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int] | str = "same",
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        *,
        algo: str | None = None,
        out_format: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.dilation = _pair(dilation, "dilation", 1)
        _resolve_padding(padding, *self.kernel_size, *self.dilation)  # validates
        self.padding = padding
        if algo is not None and algo not in _ALGO_NAMES:
            raise ValueError(f"algo must be None or one of {_ALGO_NAMES}, got {algo!r}")
        if out_format not in _OUT_FORMATS:
            raise ValueError(f"out_format must be one of None, 'nchw', 'nhwc', 'any', got {out_format!r}")
        self.algo = algo
        self.out_format = out_format
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(channels, 1, *self.kernel_size, **kw))
        self.bias = nn.Parameter(torch.empty(channels, **kw)) if bias else None
        self._packed = _PackedWeight()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d`` (Kaiming-uniform weight, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(
        cls, conv: nn.Conv2d, *, algo: str | None = None, out_format: str | None = None
    ) -> PlannedDepthwiseConv2d:
        """Wrap an existing depthwise ``nn.Conv2d``, sharing its weight and bias parameters (same device and dtype).

        Args:
            conv: a ``nn.Conv2d`` with ``groups == in_channels == out_channels``, stride 1 and zero padding.
            algo: as in the constructor.
            out_format: as in the constructor.

        Raises:
            TypeError: if ``conv`` is not an ``nn.Conv2d``.
            ValueError: if it is not a stride-1, zero-padded depthwise convolution.
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"from_conv expects an nn.Conv2d, got {type(conv).__name__}")
        c = conv.in_channels
        if not (conv.groups == c == conv.out_channels):
            raise ValueError(
                f"from_conv needs a depthwise conv (groups == in_channels == out_channels), got in={c}, "
                f"out={conv.out_channels}, groups={conv.groups}"
            )
        if tuple(conv.stride) != (1, 1):
            raise ValueError(f"from_conv supports stride 1 only, got stride {tuple(conv.stride)}")
        if conv.padding_mode != "zeros":
            raise ValueError(f"from_conv supports padding_mode='zeros' only, got {conv.padding_mode!r}")
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        mod = cls.__new__(cls)
        nn.Module.__init__(mod)
        mod.channels = c
        mod.kernel_size = tuple(conv.kernel_size)
        mod.dilation = tuple(conv.dilation)
        mod.padding = padding
        if algo is not None and algo not in _ALGO_NAMES:
            raise ValueError(f"algo must be None or one of {_ALGO_NAMES}, got {algo!r}")
        if out_format not in _OUT_FORMATS:
            raise ValueError(f"out_format must be one of None, 'nchw', 'nhwc', 'any', got {out_format!r}")
        mod.algo = algo
        mod.out_format = out_format
        mod.weight = conv.weight
        mod.bias = conv.bias
        mod._packed = _PackedWeight()
        return mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the convolution (under ``torch.compile``: the plain convolution, which inductor lowers to oneDNN and
        fuses with its neighbours, instead of a graph break at the plan lookup)."""
        if torch.compiler.is_compiling():
            return F.conv2d(x, self.weight, self.bias, 1, self.padding, self.dilation, self.channels)
        return depthwise_conv2d(
            x, self.weight, self.bias, self.padding, self.dilation, algo=self.algo, out_format=self.out_format,
            _packed=self._packed,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, padding={self.padding!r}, dilation={self.dilation}, "
            f"bias={self.bias is not None}, algo={self.algo!r}, out_format={self.out_format!r}"
        )
