"""Benchmark lkconv's planned depthwise convolution against PyTorch's F.conv2d in NCHW and channels_last.

For every grid point (C, H, k, B) the script first lets :func:`lkconv.ops.dwconv.depthwise_conv2d` plan the shape for
each input layout (first-use autotuning into a fresh cache directory, not timed), then times side by side, in one
process and in round-robin bursts (one round robin per point, so all methods of a point share the machine's state):

* ``lkconv`` for each input layout: the planned op on the input in that layout, output in the same layout;
* ``nchw``: ``F.conv2d`` on an NCHW input;
* ``cl``: ``F.conv2d`` on a channels_last input;

(with ``--aa`` also ``nchw_again`` and ``cl_again``, the same two calls once more: an A/A control that shows how
often an identical call measures more than 5 % slower than itself at this machine's noise)
and reports medians, the best single PyTorch layout (``min(nchw, cl)``, each given its input in its own layout for
free), GFLOP/s on useful MACs (taps that hit real pixels, not padding), the geometric-mean speed-up of lkconv over
NCHW and over the best layout, and the worst ratio lkconv / best layout.

Examples::

    python benchmarks/bench_dwconv.py --quick
    python benchmarks/bench_dwconv.py --threads 2 --layouts nhwc,nchw --out docs/bench_dwconv_table.md
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import steady_allocator  # noqa: E402

GRID_C = (40, 64, 80, 160, 320, 640)
GRID_H = (7, 14, 28, 56)
GRID_K = (3, 7, 13, 17, 31)
GRID_B = (1, 16)
# UniRepLKNet-like (C, H) pairs: channels double as the map halves
QUICK_CH = ((64, 56), (160, 28), (320, 14), (640, 7))
QUICK_K = (3, 7, 13, 31)


@dataclass
class Row:
    """One benchmark point."""

    layout: str
    b: int
    c: int
    h: int
    k: int
    algo: str
    lk_ms: float
    nchw_ms: float
    cl_ms: float
    gmacs: float
    single: str  # methods timed only once (slow), e.g. "nchw"
    again_ms: float | None = None  # --aa: the best PyTorch layout timed a second time in the same round robin

    @property
    def best_ms(self) -> float:
        return min(self.nchw_ms, self.cl_ms)

    @property
    def best_name(self) -> str:
        return "nchw" if self.nchw_ms <= self.cl_ms else "cl"


def cpu_model() -> str:
    """Return ``lscpu``'s model name (or platform.processor())."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


#: One sample is a burst of back-to-back calls of one method lasting about this long (at most BURST_MAX_CALLS),
#: after one untimed call. Sub-millisecond calls timed right after a *different* method measured up to 2x their
#: steady time at 2 threads (e.g. identical oneDNN calls 0.11 vs 0.19 ms when the one before was PyTorch's slow NCHW
#: path: allocator and cache state), so without this a method's time depended on its neighbour in the rotation.
BURST_SECONDS = 2e-3
BURST_MAX_CALLS = 50


