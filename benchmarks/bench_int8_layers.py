"""Per-layer rates of UniRepLKNet's dense (pointwise) layers in fp32, bf16 and int8 on this CPU (issue 17).

Run: ``python benchmarks/bench_int8_layers.py [--model t] [--batch 16] [--img 224] [--repeats 7] [--threads 1]
[--blocks]``

``--blocks`` times whole blocks instead (the first block of each stage, random weights, calibrated on random
activations): lkconv's fused bf16 block (``FastUniRepLKNetBlock``) against the int8 block of
``optimize_for_inference(dtype=torch.int8)`` (``Int8UniRepLKNetBlock``) with its float layers in bf16 and in fp32 —
what the int8 GEMM gains once the quantization passes and the float layers around it are paid.

Each stage's two pointwise layers (C -> 4C and 4C -> C, on B·H·W tokens) are timed side by side, round robin,
medians over repeats, as:

* ``fp32``: ``F.linear`` on fp32 tensors (oneDNN/MKL sgemm);
* ``bf16``: ``F.linear`` on bf16 tensors (oneDNN's AVX512-BF16 path where the CPU has it);
* ``int8 gemm``: ``quantized::linear`` on an already-quantized uint8 input with a prepacked per-channel int8
  weight (the x86 engine: fbgemm/oneDNN VNNI), output requantized to uint8 — the GEMM alone;
* ``int8 +q/dq``: the same with the fp32 input quantized before and the output dequantized after, i.e. what an int8
  layer costs between float neighbours (GELU/GRN, LayerNorm, the depthwise conv stay float in UniRepLKNet);
* ``int8 dynamic``: ``quantized::linear_dynamic`` (per-batch activation scale computed on the fly, fp32 out);
* ``onednn u8→bf16``: ``onednn::qlinear_pointwise`` (the op PyTorch's inductor int8 path calls; oneDNN uses AMX-INT8
  or VNNI where the CPU has them) on a plain uint8 input with a bf16 output — no requantization of the output, so the
  next float op (GELU/GRN, the residual) reads bf16;
* ``onednn +q``: the same with the input quantized from fp32 first (``torch.quantize_per_tensor``), i.e. what the
  layer costs when its producer writes float.

Rates are reported as multiply-accumulates per second (GMAC/s) and as each row's ratio to bf16. With
``--threads 1`` the thread CPU clock is used (immune to preemption on a shared machine); with more threads, wall
time. The numbers say whether int8 dense layers can beat bf16 on this CPU before any model-level work is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_medians, machine_description, steady_allocator  # noqa: E402

#: UniRepLKNet stage widths (reference variants) and the stage resolution divisor (stem /4, then /2 per stage).
WIDTHS = {"a": (40, 80, 160, 320), "p": (64, 128, 256, 512), "t": (80, 160, 320, 640)}


def int8_linear(weight: torch.Tensor, bias: torch.Tensor, x_scale: float, out_scale: float):
    """A prepacked per-channel int8 weight and the callables that run it (static and dynamic)."""
    w_scale = weight.abs().amax(dim=1).clamp_min(1e-8) / 127
    qw = torch.quantize_per_channel(weight, w_scale, torch.zeros_like(w_scale, dtype=torch.long), 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(qw, bias)
    packed_dyn = torch.ops.quantized.linear_prepack(qw, bias)

    def static(qx: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear(qx, packed, out_scale, 128)

    def dynamic(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, packed_dyn, True)

    return static, dynamic


def onednn_linear(weight: torch.Tensor, bias: torch.Tensor, tokens: int, x_scale: float):
    """``u8 input -> bf16 output`` through oneDNN's int8 linear, per-channel symmetric int8 weight."""
    w_scale = weight.abs().amax(dim=1).clamp_min(1e-8) / 127
    qw = (weight / w_scale[:, None]).round().clamp(-127, 127).to(torch.int8)
    packed = torch.ops.onednn.qlinear_prepack(qw, [tokens, weight.shape[1]])
    w_zero = torch.zeros(weight.shape[0], dtype=torch.long)

    def run(qx_u8: torch.Tensor) -> torch.Tensor:
        return torch.ops.onednn.qlinear_pointwise(qx_u8, x_scale, 128, packed, w_scale, w_zero, bias, 1.0, 0,
                                                  torch.bfloat16, "none", [], "none")

    return run


def layer_rates(tokens: int, cin: int, cout: int, repeats: int, clock: str) -> dict[str, float]:
    """Seconds per call of each precision for one (tokens × cin) @ (cin × cout) layer."""
    torch.manual_seed(0)
    x = torch.randn(tokens, cin)
    w, b = torch.randn(cout, cin) / cin**0.5, torch.randn(cout) * 0.1
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    x_scale = float(x.abs().amax()) / 127
    qx = torch.quantize_per_tensor(x, x_scale, 128, torch.quint8)
    out_scale = float(F.linear(x, w, b).abs().amax()) / 127
    static, dynamic = int8_linear(w, b, x_scale, out_scale)

    onednn = onednn_linear(w, b, tokens, x_scale)
    qx_u8 = qx.int_repr()

    def static_qdq() -> torch.Tensor:
        return static(torch.quantize_per_tensor(x, x_scale, 128, torch.quint8)).dequantize()

    fns = {
        "fp32": lambda: F.linear(x, w, b),
        "bf16": lambda: F.linear(xb, wb, bb),
        "int8 gemm": lambda: static(qx),
        "int8 +q/dq": static_qdq,
        "int8 dynamic": lambda: dynamic(x),
        "onednn u8→bf16": lambda: onednn(qx_u8),
        "onednn +q": lambda: onednn(torch.quantize_per_tensor(x, x_scale, 128, torch.quint8).int_repr()),
    }
    # agreement of the int8 GEMM with fp32 on this random layer (a check that the int8 path computes the layer)
    ref = F.linear(x, w, b)
    err = float((static(qx).dequantize() - ref).abs().max() / ref.abs().max())
    err_onednn = float((onednn(qx_u8).float() - ref).abs().max() / ref.abs().max())
    if max(err, err_onednn) > 0.05:
        raise AssertionError(f"int8 linear disagrees with fp32: max error {max(err, err_onednn):.3f} of the largest "
                             "output")
    return interleaved_medians(fns, repeats, warmup=2, clock=clock)


