"""Inference throughput of UniRepLKNet variants: plain eager references vs lkconv's optimized modules.

Run: ``python benchmarks/bench_models.py [--models a p t] [--batches 1 16] [--threads 2] [--repeats 5] [--out FILE]``

Side by side in one process, round-robin repeats, medians. Columns (img/s and effective GFLOP/s = 2·MACs/time):
  plain-train   a literal NCHW implementation, training structure (benchmarks/_plain_unireplknet.py)
  plain-deploy  the same, re-parameterized structure (the baseline of the targets: what a user gets from
                straightforward modules — channels-first LayerNorm from mean/var, Linear on permuted tensors)
  lkconv-eager  lkconv's own re-parameterized model, eager, no optimize_for_inference
  plain+compile plain-deploy under torch.compile
  opt-fp32      lkconv.optimize_for_inference (fp32)
  opt-bf16      the same in bf16
  opt+compile   opt-fp32 with compile=True
With ``--gemm-share`` a second table splits plain-deploy, opt-fp32 and opt-bf16 into their dense layers (GEMMs: the
pointwise 1×1 convolutions / Linears and the head, in oneDNN or MKL; and the stem's and downsampling layers' k×k
convolutions) and everything else, from ``torch.profiler`` (wall time of each op on the calling thread), and gives
the bound the dense layers put on the speed-up: plain-deploy's timed median over the optimized module's dense time
— what lkconv would reach if every other operation took no time.
All modules hold the same weights. bf16 top-1 agreement with fp32 is measured on the same random batch (the test
suite checks it on real images). On a shared machine, run it under ``chrt -f 10`` (as root) so other processes
cannot preempt the timed threads.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_medians, machine_description, steady_allocator  # noqa: E402

import lkconv  # noqa: E402
from _plain_unireplknet import plain_like  # noqa: E402

from lkconv.analysis.complexity import count_macs  # noqa: E402
from lkconv.deploy import optimize_for_inference  # noqa: E402


#: Profiler ops that are GEMMs (dense layers) whatever their inputs; convolutions count by their weight's shape.
GEMM_OPS = {"aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise", "aten::mkldnn_linear"}
CONV_OPS = {"aten::mkldnn_convolution", "mkldnn::_convolution_pointwise", "aten::_slow_conv2d_forward",
            "aten::thnn_conv2d", "aten::_convolution_depthwise2d"}


def dense_ms(fn, x: torch.Tensor, calls: int = 3) -> tuple[float, float, float]:
    """Per call of ``fn(x)`` under torch.profiler, after one warm-up call: (wall ms, ms in GEMMs — Linears and 1x1
    convolutions —, ms in the other dense convolutions — k x k, not depthwise: the stem and downsampling layers)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        fn(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(x)
            wall = (time.perf_counter() - t0) / calls
    gemm = conv = 0.0
    for e in prof.key_averages(group_by_input_shape=True):
        ms = e.self_cpu_time_total / 1e3 / calls
        # the weight is the last 4-d input: (x, weight, bias, ...) or, with a binary post-op, (x, other, weight, ...)
        weight = next((sh for sh in reversed(e.input_shapes or []) if len(sh) == 4), [])
        if e.key in GEMM_OPS or (e.key in CONV_OPS and len(weight) == 4 and weight[2:] == [1, 1]):
            gemm += ms
        elif e.key in CONV_OPS and len(weight) == 4 and weight[1] > 1:
            conv += ms
    return wall * 1e3, gemm, conv


def bench(variant: str, batch: int, repeats: int, with_compile: bool, clock: str = "wall",
          gemm_share: bool = False) -> dict:
    torch.manual_seed(0)
    name = f"unireplknet_{variant}"
    train_m = lkconv.create_model(name).eval()
    for m in train_m.modules():  # trained-like statistics; speed does not depend on them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    deploy_m = lkconv.reparameterize_model(copy.deepcopy(train_m))
    plain_train, plain_deploy = plain_like(train_m).eval(), plain_like(deploy_m).eval()
    x = torch.randn(batch, 3, 224, 224)
    macs = count_macs(plain_deploy, x[:1])  # plain modules: every multiply-add is in a hooked Conv2d/Linear
    fns = {"plain-train": lambda: plain_train(x), "plain-deploy": lambda: plain_deploy(x),
           "lkconv-eager": lambda: deploy_m(x)}
    opt32 = optimize_for_inference(train_m, x)
    opt16 = optimize_for_inference(train_m, x, dtype=torch.bfloat16)
    fns["opt-fp32"] = lambda: opt32(x)
    fns["opt-bf16"] = lambda: opt16(x)
    if with_compile:
        # Dynamo keeps at most recompile_limit (8) graphs per function for all models of a class in a process; past
        # it the "compiled" models of the later grid points silently ran eagerly (the tables before session 4).
        torch._dynamo.reset()
        compiled_plain = torch.compile(plain_deploy, dynamic=False)
        with torch.inference_mode():
            compiled_plain(x)
        fns["plain+compile"] = lambda: compiled_plain(x)
        optc = optimize_for_inference(train_m, x, compile=True)
        fns["opt+compile"] = lambda: optc(x)

    def inference(fn):
        def run():
            with torch.inference_mode():
                return fn()
        return run

    times = interleaved_medians({k: inference(f) for k, f in fns.items()}, repeats, clock=clock)
    with torch.inference_mode():
        ref, out16, out32 = plain_deploy(x), opt16(x), opt32(x)
    agree = (ref.argmax(-1) == out16.argmax(-1)).float().mean().item()
    fp32_rel = ((out32 - ref).abs().max() / ref.abs().max()).item()
    base = times["plain-deploy"]
    shares = {k: dense_ms(m, x) for k, m in (("plain-deploy", plain_deploy), ("opt-fp32", opt32), ("opt-bf16", opt16))
              } if gemm_share else {}
    return {"gemm_share": shares, "base_ms": base * 1e3, "model": name, "batch": batch, "gmacs": macs / 1e9,
            "img_s": {k: batch / t for k, t in times.items()},
            "speedup": {k: base / t for k, t in times.items()},
            "gflops": {k: 2 * macs * batch / t / 1e9 for k, t in times.items()},
            "bf16_top1_agree_random": agree, "fp32_max_rel_diff": fp32_rel}


def gemm_share_table(results: list[dict]) -> str:
    """Markdown: per model, the dense layers' time in each module and the speed-up bounds they imply."""
    rows = ["| model | batch | " + " | ".join(f"{k} profiled ms (GEMM ms + dense conv ms, share)" for k in SHARE_COLS)
            + " | bound fp32 × GEMM (+conv) | bound bf16 × GEMM (+conv) |", "|" + "---|" * (len(SHARE_COLS) + 4)]
    for r in results:
        sh = r["gemm_share"]
        cells = [f"{sh[k][0]:.1f} ({sh[k][1]:.1f} + {sh[k][2]:.1f}, {(sh[k][1] + sh[k][2]) / sh[k][0]:.0%})"
                 for k in SHARE_COLS]
        bounds = [f"{r['base_ms'] / sh[k][1]:.2f}× ({r['base_ms'] / (sh[k][1] + sh[k][2]):.2f}×)"
                  for k in ("opt-fp32", "opt-bf16")]
        rows.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells) + " | " + " | ".join(bounds) + " |")
    return ("Dense layers under torch.profiler (wall time of each op on the calling thread): GEMMs (the pointwise "
            "1×1 convolutions / Linears and the head) and the other dense convolutions (stem, downsampling). "
            "Bound = plain-deploy's timed median / the module's GEMM ms (+ dense conv ms): its speed-up if nothing "
            "else took time.\n\n" + "\n".join(rows))


