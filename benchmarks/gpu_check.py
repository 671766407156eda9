"""The CUDA path of lkconv end to end, in one command (a few minutes on one GPU).

    python benchmarks/gpu_check.py [--out runs/gpu_check] [--data builtin:fashion-mnist] [--skip-ddp]

It trains a built-in set for an epoch on CUDA, resumes it for a second, evaluates (CUDA and CPU), predicts, runs
``optimize_for_inference`` on the GPU (fp32 within 1e-4 of eager; fp16 and bf16 agreement), exports ONNX (checked
with onnxruntime), trains under ``torchrun --nproc_per_node 1`` (a one-process nccl group: DDP with
``device_ids``, PyTorch's SyncBatchNorm, CUDA all-reduces), and times the large-kernel depthwise plans against
cuDNN in the input's layout. It prints a report (also written to ``OUT/report.md``) and exits 1 when a check fails,
2 on a machine without CUDA (saying why).

This script is the only test of the CUDA path: the test suite runs on the CPU, where CUDA tests skip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

#: fp32 ``optimize_for_inference`` against eager, relative to the largest output (the CPU path's bound).
FP32_RTOL = 1e-4
#: fp16/bf16 against fp32 eager: the largest difference over the output range (as the CPU bf16 test); the top-1
#: agreement asked is 99 % on the trained run's validation images, 75 % on a random-weight model's noise outputs.
LOW_RTOL = 5e-2
#: A depthwise plan slower than this multiple of cuDNN in the input's layout is a failure (it should never be: the
#: planner measures cuDNN too).
PLAN_SLOWDOWN = 1.5
#: Large-kernel depthwise shapes timed: (N, C, H, W, kernel), UniRepLKNet-like stages at 224 and a 31x31 RepLKNet one.
DW_SHAPES = [(32, 80, 56, 56, 13), (32, 160, 28, 28, 13), (32, 320, 14, 14, 13), (32, 128, 56, 56, 31),
             (32, 256, 28, 28, 31)]


@dataclass
class Check:
    name: str
    ok: bool | None = None  # None: skipped
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gpu_check", help="working folder (replaced)")
    p.add_argument("--data", default="builtin:fashion-mnist", help="PATH or builtin:NAME of an image set")
    p.add_argument("--model", default="unireplknet_a")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-train-samples", type=int, default=4000)
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.add_argument("--skip-ddp", action="store_true", help="leave out the torchrun step")
    p.add_argument("--skip-dwconv", action="store_true", help="leave out the depthwise timings")
    return p.parse_args(argv)


def require_cuda(device: str) -> torch.device:
    """The CUDA device to check, or a ``DeviceError`` that says what this machine lacks."""
    from lkconv.engine.device import DeviceError, resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda":
        raise DeviceError(f"gpu_check checks CUDA; --device {device!r} is {dev}")
    return dev


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().cpu(), b.float().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _timed(check: Check, fn: Callable[[Check], None]) -> Check:
    t0 = time.perf_counter()
    try:
        fn(check)
    except Exception as e:  # a failing step is reported, the others still run
        check.ok, check.detail = False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
    check.seconds = time.perf_counter() - t0
    return check


def _config(args: argparse.Namespace, out: Path, **kw: Any) -> dict[str, Any]:
    return {"data": args.data, "out": str(out), "model": args.model, "epochs": 2, "batch_size": args.batch_size,
            "img_size": args.img_size, "max_train_samples": args.max_train_samples, "max_val_samples": 1000,
            "progress": False, "device": args.device, "deterministic": False, **kw}


def check_train_resume(args: argparse.Namespace, out: Path) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        import yaml

        from lkconv.engine.config import TrainConfig
        from lkconv.engine.trainer import Trainer
        from lkconv.engine.distributed import setup_distributed

        cfg = TrainConfig.from_dict(_config(args, out / "run"))
        info = setup_distributed(cfg.device)
        trainer = Trainer(cfg, info)
        row, timing = trainer.train_epoch(0)  # one epoch, then "stop": the run holds last.pt of epoch 1
        trainer.end_epoch(0, row, timing)
        del trainer
        resumed = Trainer(cfg.replace(resume=True), info).fit()
        rows = (resumed / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        last = dict(zip(header, rows[-1].split(",")))
        saved = yaml.safe_load((resumed / "config.yaml").read_text())["resolved"]
        c.data = {"epochs": len(rows) - 1, "resolved": saved, "last_row": last}
        assert len(rows) == 3, f"expected 2 epochs in metrics.csv, got {len(rows) - 1}"
        assert saved["device"].startswith("cuda"), saved
        assert float(last["peak_gpu_memory_mb"]) > 0
        c.ok = True
        c.detail = (f"{saved['precision']}, {saved['num_workers']} workers; epoch 2: "
                    f"{float(last['train_samples_per_s']):.0f} samples/s, peak {float(last['peak_gpu_memory_mb']):.0f} "
                    f"MB, waited {float(last['data_wait_seconds']):.2f} s of {float(last['epoch_seconds']):.2f} s "
                    f"for data, val acc {float(last.get('val_accuracy', 'nan')):.2%}")

    return run


def check_eval_predict(device: torch.device, out: Path) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        import numpy as np
        from PIL import Image

        from lkconv.engine.evaluate import evaluate_run, predict_files

        run_dir = out / "run"
        gpu = evaluate_run(run_dir, device=device)
        cpu = evaluate_run(run_dir, device="cpu")
        n = gpu["num_samples"]
        files = []
        rng = np.random.default_rng(0)
        for i in range(4):
            f = out / f"sample{i}.png"
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(f)
            files.append(f)
        on_gpu = predict_files(run_dir, files, device=device, top_k=1)
        on_cpu = predict_files(run_dir, files, device="cpu", top_k=1)
        same = sum(a["top"][0][0] == b["top"][0][0] for a, b in zip(on_gpu, on_cpu))
        c.data = {"cuda": gpu, "cpu": cpu, "predict_same_top1": same}
        assert abs(gpu["accuracy"] - cpu["accuracy"]) <= 2 / n, (gpu["accuracy"], cpu["accuracy"])
        assert same == len(files), f"predict: {same}/{len(files)} equal top-1 between CUDA and CPU"
        c.ok = True
        c.detail = (f"accuracy CUDA {gpu['accuracy']:.2%} vs CPU {cpu['accuracy']:.2%} on {n} images; predict top-1 "
                    f"equal on {same}/{len(files)} files")

    return run


def _val_inputs(run_dir: Path, n: int) -> torch.Tensor:
    """The first ``n`` raw validation samples of a run (real inputs: top-1 agreement means something on them)."""
    from lkconv.engine.evaluate import run_train_config
    from lkconv.modalities import build_data

    val = build_data(run_train_config(run_dir).replace(resume=False)).val
    return torch.stack([val[i][0] for i in range(min(n, len(val)))])


def check_optimize(device: torch.device, out: Path) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        import lkconv
        from lkconv.deploy import optimize_for_inference
        from lkconv.engine.run_dir import load_run

        # the trained run's model on its validation images, and a full-size UniRepLKNet-A at 224 (random weights)
        cases = [("run model", load_run(out / "run"), _val_inputs(out / "run", 256), 0.99),
                 ("unireplknet_a@224", lkconv.create_model("unireplknet_a", num_classes=10).eval(),
                  torch.randn(8, 3, 224, 224), 0.75)]
        lines = []
        for name, model, x, min_top1 in cases:
            model, x = model.to(device), x.to(device)
            with torch.no_grad():
                ref = model(x).float()
            fast = optimize_for_inference(model, x[:64])
            got = fast(x)
            rel = _rel(got, ref)
            assert got.device.type == "cuda" and rel <= FP32_RTOL, f"{name}: fp32 differs by {rel:.2e}"
            res: dict[str, Any] = {"fp32_rel": rel}
            for dtype in (torch.float16, torch.bfloat16):
                low = optimize_for_inference(model, x[:64], dtype=dtype)(x)
                top1 = (low.argmax(-1) == ref.argmax(-1)).float().mean().item()
                spread = ((low - ref).abs().max() / (ref.max() - ref.min()).clamp_min(1e-12)).item()
                res[str(dtype)] = {"diff_over_range": spread, "top1_agreement": top1}
                assert torch.isfinite(low).all(), f"{name} {dtype}: non-finite outputs"
                assert spread <= LOW_RTOL and top1 >= min_top1, f"{name} {dtype}: {spread:.2e}, top-1 {top1:.0%}"
            c.data[name] = res
            f16, b16 = res["torch.float16"], res["torch.bfloat16"]
            lines.append(f"{name} (batch {x.shape[0]}): fp32 {rel:.1e}; fp16 {f16['diff_over_range']:.1e} of the "
                         f"range, top-1 {f16['top1_agreement']:.0%}; bf16 {b16['diff_over_range']:.1e}, top-1 "
                         f"{b16['top1_agreement']:.0%}")
        c.ok, c.detail = True, "; ".join(lines)

    return run


def check_onnx(device: torch.device, out: Path) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        from lkconv.deploy.export import check_onnx as compare, export_onnx
        from lkconv.engine.run_dir import load_run

        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as e:
            c.ok, c.detail = None, f"skipped: {e} (pip install 'lkconv[onnx]')"
            return
        model = load_run(out / "run").to(device)
        x = torch.randn(2, *model.run_config["raw_shape"], device=device)
        path = export_onnx(model, x, out / "model.onnx")
        diff = compare(path, model, x)
        c.data = {"max_rel_diff": diff}
        assert diff <= FP32_RTOL, f"onnxruntime vs PyTorch on CUDA: {diff:.2e}"
        c.ok, c.detail = True, f"exported from CUDA; onnxruntime (CPU) vs PyTorch (CUDA): {diff:.1e}"

    return run


def check_ddp(args: argparse.Namespace, out: Path) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        import yaml

        torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
        cfg = out / "ddp.yaml"
        cfg.write_text(yaml.safe_dump(_config(args, out / "ddp", epochs=1, device="cuda")))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_src()), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "1", "-m", "lkconv", "train",
                               "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"torchrun exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        resolved = yaml.safe_load((out / "ddp" / "config.yaml").read_text())["resolved"]
        c.data = {"resolved": resolved}
        assert resolved["backend"] == "nccl" and resolved["device"] == "cuda:0", resolved
        c.ok, c.detail = True, f"torchrun --nproc_per_node 1: nccl on {resolved['device']}, {resolved['precision']}"

    return run


def _cuda_ms(fn: Callable[[], Any], reps: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def check_dwconv(device: torch.device) -> Callable[[Check], None]:
    def run(c: Check) -> None:
        import torch.nn.functional as F

        from lkconv.ops.dwconv import depthwise_conv2d, plan_for
        from lkconv.ops.dwconv.backends import run as run_algo
        from lkconv.ops.dwconv.spec import make_spec

        rows, worst = [], 0.0
        for dtype in (torch.float32, torch.float16):
            for n, ch, h, w, k in DW_SHAPES:
                x = torch.randn(n, ch, h, w, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
                wt = torch.randn(ch, 1, k, k, device=device, dtype=dtype)
                with torch.no_grad():
                    s = make_spec(x, wt, None, "same", 1, None)
                    times = {a: _cuda_ms(lambda a=a: run_algo(a, x, wt, None, s)) for a in ("nhwc", "nchw", "fft")}
                    cudnn = _cuda_ms(lambda: F.conv2d(x, wt, None, 1, k // 2, 1, ch))
                    plan = plan_for(x, wt)
                    planned = _cuda_ms(lambda: depthwise_conv2d(x, wt))
                    ref = F.conv2d(x.float(), wt.float(), None, 1, k // 2, 1, ch)
                    err = _rel(depthwise_conv2d(x, wt), ref)
                bound = 1e-5 if dtype == torch.float32 else 2e-2
                assert err <= bound, f"{(n, ch, h, w, k)} {dtype}: planned output differs by {err:.1e}"
                worst = max(worst, planned / cudnn)
                rows.append({"shape": [n, ch, h, w, k], "dtype": str(dtype).replace("torch.", ""), "plan": plan,
                             "planned_ms": planned, "cudnn_channels_last_ms": cudnn, **{f"{a}_ms": t for a, t in
                                                                                        times.items()}})
        c.data = {"rows": rows}
        table = ["| shape (N,C,H,W,k) | dtype | plan | planned ms | cuDNN (input layout) ms | nhwc | nchw | fft |",
                 "|---|---|---|---|---|---|---|---|"]
        table += [f"| {r['shape']} | {r['dtype']} | {r['plan']} | {r['planned_ms']:.3f} | "
                  f"{r['cudnn_channels_last_ms']:.3f} | {r['nhwc_ms']:.3f} | {r['nchw_ms']:.3f} | {r['fft_ms']:.3f} |"
                  for r in rows]
        c.detail = f"planned / cuDNN worst ratio {worst:.2f}\n" + "\n".join(table)
        assert worst <= PLAN_SLOWDOWN, f"a planned depthwise conv ran {worst:.2f}x cuDNN's time"
        c.ok = True

    return run


def _src() -> Path:
    return Path(__file__).resolve().parents[1] / "src"


def report(checks: list[Check], device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    head = [f"# lkconv GPU check: {props.name} ({props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}; TF32 off", ""]
    body = []
    for c in checks:
        state = {True: "PASS", False: "FAIL", None: "SKIP"}[c.ok]
        body.append(f"- **{state}** {c.name} ({c.seconds:.1f} s): {c.detail}")
    return "\n".join(head + body) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(_src()))
    from lkconv.engine.device import DeviceError

    try:
        device = require_cuda(args.device)
    except DeviceError as e:
        print(f"gpu_check: refusing to run: {e}", file=sys.stderr)
        return 2
    # fp32 means fp32 here: TF32 convolutions/matmuls (cuDNN's default on Ampere+) would not meet 1e-4
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    steps: list[tuple[str, Callable[[Check], None]]] = [
        ("train 1 epoch on CUDA, resume for a 2nd", check_train_resume(args, out)),
        ("evaluate and predict (CUDA vs CPU)", check_eval_predict(device, out)),
        ("optimize_for_inference on CUDA (fp32, fp16, bf16)", check_optimize(device, out)),
        ("ONNX export of the CUDA model", check_onnx(device, out)),
    ]
    if not args.skip_ddp:
        steps.append(("torchrun --nproc_per_node 1 (nccl DDP)", check_ddp(args, out)))
    if not args.skip_dwconv:
        steps.append(("large-kernel depthwise plans vs cuDNN", check_dwconv(device)))
    checks = []
    for name, fn in steps:
        print(f"[gpu_check] {name} ...", flush=True)
        checks.append(_timed(Check(name), fn))
        print(f"[gpu_check]   {'ok' if checks[-1].ok else 'skipped' if checks[-1].ok is None else 'FAILED'}",
              flush=True)
    text = report(checks, device)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps([c.__dict__ for c in checks], indent=2, default=str))
    print(text)
    return 1 if any(c.ok is False for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
