"""CPU engines side by side (issue 17): lkconv fp32 / bf16 / int8, ONNX Runtime fp32 / int8, OpenVINO if installed.

Run: ``python benchmarks/bench_engines.py [--models unireplknet_a,unireplknet_t] [--batches 1,16] [--img 224]
[--repeats 10] [--threads 2] [--engines ...] [--run RUN_DIR]``

One process, one model and batch size at a time, every engine timed round robin (so a load change hits all alike);
the table gives each engine's median and p95 wall time per batch, its speed relative to the eager deploy model
(the re-parameterized plain model, 1.00×) and its top-1 agreement with the eager fp32 model on the timed batch.
With random weights (``--models``) the agreement column means little; ``--run`` benchmarks a trained run's model on
its own validation images and calibrates the int8 engines on its training images.

Engines (``--engines``, comma separated; those whose package is missing are skipped with a note):

* ``eager``: the re-parameterized model in fp32, no other pass (the baseline);
* ``lkconv-fp32`` / ``lkconv-bf16`` / ``lkconv-int8``: ``lkconv.optimize_for_inference`` (int8: UniRepLKNet's
  pointwise layers on oneDNN's int8 GEMM, the rest bf16; calibrated on ``--calibration-batches`` batches);
  ``lkconv-int8-fp32``: the same with the float layers in fp32 (no bf16 -> fp32 pass before each quantization);
* ``ort-fp32``: ``lkconv export``'s ONNX in ONNX Runtime (CPU);
* ``ort-qdq``: ``lkconv export --int8``'s QDQ ONNX (lkconv's calibration) in ONNX Runtime;
* ``ort-int8``: ONNX Runtime's own ``quantize_static`` (QDQ, per-channel weights) of the fp32 ONNX;
* ``ov-fp32`` / ``ov-bf16``: OpenVINO on the fp32 ONNX (bf16 by its inference precision hint). Benchmark-only
  extras, never dependencies of lkconv; NNCF int8 is not wired here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import machine_description, steady_allocator  # noqa: E402

ENGINES = ("eager", "lkconv-fp32", "lkconv-bf16", "lkconv-int8", "lkconv-int8-fp32", "ort-fp32", "ort-qdq", "ort-int8", "ov-fp32",
           "ov-bf16")


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: torch.from_numpy(sess.run(None, {name: x.numpy()})[0])


def _ort_quantize_static(fp32_path: Path, out: Path, batches: list[torch.Tensor]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": b.numpy()} for b in batches])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def _openvino(path: Path, threads: int, bf16: bool):
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    return lambda x: torch.from_numpy(compiled(x.numpy())[0])


def build_engines(model: torch.nn.Module, x: torch.Tensor, calibration: list[torch.Tensor] | str,
                  names: list[str], threads: int, workdir: Path) -> tuple[dict[str, Callable], list[str]]:
    """The callables (batch -> fp32 logits) of the engines in ``names`` that can run here, and notes on the rest."""
    import lkconv
    from lkconv.models._reparam import reparameterize_model

    fns: dict[str, Callable] = {}
    notes: list[str] = []
    eager = reparameterize_model(__import__("copy").deepcopy(model).eval())
    cal_batches = calibration if isinstance(calibration, list) else None

    def no_grad(f):
        return lambda b: torch.inference_mode()(f)(b)

    for name in names:
        try:
            if name == "eager":
                fns[name] = no_grad(eager)
            elif name in ("lkconv-fp32", "lkconv-bf16"):
                dtype = torch.float32 if name.endswith("fp32") else torch.bfloat16
                fns[name] = lkconv.optimize_for_inference(model, x, dtype=dtype)
            elif name == "lkconv-int8":
                fns[name] = lkconv.optimize_for_inference(model, x, dtype=torch.int8, calibration=calibration)
            elif name == "lkconv-int8-fp32":
                from lkconv.deploy.int8 import optimize_int8

                fns[name] = optimize_int8(model, x, calibration, float_dtype=torch.float32)
            elif name.startswith(("ort", "ov")):
                from lkconv.deploy.export import export_onnx

                fp32_path = workdir / "model.onnx"
                if not fp32_path.exists():
                    export_onnx(model, x, fp32_path)
                if name == "ort-fp32":
                    fns[name] = _ort_session(fp32_path, threads)
                elif name == "ort-qdq":
                    from lkconv.deploy.int8 import optimize_int8

                    q = optimize_int8(model, x, calibration, float_dtype=torch.float32, choose=False)
                    fns[name] = _ort_session(export_onnx(model, x, workdir / "qdq.onnx", int8=q), threads)
                elif name == "ort-int8":
                    if cal_batches is None:
                        from lkconv.deploy.int8 import calibration_batches

                        cal_batches = [b for _, b in zip(range(4), calibration_batches(calibration))]
                    out = _ort_quantize_static(fp32_path, workdir / "ort_int8.onnx", cal_batches)
                    fns[name] = _ort_session(out, threads)
                else:
                    fns[name] = _openvino(fp32_path, threads, bf16=name == "ov-bf16")
            else:
                raise ValueError(f"unknown engine {name!r}; accepted: {', '.join(ENGINES)}")
        except ImportError as e:
            notes.append(f"{name}: skipped ({e.name or e} not installed)")
    return fns, notes


def time_round_robin(fns: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each call, engines interleaved call by call, after one warm-up call each."""
    for f in fns.values():
        f(x)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f(x)
            times[k].append(time.perf_counter() - t0)
    return times


