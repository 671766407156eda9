"""Which algorithm runs a depthwise convolution: measured on first use, read from the plan cache, or guessed.

:func:`choose` returns the plan of a :class:`~lkconv.ops.dwconv.spec.Spec`: the in-process memo, else the
persistent :class:`~lkconv.ops.plans.PlanCache`, else a measurement of the applicable candidates (when autotuning is
on; a direct-kernel winner is confirmed head to head against PyTorch's best) or :func:`heuristic` (when it is off).
:func:`tune` fills the cache ahead of time; :func:`plan_for` tells what a call would use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from lkconv.ops import plans as _plans
from lkconv.ops.dwconv import timing
from lkconv.ops.dwconv.backends import direct_available, run, run_torch
from lkconv.ops.dwconv.spec import DIFFERENTIABLE, DIRECT_DTYPES, DwConvShape, Spec, check_args, make_spec, pair

__all__ = ["CONFIRM_REPS", "DIRECT_MARGIN", "choose", "clear_memo", "heuristic", "pick", "plan_for", "tune"]

_CL = torch.channels_last


def _candidates(s: Spec, device: torch.device) -> list[str]:
    """Algorithms applicable to the spec, in the order they are measured (likely winners first)."""
    if s.grad:
        allowed = list(DIFFERENTIABLE)
    else:
        allowed = ["nchw", "nhwc", "fft"]
        if device.type == "cpu" and s.dtype in DIRECT_DTYPES and direct_available():
            allowed += ["direct:cols14"]
            if s.wo > 7:
                allowed.append("direct:cols7")
            if s.n >= 4:
                allowed.append("direct:batch8")
            if s.n >= 12:
                allowed.append("direct:batch16")
    if not (max(s.kh, s.kw) >= 31 and min(s.h, s.w) >= 28):
        allowed.remove("fft")  # measured never to win below this (see docs/bench_dwconv.md)
    first = heuristic(s, allowed)
    return [first] + [a for a in allowed if a != first]


def _nchw_is_slow_path(s: Spec) -> bool:
    """Whether PyTorch's NCHW depthwise conv is on its slow (non-oneDNN) path for this kernel, judged on a cheap proxy.

    With torch 2.x on x86, kernels of 17 and more run 30-85x slower in NCHW than in channels_last; one warm-up call of
    that path on a big batch can take seconds, so first-use tuning probes it on a single 16-channel image first.
    """
    if s.device != "cpu" or max(s.kh, s.kw) < 17 or s.n * s.c <= 16:
        return False
    proxy = replace(s, n=1, c=16, in_fmt="nchw", out_fmt="any")
    xp = torch.randn(1, 16, s.h, s.w, dtype=s.dtype)
    wp = torch.randn(16, 1, s.kh, s.kw, dtype=s.dtype)
    times = timing.measure({a: (lambda a=a: run_torch(xp, wp, None, proxy, a)) for a in ("nchw", "nhwc")}, 2, prune=1e9)
    return times["nchw"] > 4 * times["nhwc"]


def heuristic(s: Spec, allowed: Sequence[str]) -> str:
    """Pick an algorithm without timing anything.

    The rules summarise the plans measured on the benchmark grid (docs/bench_dwconv.md; torch 2.13 oneDNN, AVX-512):
    the direct kernel wins for NCHW inputs and for large kernels, except that oneDNN's channels_last kernel is as fast
    for small kernels on channels_last batches and big maps, and for batched kernels of 17+ on 14x14 maps.
    """
    taps = s.kh * s.kw
    if s.device != "cpu":  # cuDNN runs either layout well: keep the input's and pay no conversion
        return "nhwc" if s.in_fmt == "nhwc" and "nhwc" in allowed else "nchw"
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


def pick(times_ms: Mapping[str, float]) -> str:
    """Choose the fastest algorithm, breaking near-ties (within :data:`DIRECT_MARGIN`) in favour of PyTorch's."""
    best = min(times_ms, key=times_ms.__getitem__)
    best_torch = _best_torch(times_ms)
    if best.startswith("direct:") and best_torch is not None and times_ms[best] > DIRECT_MARGIN * times_ms[best_torch]:
        return best_torch
    return best


_memo: dict[Spec, str] = {}
Runner = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", Any], torch.Tensor]
# per-call fast path (lkconv.ops.dwconv.functional): (shapes, strides, dtypes, devices, padding, dilation, algo, out_format, threads, grad) -> runner;
# skips validation and planning for argument combinations already seen
fast_paths: dict[tuple[Any, ...], Runner] = {}
_memo_owner: _plans.PlanCache | None = None
memo_lock = threading.Lock()


def clear_memo() -> None:
    """Forget in-process plan choices (they are re-read from the plan cache or re-planned on next use)."""
    with memo_lock:
        _memo.clear()
        fast_paths.clear()


def _synchronized(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


def choose(
    s: Spec,
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
    with memo_lock:
        if _memo_owner is not cache:
            _memo.clear()
            fast_paths.clear()
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
            algo = pick(times) if times else None
    if algo is None:
        tune_now = _plans.autotune_enabled() if autotune is None else autotune
        if tune_now and len(candidates) > 1:
            with torch.no_grad():
                xs = x.detach()
                ws, bs = weight.detach(), None if bias is None else bias.detach()
                fns = {a: (lambda a=a: run(a, xs, ws, bs, s)) for a in candidates}
                if s.device == "cuda":  # kernels are asynchronous: time them to completion
                    fns = {a: _synchronized(f) for a, f in fns.items()}
                if "nchw" in fns and "nhwc" in fns and _nchw_is_slow_path(s):
                    del fns["nchw"]
                times = timing.measure(fns, reps)
                algo = pick(times)
                entry = {"algo": algo, "times_ms": {a: round(t, 4) for a, t in times.items()}, "source": "measured"}
                rival = _best_torch(times) if algo.startswith("direct:") else None
                if rival is not None:  # confirm a direct pick head to head with PyTorch's best, more repetitions
                    duel = timing.measure({algo: fns[algo], rival: fns[rival]}, max(CONFIRM_REPS, reps or 0))
                    entry["confirm_ms"] = {a: round(t, 4) for a, t in duel.items()}
                    algo = entry["algo"] = pick(duel)
            cache.put(s.key(), entry)
        else:
            algo = candidates[0]
    with memo_lock:
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
    check_args(x, weight, bias)
    s = make_spec(x, weight, bias, padding, dilation, out_format)
    return choose(s, x, weight, bias, None, autotune)


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
            kh, kw = pair(sh.kernel_size, "kernel_size", 1)
            for name, v in (("n", sh.n), ("c", sh.c), ("h", sh.h), ("w", sh.w)):
                if not isinstance(v, int) or v < 1:
                    raise ValueError(f"shape field {name} must be a positive int, got {v!r} in {sh!r}")
            x = torch.randn(sh.n, sh.c, sh.h, sh.w, generator=gen).to(dtype)
            if memory_format == "nhwc":
                x = x.contiguous(memory_format=_CL)
            w = (torch.randn(sh.c, 1, kh, kw, generator=gen) / (kh * kw)).to(dtype)
            with torch.no_grad():
                s = make_spec(x, w, None, sh.padding, sh.dilation, out_format)
                algo = choose(s, x, w, None, cache, autotune=True, reps=reps, force=force)
            result[s.key()] = algo
            if progress is not None:
                progress(s.key(), algo)
    finally:
        torch.set_num_threads(old_threads)
        clear_memo()  # in-process choices are re-read from the (re)tuned cache
    cache.save()
    return result