SHARE_COLS = ("plain-deploy", "opt-fp32", "opt-bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["a", "p", "t"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of the calling thread (use with --threads 1 on a busy machine)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--malloc", choices=["default", "steady"], default="default",
                    help="steady: glibc's malloc keeps all memory in the heap for every model alike "
                         "(_timing.steady_allocator(no_mmap=True)); default: glibc's own settings")
    ap.add_argument("--gemm-share", action="store_true",
                    help="also profile the dense layers' share of plain-deploy, opt-fp32 and opt-bf16 (second table)")
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.malloc == "steady" and not steady_allocator(no_mmap=True):
        raise SystemExit("--malloc steady needs glibc (mallopt)")
    cols = ["plain-train", "plain-deploy", "lkconv-eager", "plain+compile", "opt-fp32", "opt-bf16", "opt+compile"]
    if args.clock == "thread" and args.threads != 1:
        raise SystemExit("--clock thread measures one thread: use it with --threads 1")
    lines = [f"Machine: {machine_description()}; clock: {args.clock}; malloc: {args.malloc}", "",
             "| model | batch | " + " | ".join(f"{c} img/s (×, GFLOP/s)" for c in cols) + " | fp32 max rel. diff | bf16 top-1 agree |",
             "|" + "---|" * (len(cols) + 4)]
    results = []
    for v in args.models:
        for b in args.batches:
            r = bench(v, b, args.repeats, not args.no_compile, args.clock, args.gemm_share)
            results.append(r)
            cells = [f"{r['img_s'][c]:.1f} ({r['speedup'][c]:.2f}×, {r['gflops'][c]:.0f})" if c in r["img_s"] else "–"
                     for c in cols]
            lines.append(f"| {r['model']} | {b} | " + " | ".join(cells)
                         + f" | {r['fp32_max_rel_diff']:.1e} | {r['bf16_top1_agree_random']:.0%} |")
            print(lines[-1], flush=True)
    if args.gemm_share:
        lines += ["", gemm_share_table(results)]
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