def p95(v: list[float]) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def bench(model: torch.nn.Module, x: torch.Tensor, calibration, names: list[str], threads: int, repeats: int,
          eval_x: torch.Tensor | None = None) -> tuple[list[dict], list[str]]:
    """One row per engine: median / p95 seconds per batch, speed vs eager, top-1 agreement with eager fp32."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fns, notes = build_engines(model, x, calibration, names, threads, Path(tmp))
        times = time_round_robin(fns, x, repeats)
        check = x if eval_x is None else eval_x
        with torch.inference_mode():
            ref = model.eval()(check).argmax(-1)
        agree = {k: (torch.cat([f(b) for b in check.split(x.shape[0])]).float().argmax(-1) == ref).float().mean()
                 .item() for k, f in fns.items()}
    base = statistics.median(times["eager"]) if "eager" in times else None
    rows = [{"engine": k, "median_s": statistics.median(v), "p95_s": p95(v),
             "speedup": base / statistics.median(v) if base else float("nan"), "agreement": agree[k],
             "checked": len(check)} for k, v in times.items()]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="unireplknet_a,unireplknet_t")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--calibration-batches", type=int, default=2)
    p.add_argument("--run", help="a trained run directory (its model, validation images and training images)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    steady_allocator()
    names = [e for e in a.engines.split(",") if e]
    print(f"# {machine_description()}; lkconv engines vs ONNX Runtime / OpenVINO; eager = 1.00x; wall clock, "
          f"{a.repeats} round-robin repeats")
    print("| model | batch | engine | median ms | p95 ms | vs eager | top-1 agreement (n) |")
    print("|---|---|---|---|---|---|---|")
    import lkconv

    cases = []
    if a.run:
        from lkconv.engine.evaluate import run_train_config
        from lkconv.modalities import build_data

        model = lkconv.load_run(a.run)
        val = build_data(run_train_config(a.run)).val
        images = torch.stack([val[i][0] for i in range(min(len(val), 256))])
        cases.append((Path(a.run).name, model, images, a.run))
    else:
        for name in a.models.split(","):
            model = lkconv.create_model(name).eval()
            cases.append((name, model, None, None))
    all_notes: set[str] = set()
    for label, model, images, run in cases:
        for batch in (int(b) for b in a.batches.split(",")):
            if images is not None:
                x = images[:batch]
            else:
                x = torch.randn(batch, 3, a.img, a.img)
            cal = run if run else [torch.randn(max(batch, 8), *x.shape[1:]) for _ in range(a.calibration_batches)]
            rows, notes = bench(model, x, cal, names, a.threads, a.repeats, eval_x=images)
            all_notes.update(notes)
            for r in rows:
                print(f"| {label} | {batch} | {r['engine']} | {1e3 * r['median_s']:.1f} | {1e3 * r['p95_s']:.1f} | "
                      f"{r['speedup']:.2f}x | {100 * r['agreement']:.1f} % ({r['checked']}) |", flush=True)
    for n in sorted(all_notes):
        print(f"# {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
