"""Where an optimized UniRepLKNet's forward spends its time: per-call timers around each kind of operation.

Run: ``python benchmarks/bench_breakdown.py [--model unireplknet_t] [--dtype bf16] [--batch 16] [--repeats 3]``

Builds ``lkconv.optimize_for_inference(model, x, dtype=...)`` and wraps, by name, the operations its fused blocks
call — the depthwise convolution, the SE (``se_gate``), the first pointwise layer with its GELU
(``pointwise_gelu``), GRN (``gelu_grn``), the second pointwise layer with the residual addition (``pointwise_add``)
— and each stage and downsampling layer (the stem is ``down0``). Prints the mean wall time per forward of each, by
stage and in total, after two untimed forwards. The timers add a few microseconds per call; compare kinds of work
within one run, and take whole-model speed from ``bench_models.py``. On a shared machine, run it under
``chrt -f 10``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import steady_allocator  # noqa: E402

import lkconv  # noqa: E402
import lkconv.deploy.fast_unireplknet as optimize_module  # noqa: E402

#: Functions the fused block calls through lkconv.deploy.optimize's namespace.
BLOCK_OPS = ("se_gate", "pointwise_gelu", "gelu_grn", "pointwise_add")


def breakdown(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype, repeats: int) -> tuple[float, dict]:
    """(seconds per forward, {key: seconds per forward}); keys 'stageI', 'downI', 'sI:op' and 'all:op'."""
    fast = lkconv.optimize_for_inference(model, x, dtype=dtype)
    net, totals, stage = fast.net, {}, [""]

    def timed(key: str, fn: Callable, per_stage: bool) -> Callable:
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            k = f"{stage[0]}:{key}" if per_stage else key
            totals[k] = totals.get(k, 0.0) + time.perf_counter() - t0
            return out
        return wrapper

    def entering(i: int, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            stage[0] = f"s{i}"
            return fn(*args, **kwargs)
        return wrapper

    saved = {name: getattr(optimize_module, name) for name in BLOCK_OPS}
    try:
        for name in BLOCK_OPS:
            setattr(optimize_module, name, timed(name, saved[name], True))
        for block in net.modules():
            if isinstance(block, optimize_module.FastUniRepLKNetBlock):
                block.dwconv.forward = timed("dwconv", block.dwconv.forward, True)
        for i, layer in enumerate(net.downsample_layers):
            layer.forward = timed(f"down{i}", layer.forward, False)
        for i, st in enumerate(net.stages):
            st.forward = timed(f"stage{i}", entering(i, st.forward), False)
        with torch.inference_mode():
            for _ in range(2):
                fast(x)
            totals.clear()
            t0 = time.perf_counter()
            for _ in range(repeats):
                fast(x)
            total = (time.perf_counter() - t0) / repeats
    finally:
        for name, fn in saved.items():
            setattr(optimize_module, name, fn)
    per = {k: v / repeats for k, v in totals.items()}
    for k, v in list(per.items()):
        if ":" in k:
            op = "all:" + k.split(":", 1)[1]
            per[op] = per.get(op, 0.0) + v
    return total, per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="unireplknet_t")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--malloc", choices=("default", "steady"), default="steady")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.malloc == "steady":
        steady_allocator(no_mmap=True)
    torch.manual_seed(0)
    model = lkconv.create_model(args.model).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    total, per = breakdown(model, x, dtype, args.repeats)
    print(f"{args.model} {args.dtype} batch {args.batch} at {args.size}: {total * 1e3:.1f} ms per forward "
          f"({args.batch / total:.1f} img/s), {args.threads} threads, malloc {args.malloc}")
    for key, sec in sorted(per.items(), key=lambda kv: (not kv[0].startswith("all:"), -kv[1])):
        print(f"  {key:22s} {sec * 1e3:8.2f} ms  {sec / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
