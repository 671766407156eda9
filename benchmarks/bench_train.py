"""Training-step throughput: a plain eager reference vs lkconv's training paths, same weights, same batches.

Run: ``python benchmarks/bench_train.py [--model unireplknet_t] [--small] [--batch 16] [--img 128] [--threads 2]
[--repeats 5] [--out FILE]`` (``--small``: the automatic recipe's small UniRepLKNet, depths 1-1-2-1, dims 16-128)

Configurations (all fp32, training structure, AdamW step included, the same initial weights):
  plain          a literal eager NCHW implementation (benchmarks/_plain_unireplknet.py) stepped by PyTorch's
                 default AdamW: the baseline (the others step with the trainer's make_adamw)
  eager          lkconv's model, eager, NCHW input
  channels_last  lkconv's model and batches in channels_last (UniRepLKNet blocks then run their pointwise layers
                 as 1x1 convolutions on that layout, and depthwise convs on oneDNN's NHWC path)
  compile        lkconv's model under torch.compile(dynamic=False), NCHW
  cl+compile     both
Speed: round-robin repeats in one process, medians. Losses: each configuration trains its own copy of the same
initial weights on the same batches; the per-step losses are compared with the reference's. Peak memory: each
configuration runs alone in a subprocess and reports its peak resident set size.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _plain_unireplknet import plain_like  # noqa: E402
from _timing import interleaved_medians, machine_description  # noqa: E402

import lkconv  # noqa: E402
from lkconv.engine.auto_recipe import SMALL_UNIREPLKNET  # noqa: E402
from lkconv.engine.optim import make_adamw  # noqa: E402

CONFIGS = ("plain", "eager", "channels_last", "compile", "cl+compile")


def make_step(model: torch.nn.Module, config: str):
    model = plain_like(model).train() if config == "plain" else copy.deepcopy(model).train()
    cl = config in ("channels_last", "cl+compile")
    if cl:
        model = model.to(memory_format=torch.channels_last)
    # the baseline steps with PyTorch's default AdamW (per-tensor loop on the CPU); lkconv's configurations with the
    # trainer's optimizer (lkconv.engine.optim.make_adamw: the fused kernel where it runs)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4) if config == "plain" else make_adamw([{"params": params}], lr=1e-4)
    fwd = torch.compile(model, dynamic=False) if "compile" in config else model

    def step(x, y):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def batches(n: int, batch: int, img: int, classes: int):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(batch, 3, img, img, generator=g), torch.randint(0, classes, (batch,), generator=g))
            for _ in range(n)]


def build(model_name: str, small: bool = False):
    torch.manual_seed(0)
    # drop path off: stochastic depth would make the configurations' losses differ by design
    extra = dict(SMALL_UNIREPLKNET) if small else {}
    return lkconv.create_model(model_name, num_classes=100, drop_path_rate=0.0, **extra)


def child(args) -> None:
    """One configuration alone (for its peak memory)."""
    torch.set_num_threads(args.threads)
    model = build(args.model, args.small)
    step = make_step(model, args.child)
    data = batches(3, args.batch, args.img, 100)
    before = _rss_mb("VmRSS")
    _reset_peak_rss()
    for x, y in data:
        step(x, y)
    peak = _rss_mb("VmHWM") if _rss_mb("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak, "training_mb": peak - before}))


def _rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB from /proc (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS, so the peak is the training steps' own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="unireplknet_t")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--img", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true",
                    help="the automatic recipe's small UniRepLKNet (depths 1-1-2-1, dims 16-128) of --model")
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of the calling thread (use with --threads 1 on a busy machine)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    torch.set_num_threads(args.threads)
    model = build(args.model, args.small)
    data = batches(args.repeats + 2, args.batch, args.img, 100)
    steps = {c: make_step(model, c) for c in args.configs}
    losses: dict[str, list[float]] = {c: [] for c in args.configs}
    it = {c: iter(data) for c in args.configs}

    def runner(c):
        def run():
            x, y = next(it[c])
            losses[c].append(steps[c](x, y))
        return run

    if args.clock == "thread" and args.threads != 1:
        raise SystemExit("--clock thread measures one thread: use it with --threads 1")
    times = interleaved_medians({c: runner(c) for c in args.configs}, args.repeats, warmup=2, clock=args.clock)
    base = "plain" if "plain" in args.configs else args.configs[0]
    ref = losses[base]
    rows = []
    for c in args.configs:
        rel = max(abs(a - b) / abs(b) for a, b in zip(losses[c], ref))
        mem = None
        if not args.no_memory:
            out = subprocess.run([sys.executable, __file__, "--child", c, "--model", args.model, "--batch",
                                  str(args.batch), "--img", str(args.img), "--threads", str(args.threads),
                                  *(["--small"] if args.small else [])],
                                 capture_output=True, text=True)
            mem = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
        rows.append((c, args.batch / times[c], times[base] / times[c], rel, mem))
    lines = [f"Machine: {machine_description()}; clock: {args.clock}",
             f"Model {args.model}{' (small: depths 1-1-2-1, dims 16-128)' if args.small else ''}, batch {args.batch}, {args.img}x{args.img}, fp32, training structure, "
             f"{args.repeats} timed steps (medians), 2 warm-up steps",
             "", f"| configuration | img/s | × {base} | max rel. loss diff vs {base} ({args.repeats + 2} steps) "
             "| peak RSS MB (of which training steps) |",
             "|---|---|---|---|---|"]
    for c, ips, sp, rel, mem in rows:
        lines.append(f"| {c} | {ips:.2f} | {sp:.2f}× | {rel:.1e} | {mem['peak_rss_mb']:.0f} "
                     f"({mem['training_mb']:.0f}) |" if mem else
                     f"| {c} | {ips:.2f} | {sp:.2f}× | {rel:.1e} | – |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