def bench_point(
    fns: dict[str, Callable[[], object]],
    budget_s: float,
    max_reps: int,
    stat: str = "median",
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, float], str]:
    """Median (or min) seconds per call of each fn: round-robin bursts after two warm-up calls each.

    A sample is the mean over a burst of consecutive calls after an untimed one (see BURST_SECONDS); methods rotate
    between bursts.
    Methods whose warm-up is over 20x the fastest (e.g. PyTorch's NCHW slow path at k >= 17) are timed once more and
    not repeated. Returns (per-call times, comma-separated names of the methods timed once).
    """
    warm = {}
    for name, fn in fns.items():
        for _ in range(2):  # the second call sizes the bursts: the first may include one-off costs (plans, primitives)
            t0 = clock()
            fn()
            warm[name] = clock() - t0
            if warm[name] > 0.05:  # slow enough that one-off costs do not matter (and PyTorch's NCHW k >= 17 path
                break  # can take seconds per call)
    fastest = min(warm.values())
    slow = [n for n, t in warm.items() if t > 20 * fastest and t > 0.05]
    fast = [n for n in fns if n not in slow]
    calls = {n: int(min(BURST_MAX_CALLS, max(1, BURST_SECONDS // max(warm[n], 1e-9)))) for n in fast}
    per_round = sum(warm[n] * calls[n] for n in fast)
    reps = int(max(5, min(max_reps, budget_s / max(per_round, 1e-6))))
    samples: dict[str, list[float]] = {n: [] for n in fns}
    for n in slow:
        t0 = clock()
        fns[n]()
        samples[n].append(clock() - t0)
    for r in range(reps):
        for i in range(len(fast)):  # rotate the order: no method always runs right after the same one
            n = fast[(i + r) % len(fast)]
            fns[n]()  # untimed: absorbs the switch from the previous method
            t0 = clock()
            for _ in range(calls[n]):
                fns[n]()
            samples[n].append((clock() - t0) / calls[n])
    reduce = statistics.median if stat == "median" else min
    return {n: reduce(v) for n, v in samples.items()}, ",".join(slow)


def geomean(values: list[float]) -> float:
    """Geometric mean of positive values."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows: list[Row], layout: str) -> str:
    """Markdown summary lines for one input layout."""
    sel = [r for r in rows if r.layout == layout]
    if not sel:
        return ""
    worst = max(sel, key=lambda r: r.lk_ms / r.best_ms)
    over5 = [r for r in sel if r.lk_ms > 1.05 * r.best_ms]
    return (
        f"- input {layout}, {len(sel)} points: geomean speed-up over F.conv2d NCHW "
        f"**{geomean([r.nchw_ms / r.lk_ms for r in sel]):.2f}x**, over the best single PyTorch layout "
        f"**{geomean([r.best_ms / r.lk_ms for r in sel]):.2f}x**; worst lkconv/best ratio "
        f"**{worst.lk_ms / worst.best_ms:.2f}** at B{worst.b} C{worst.c} H{worst.h} k{worst.k} "
        f"({worst.algo}: {worst.lk_ms:.3f} ms vs {worst.best_name} {worst.best_ms:.3f} ms); "
        f"points more than 5% slower than the best layout: {len(over5)}\n"
    )


def summary_aa(rows: list[Row]) -> str:
    """Markdown line for the A/A control: the best PyTorch layout against its own second timing, per grid point."""
    points = {(r.b, r.c, r.h, r.k): r for r in rows if r.again_ms is not None}
    if not points:
        return ""
    ratios = {key: r.again_ms / r.best_ms for key, r in points.items()}
    (b, c, h, k), worst = max(ratios.items(), key=lambda kv: kv[1])
    over5 = sum(1 for v in ratios.values() if v > 1.05)
    return (
        f"- A/A control ({len(points)} points): the best PyTorch layout, timed a second time in the same round robin, "
        f"is more than 5% slower than its first timing at **{over5}** points (worst {worst:.2f}x at B{b} C{c} H{h} "
        f"k{k}); geomean {geomean(list(ratios.values())):.3f}x\n"
    )


def summary_free_layout(rows: list[Row]) -> str:
    """Markdown summary per grid point when the caller picks the layout, as with PyTorch's "best layout".

    lkconv's time is its faster input layout at the point (a network optimised by lkconv runs in the layout its plans
    prefer; an NCHW-in, NCHW-out call cannot use channels_last for free) against the faster of PyTorch's two layouts.
    """
    points: dict[tuple[int, int, int, int], dict[str, Row]] = {}
    for r in rows:
        points.setdefault((r.b, r.c, r.h, r.k), {})[r.layout] = r
    both = [d for d in points.values() if len(d) == 2]
    if not both:
        return ""
    pairs = [(min(d.values(), key=lambda r: r.lk_ms), min(r.best_ms for r in d.values())) for d in both]
    ratios = [best / r.lk_ms for r, best in pairs]
    over_nchw = [d["nchw"].nchw_ms / r.lk_ms for d, (r, _) in zip(both, pairs)]
    worst_r, worst_best = min(pairs, key=lambda p: p[1] / p[0].lk_ms)
    over5 = sum(1 for r, best in pairs if r.lk_ms > 1.05 * best)
    return (
        f"- layout chosen freely (lkconv's faster input layout vs PyTorch's faster layout), {len(pairs)} points: "
        f"geomean speed-up over the best PyTorch layout **{geomean(ratios):.2f}x**, over F.conv2d NCHW "
        f"**{geomean(over_nchw):.2f}x**; "
        f"worst lkconv/best ratio **{worst_r.lk_ms / worst_best:.2f}** at B{worst_r.b} C{worst_r.c} H{worst_r.h} "
        f"k{worst_r.k} ({worst_r.layout} input, {worst_r.algo}: {worst_r.lk_ms:.3f} ms vs {worst_best:.3f} ms); "
        f"points more than 5% slower than the best layout: {over5}\n"
    )


def table(rows: list[Row]) -> str:
    """Markdown table of all rows (with an A/A column when the rows have the --aa control)."""
    aa = any(r.again_ms is not None for r in rows)
    head = (
        "| input | B | C | H | k | plan | lkconv ms | NCHW ms | CL ms | best | vs NCHW | vs best | lkconv GFLOP/s |"
        + (" best again / best |" if aa else "") + "\n"
        + "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if aa else "") + "\n"
    )
    lines = []
    for r in rows:
        mark = "*" if "nchw" in r.single.split(",") else ""
        again = "" if not aa else (" n/a |" if r.again_ms is None else f" {r.again_ms / r.best_ms:.2f} |")
        lines.append(
            f"| {r.layout} | {r.b} | {r.c} | {r.h} | {r.k} | {r.algo} | {r.lk_ms:.3f} | {r.nchw_ms:.3f}{mark} | "
            f"{r.cl_ms:.3f} | {r.best_name} | {r.nchw_ms / r.lk_ms:.2f} | {r.best_ms / r.lk_ms:.2f} | "
            f"{2 * r.gmacs / r.lk_ms * 1e3:.1f} |{again}"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="UniRepLKNet-like subset: (C,H) in " + str(QUICK_CH))
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--layouts", default="nhwc,nchw", help="input layouts to run, from nchw,nhwc (default both)")
    ap.add_argument("--batches", default=",".join(map(str, GRID_B)))
    ap.add_argument("--channels", default=None, help="comma list overriding the C grid")
    ap.add_argument("--sizes", default=None, help="comma list overriding the H grid")
    ap.add_argument("--kernels", default=None, help="comma list overriding the k grid")
    ap.add_argument("--budget", type=float, default=0.5, help="seconds of repetitions per point (default 0.5)")
    ap.add_argument("--max-reps", type=int, default=25)
    ap.add_argument("--stat", choices=("median", "min"), default="median", help="statistic over repeats")
    ap.add_argument(
        "--clock",
        choices=("wall", "thread"),
        default="wall",
        help="wall: perf_counter; thread: the calling thread's CPU time (only with --threads 1; immune to preemption "
        "by other processes on a shared machine)",
    )
    ap.add_argument("--max-gb", type=float, default=2.0, help="skip points whose input tensor exceeds this")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc settings alone (default: steady_allocator(), see benchmarks/_timing.py)")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="input, weight and output dtype of every method (default fp32)")
    ap.add_argument("--aa", action="store_true",
                    help="A/A control: time both PyTorch layouts twice per point (about 1.5x the run time)")
    ap.add_argument("--out", default=None, help="also write the markdown report to this file")
    args = ap.parse_args(argv)

    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread needs --threads 1 (other threads' work would not be counted)")
    layouts = [s for s in args.layouts.split(",") if s]
    if not layouts or any(s not in ("nchw", "nhwc") for s in layouts):
        ap.error(f"--layouts takes nchw and/or nhwc, got {args.layouts!r}")
    if "LKCONV_CACHE_DIR" not in os.environ:  # a fresh cache: plans are made by first-use autotuning here
        os.environ["LKCONV_CACHE_DIR"] = tempfile.mkdtemp(prefix="lkconv-bench-")

    import torch
    import torch.nn.functional as F

    from lkconv.ops import dwconv

    torch.set_num_threads(args.threads)
    malloc = "glibc defaults" if args.default_malloc else (
        "steady (mallopt: mmap threshold 32 MiB, no trim)" if steady_allocator() else "glibc defaults (mallopt n/a)")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    ints = lambda s: tuple(int(v) for v in s.split(",") if v)  # noqa: E731
    batches = ints(args.batches)
    if args.quick:
        ch = [(c, h) for c, h in QUICK_CH]
        ks = QUICK_K
    else:
        cs = ints(args.channels) if args.channels else GRID_C
        hs = ints(args.sizes) if args.sizes else GRID_H
        ch = [(c, h) for c in cs for h in hs]
        ks = GRID_K
    if args.channels and args.quick:
        ch = [(c, h) for c, h in ch if c in ints(args.channels)]
    if args.kernels:
        ks = ints(args.kernels)

    header = (
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{args.threads} torch threads, dtype {args.dtype}, "
        f"direct kernel {'available' if dwconv.direct_available() else 'UNAVAILABLE'}, "
        f"statistic: {args.stat} over round-robin bursts, clock: {args.clock}, malloc: {malloc}\n"
        f"Command: python {' '.join(sys.argv)}\n"
    )
    print(header, flush=True)
    rows: list[Row] = []
    gen = torch.Generator().manual_seed(0)
    t_start = time.time()
    for b in batches:
        for c, h in ch:
            if b * c * h * h * 4 > args.max_gb * 2**30:
                print(f"skip B{b} C{c} H{h}: input over {args.max_gb} GB", flush=True)
                continue
            dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
            x = torch.randn(b, c, h, h, generator=gen).to(dtype)
            xc = x.contiguous(memory_format=torch.channels_last)
            for k in ks:
                w = (torch.randn(c, 1, k, k, generator=gen) / k).to(dtype)
                p = k // 2
                inputs = {lay: (xc if lay == "nhwc" else x) for lay in layouts}
                with torch.no_grad():
                    algos = {lay: dwconv.plan_for(xin, w, None, p) for lay, xin in inputs.items()}
                    fns = {f"lk_{lay}": (lambda xin=xin, w=w, p=p: dwconv.depthwise_conv2d(xin, w, None, p))
                           for lay, xin in inputs.items()}
                    fns["nchw"] = lambda x=x, w=w, p=p, c=c: F.conv2d(x, w, None, 1, p, 1, c)
                    fns["cl"] = lambda xc=xc, w=w, p=p, c=c: F.conv2d(xc, w, None, 1, p, 1, c)
                    if args.aa:
                        fns["nchw_again"], fns["cl_again"] = fns["nchw"], fns["cl"]
                    med, single = bench_point(fns, args.budget, args.max_reps, args.stat, clock)
                for layout in layouts:
                    row = Row(layout, b, c, h, k, algos[layout], med[f"lk_{layout}"] * 1e3, med["nchw"] * 1e3,
                              med["cl"] * 1e3, dwconv.useful_macs(b, c, h, h, k, 1, p) * 1e-9, single)
                    if args.aa:
                        row.again_ms = med[f"{row.best_name}_again"] * 1e3
                    rows.append(row)
                    print(
                        f"[{time.time() - t_start:6.0f}s] {layout} B{b} C{c} H{h} k{k}: {row.algo:14s} "
                        f"lk {row.lk_ms:8.3f}  nchw {row.nchw_ms:8.3f}  cl {row.cl_ms:8.3f}  "
                        f"vs best {row.best_ms / row.lk_ms:5.2f}",
                        flush=True,
                    )
    report = (header + "\n" + "".join(summary(rows, lay) for lay in layouts) + summary_free_layout(rows)
              + summary_aa(rows) + "\n" + table(rows))
    print("\n" + report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
