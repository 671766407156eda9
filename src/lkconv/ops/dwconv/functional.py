"""``depthwise_conv2d``: the planned depthwise convolution, with a fast path for argument combinations already seen.

The first call with some shapes, strides, dtypes and options validates them, asks the planner for the algorithm and
runs it; it also records in ``planner.fast_paths`` the shortest call sequence for that combination, which later
calls take without validation or planning.
"""

from __future__ import annotations

from typing import Any

import torch

from lkconv.ops import native
from lkconv.ops.dwconv.backends import PackedWeight, run, run_direct
from lkconv.ops.dwconv.planner import Runner, choose, fast_paths, heuristic, memo_lock
from lkconv.ops.dwconv.spec import ALGO_NAMES, DIRECT_DTYPES, DIRECT_VARIANTS, Spec, check_args, make_spec

__all__ = ["depthwise_conv2d"]

_CL = torch.channels_last


def depthwise_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: int | tuple[int, int] | str = "same",
    dilation: int | tuple[int, int] = 1,
    *,
    algo: str | None = None,
    out_format: str | None = None,
    _packed: PackedWeight | None = None,
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
        hit = fast_paths.get(fast_key)
    except (AttributeError, TypeError):  # not tensors, or unhashable arguments: the full path reports or handles them
        fast_key, hit = None, None
    if hit is not None:
        return hit(x, weight, bias, _packed)
    check_args(x, weight, bias)
    if algo is not None and algo not in ALGO_NAMES:
        raise ValueError(f"algo must be None or one of {ALGO_NAMES}, got {algo!r}")
    s = make_spec(x, weight, bias, padding, dilation, out_format)
    chosen = algo
    if algo is None:
        if x.device.type not in ("cpu", "cuda"):
            chosen = "nhwc" if s.in_fmt == "nhwc" else "nchw"
        else:
            chosen = choose(s, x, weight, bias, None)
    elif algo.startswith("direct"):
        if s.grad:
            raise ValueError(f"algo {algo!r} has no backward; run under torch.no_grad() or use 'nchw', 'nhwc' or 'fft'")
        if x.device.type != "cpu" or s.dtype not in DIRECT_DTYPES:
            raise ValueError(f"algo {algo!r} needs a CPU fp32/bf16 input, got {x.device.type} {s.dtype}")
        if algo == "direct":
            chosen = heuristic(s, list(DIRECT_VARIANTS))
    y = run(chosen, x, weight, bias, s, _packed)
    if fast_key is not None:
        runner = _make_runner(chosen, s, y)
        with memo_lock:
            if len(fast_paths) >= 4096:  # e.g. ever-changing input sizes: keep the table bounded
                fast_paths.clear()
            fast_paths[fast_key] = runner
    return y


def _make_runner(algo: str, s: Spec, first_out: torch.Tensor) -> Runner:
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
        kernel = native.load().lk_dwconv2d_raw  # loaded: the first call just ran it
        mode, block = DIRECT_VARIANTS[algo]
        out_nhwc = s.out_fmt == "nhwc" or (s.out_fmt == "any" and s.in_fmt == "nhwc")
        threads = s.threads if native.threads_supported() else 1
        shape, fmt = (s.n, s.c, s.ho, s.wo), _CL if out_nhwc else torch.contiguous_format
        const = (s.n, s.c, s.h, s.w, s.ho, s.wo, s.kh, s.kw, s.dh, s.dw, s.pt, s.pl, int(s.in_fmt == "nhwc"),
                 int(out_nhwc), int(s.dtype == torch.bfloat16), mode, block, threads)

        def run_kernel(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, packed: Any) -> torch.Tensor:
            if packed is not None:
                return run_direct(x, w, b, s, algo, packed)
            y = torch.empty(shape, dtype=x.dtype, memory_format=fmt)  # x's layout is fixed by the fast-path key
            w = w.contiguous()
            b = None if b is None else b.contiguous()
            rc = kernel(x.data_ptr(), w.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(), *const)
            if rc != 0:
                raise RuntimeError(f"the C depthwise kernel failed with code {rc}")
            return y

        return run_kernel

    def run_any(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, packed: Any) -> torch.Tensor:
        return run(algo, x, w, b, s, packed)

    return run_any
