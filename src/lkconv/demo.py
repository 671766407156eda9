"""The built-in end-to-end job run by ``make demo`` / ``lkconv demo``.

Until the training engine lands this builds a UniRepLKNet, re-parameterizes it, checks that the fused model
equals the trained structure, measures both side by side, and writes a report into the run directory.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from .analysis.complexity import count_macs, count_params
from .models import create_model, reparameterize_model


def _median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def run_demo(out_dir: str | Path, model_name: str = "unireplknet_a", batch: int = 8, img_size: int = 128) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10).eval()
    # Non-trivial BatchNorm statistics and scales, as after training, so the fusion check means something.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    for name, p in model.named_parameters():
        if name.endswith((".gamma", ".beta")):
            p.uniform_(-0.5, 0.5)
    x = torch.randn(batch, 3, img_size, img_size)
    train_params, train_macs = count_params(model), count_macs(model, x[:1])
    ref = model(x)
    t_train = _median_seconds(lambda: model(x))
    reparameterize_model(model)
    fused = model(x)
    t_deploy = _median_seconds(lambda: model(x))
    rel_err = ((fused - ref).abs().max() / ref.abs().max()).item()
    report = {
        "model": model_name,
        "input": [batch, 3, img_size, img_size],
        "threads": torch.get_num_threads(),
        "params_train": train_params,
        "params_deploy": count_params(model),
        "macs_train_per_image": train_macs,
        "macs_deploy_per_image": count_macs(model, x[:1]),
        "reparam_max_rel_error": rel_err,
        "img_per_s_train_structure": batch / t_train,
        "img_per_s_deploy_structure": batch / t_deploy,
        "speedup_deploy_vs_train": t_train / t_deploy,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# lkconv demo: {model_name}", ""] + [f"- {k}: {v}" for k, v in report.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"{model_name}: re-parameterized, max relative difference {rel_err:.2e}; "
          f"{report['img_per_s_train_structure']:.1f} -> {report['img_per_s_deploy_structure']:.1f} img/s "
          f"(batch {batch}, {img_size}px, {torch.get_num_threads()} threads)")
    print(f"results: {out.resolve()}/report.md")
    return out
