"""torchrun with 2 gloo processes reaches the weights of 1 process with the same global batch."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lkconv.engine.trainer import train

from conftest import tiny_config


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                    reason="torchrun not installed")
def test_two_processes_match_one(image_folder, tmp_path):
    # augmentation off: this compares the gradient averaging of 2 processes with 1 (with the default photometric
    # augmentation the losses differ by 1.2e-5 relative, not yet explained)
    kw = {"epochs": 2, "batch_size": 8, "drop_path_rate": 0.0, "label_smoothing": 0.0, "augment": False}
    single = train(tiny_config(image_folder, tmp_path / "single", **kw))
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder, tmp_path / "ddp", **kw)))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "lkconv", "train", "--config",
                           str(cfg_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a clean shutdown: no abort at exit
    # Stated tolerance. The runs differ only in the order of floating-point reductions (gradient all-reduce,
    # BatchNorm statistics summed over processes): per-step gradients agree to float32 rounding. The loss
    # trajectories agree to 1e-5. Parameters whose true gradient is zero (BatchNorm biases feeding another norm,
    # kernel taps that only see padding on 1x1 maps) get rounding noise as gradient, which Adam turns into steps
    # of up to lr; so weights agree within one step (lr = 3e-3), and the networks' outputs to 1e-3.
    import csv

    rows = [list(csv.DictReader(open(d / "metrics.csv"))) for d in (single, tmp_path / "ddp")]
    for r1, r2 in zip(*rows):
        assert abs(float(r1["train_loss"]) - float(r2["train_loss"])) <= 1e-5 * float(r1["train_loss"])
    a = load_file(str(single / "model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    for k in a:
        if a[k].is_floating_point() and "running_" not in k:
            assert (a[k] - b[k]).abs().max().item() <= 3e-3, k
    import lkconv

    m1, m2 = lkconv.load_run(single), lkconv.load_run(tmp_path / "ddp")
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        o1, o2 = m1(x), m2(x)
    assert ((o1 - o2).abs().max() / o1.abs().max()).item() < 1e-3
    # only rank 0 wrote: one set of files, one metrics row per epoch
    assert (tmp_path / "ddp" / "metrics.csv").read_text().count("\n") == 3
