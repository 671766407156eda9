"""Inference throughput of UniRepLKNet variants: plain eager references vs lkconv's optimized modules.

Run: ``python benchmarks/bench_models.py [--models a p t] [--batches 1 16] [--threads 2] [--repeats 5] [--out FILE]``

Side by side in one process, round-robin repeats, medians. Columns (img/s and effective GFLOP/s = 2·MACs/time):
  train-eager   the training structure, eager NCHW (what a user runs without fusing)
  deploy-eager  the re-parameterized structure, eager NCHW (the baseline of the targets)
  eager+compile deploy-eager under torch.compile
  opt-fp32      lkconv.optimize_for_inference (fp32)
  opt-bf16      the same in bf16
  opt+compile   opt-fp32 under torch.compile
bf16 top-1 agreement with fp32 is measured on the same random batch (the test suite checks it on real images).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_medians, machine_description  # noqa: E402

import lkconv  # noqa: E402
from lkconv.analysis.complexity import count_macs  # noqa: E402
from lkconv.deploy import optimize_for_inference  # noqa: E402


def bench(variant: str, batch: int, repeats: int, with_compile: bool, clock: str = "wall") -> dict:
    torch.manual_seed(0)
    name = f"unireplknet_{variant}"
    train_m = lkconv.create_model(name).eval()
    for m in train_m.modules():  # trained-like statistics; speed does not depend on them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    deploy_m = lkconv.reparameterize_model(copy.deepcopy(train_m))
    x = torch.randn(batch, 3, 224, 224)
    macs = count_macs(deploy_m, x[:1])
    fns = {}
    with torch.inference_mode():
        fns["train-eager"] = lambda: train_m(x)
        fns["deploy-eager"] = lambda: deploy_m(x)
    opt32 = optimize_for_inference(train_m, x)
    opt16 = optimize_for_inference(train_m, x, dtype=torch.bfloat16)
    fns["opt-fp32"] = lambda: opt32(x)
    fns["opt-bf16"] = lambda: opt16(x)
    if with_compile:
        compiled_eager = torch.compile(deploy_m, dynamic=False)
        with torch.inference_mode():
            compiled_eager(x)
        fns["eager+compile"] = lambda: compiled_eager(x)
        optc = optimize_for_inference(train_m, x, compile=True)
        fns["opt+compile"] = lambda: optc(x)

    def inference(fn):
        def run():
            with torch.inference_mode():
                return fn()
        return run

    times = interleaved_medians({k: inference(f) for k, f in fns.items()}, repeats, clock=clock)
    with torch.inference_mode():
        ref, out16 = deploy_m(x), opt16(x)
    agree = (ref.argmax(-1) == out16.argmax(-1)).float().mean().item()
    base = times["deploy-eager"]
    return {"model": name, "batch": batch, "gmacs": macs / 1e9,
            "img_s": {k: batch / t for k, t in times.items()},
            "speedup": {k: base / t for k, t in times.items()},
            "gflops": {k: 2 * macs * batch / t / 1e9 for k, t in times.items()},
            "bf16_top1_agree_random": agree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["a", "p", "t"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of the calling thread (use with --threads 1 on a busy machine)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cols = ["train-eager", "deploy-eager", "eager+compile", "opt-fp32", "opt-bf16", "opt+compile"]
    if args.clock == "thread" and args.threads != 1:
        raise SystemExit("--clock thread measures one thread: use it with --threads 1")
    lines = [f"Machine: {machine_description()}; clock: {args.clock}", "",
             "| model | batch | " + " | ".join(f"{c} img/s (×, GFLOP/s)" for c in cols) + " | bf16 top-1 agree |",
             "|" + "---|" * (len(cols) + 3)]
    for v in args.models:
        for b in args.batches:
            r = bench(v, b, args.repeats, not args.no_compile, args.clock)
            cells = [f"{r['img_s'][c]:.1f} ({r['speedup'][c]:.2f}×, {r['gflops'][c]:.0f})" if c in r["img_s"] else "–"
                     for c in cols]
            lines.append(f"| {r['model']} | {b} | " + " | ".join(cells) + f" | {r['bf16_top1_agree_random']:.0%} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