def block_rates(model: str, batch: int, img: int, repeats: int, clock: str) -> list[tuple[int, dict[str, float]]]:
    """Seconds per call of the first block of each stage: fused bf16, int8 (bf16 around), int8 (fp32 around)."""
    import copy

    import lkconv
    from lkconv.deploy.int8 import Int8UniRepLKNetBlock
    from lkconv.models._reparam import reparameterize_model

    net = reparameterize_model(lkconv.create_model(f"unireplknet_{model}").eval())
    out = []
    with torch.inference_mode():
        for i, stage in enumerate(net.stages):
            c, side = WIDTHS[model][i], img // (4 * 2**i)
            x = torch.randn(batch, c, side, side).contiguous(memory_format=torch.channels_last)
            fast = stage[0].inference_form()
            forms = {}
            for name, dtype in (("int8 (bf16 around)", torch.bfloat16), ("int8 (fp32 around)", torch.float32)):
                q = Int8UniRepLKNetBlock(copy.deepcopy(fast))
                q(x)  # calibrate
                q.freeze()
                forms[name] = (q.to(dtype=dtype), x.to(dtype))
            bf = copy.deepcopy(fast).to(dtype=torch.bfloat16)
            xb = x.bfloat16()
            fns = {"bf16 fused": lambda bf=bf, xb=xb: bf(xb)}
            fns.update({k: (lambda m=m, v=v: m(v)) for k, (m, v) in forms.items()})
            out.append((i, interleaved_medians(fns, repeats, warmup=2, clock=clock)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(WIDTHS), default="t")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engine", default="x86", help="torch.backends.quantized.engine (x86, fbgemm, onednn)")
    p.add_argument("--blocks", action="store_true", help="time whole blocks (bf16 fused vs int8) instead")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = a.engine
    steady_allocator()
    clock = "thread" if a.threads == 1 else "wall"
    if a.blocks:
        print(f"# {machine_description()}; clock {clock}; unireplknet_{a.model} first block of each stage, batch "
              f"{a.batch}, {a.img}²; ms per call and speed vs the bf16 fused block")
        print("| stage | bf16 fused ms | int8 (bf16 around) ms | int8 (fp32 around) ms | int8 bf16-around / bf16 | "
              "int8 fp32-around / bf16 |")
        print("|---|---|---|---|---|---|")
        total: dict[str, float] = {}
        for i, t in block_rates(a.model, a.batch, a.img, a.repeats, clock):
            for k, v in t.items():
                total[k] = total.get(k, 0.0) + v
            rows = [t["bf16 fused"], t["int8 (bf16 around)"], t["int8 (fp32 around)"]]
            print(f"| {i} | " + " | ".join(f"{1e3 * v:.2f}" for v in rows) + " | "
                  + " | ".join(f"{rows[0] / v:.2f}×" for v in rows[1:]) + " |", flush=True)
        rows = [total["bf16 fused"], total["int8 (bf16 around)"], total["int8 (fp32 around)"]]
        print("| sum | " + " | ".join(f"{1e3 * v:.2f}" for v in rows) + " | "
              + " | ".join(f"{rows[0] / v:.2f}×" for v in rows[1:]) + " |")
        return 0
    print(f"# {machine_description()}; quantized engine {a.engine}; clock {clock}; "
          f"unireplknet_{a.model} pointwise layers, batch {a.batch}, {a.img}²")
    cols = ("fp32", "bf16", "int8 gemm", "int8 +q/dq", "int8 dynamic", "onednn u8→bf16", "onednn +q")
    print("| stage | layer | tokens | " + " | ".join(f"{c} GMAC/s" for c in cols) + " | "
          + " | ".join(f"{c} / bf16" for c in cols[2:]) + " |")
    print("|---|---|---|" + "---|" * (len(cols) + len(cols) - 2))
    totals: dict[str, float] = {}
    for i, c in enumerate(WIDTHS[a.model]):
        side = a.img // (4 * 2**i)
        tokens = a.batch * side * side
        for name, cin, cout in ((f"pw1 {c}→{4 * c}", c, 4 * c), (f"pw2 {4 * c}→{c}", 4 * c, c)):
            t = layer_rates(tokens, cin, cout, a.repeats, clock)
            macs = tokens * cin * cout
            for k, v in t.items():
                totals[k] = totals.get(k, 0.0) + v
            g = {k: macs / v / 1e9 for k, v in t.items()}
            print(f"| {i} | {name} | {tokens} | " + " | ".join(f"{g[c]:.1f}" for c in cols) + " | "
                  + " | ".join(f"{t['bf16'] / t[c]:.2f}×" for c in cols[2:]) + " |")
    print("| all | sum of times (ms) | | " + " | ".join(f"{1e3 * totals[c]:.1f}" for c in cols) + " | "
          + " | ".join(f"{totals['bf16'] / totals[c]:.2f}×" for c in cols[2:]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
