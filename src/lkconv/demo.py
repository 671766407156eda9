"""The built-in end-to-end job run by ``make demo`` / ``lkconv demo``.

Trains a small UniRepLKNet on a slice of built-in Fashion-MNIST, evaluates it on the test split, fuses it for
deployment (checking that the fused model gives the same predictions), and writes ``report.md`` into the run
directory. A few minutes on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from ._atomic import atomic_write_text
from .engine.config import TrainConfig
from .engine.evaluate import evaluate_run
from .engine.run_dir import load_run
from .engine.trainer import train
from .models import reparameterize_model


def demo_config(out: str | Path, model_name: str = "unireplknet_a") -> TrainConfig:
    return TrainConfig(data="builtin:fashion-mnist", out=str(out), modality="image", model=model_name, epochs=4,
                       batch_size=64, lr=2e-3, max_train_samples=6000, max_val_samples=2000, img_size=32,
                       label_smoothing=0.1)


@torch.no_grad()
def _fusion_check(run_dir: Path) -> dict:
    model = load_run(run_dir)
    x = torch.rand(32, *model.run_config["raw_shape"])
    ref = model(x)
    t0 = time.perf_counter()
    reparameterize_model(model)
    fused = model(x)
    return {"max_rel_diff": ((fused - ref).abs().max() / ref.abs().max()).item(),
            "same_top1": bool((fused.argmax(-1) == ref.argmax(-1)).all()), "fuse_seconds": time.perf_counter() - t0}


def run_demo(out_dir: str | Path, model_name: str = "unireplknet_a", *, fresh: bool = True) -> Path:
    out = Path(out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    cfg = demo_config(out, model_name)
    t0 = time.perf_counter()
    train(cfg)
    train_s = time.perf_counter() - t0
    metrics = evaluate_run(out)
    fusion = _fusion_check(out)
    lines = [
        f"# lkconv demo: {model_name} on Fashion-MNIST",
        "",
        f"- data: builtin:fashion-mnist, {cfg.max_train_samples} training images, {metrics['num_samples']} test images",
        f"- training: {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.img_size}x{cfg.img_size}, {train_s:.0f} s "
        f"({torch.get_num_threads()} threads)",
        f"- test accuracy: {metrics['accuracy']:.2%} (loss {metrics['loss']:.4f})",
        f"- fused for deployment: max relative difference {fusion['max_rel_diff']:.2e}, same top-1 on a random "
        f"batch: {fusion['same_top1']}",
        "",
        "Files: config.yaml, config.json + model.safetensors (rebuild the model), last.pt (resume), metrics.csv, "
        "curves.png, metrics.json.",
        "",
        "Next: `lkconv predict --run <this folder> image.png`, `lkconv eval --run <this folder>`.",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "demo.json", json.dumps({"metrics": metrics, "fusion": fusion, "train_seconds": train_s},
                                                    indent=2) + "\n")
    print("\n".join(lines[2:6]))
    print(f"results: {(out / 'report.md').resolve()}")
    return out
