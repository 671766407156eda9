"""bench_families' core function on a minuscule setting: one family, one epoch, a few series; a row with every field."""

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_families as bf  # noqa: E402


def test_run_task_gives_a_complete_finite_row(tmp_path, one_thread):
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 40, dtype=np.float32)
    y = np.arange(16) % 2
    X = np.stack([np.sin(t * (1 + k)) for k in y])[:, None] + 0.1 * rng.standard_normal((16, 1, 40), dtype=np.float32)
    np.savez(tmp_path / "toy.npz", X=X.astype(np.float32), y=y)
    task = bf.Task("toy", {"data": str(tmp_path / "toy.npz"), "modality": "timeseries", "epochs": 1, "batch_size": 4,
                           "lr": 1e-3, "drop_path_rate": 0.0, "val_split": 0.25, "seed": 0, "progress": False},
                   map_args={"mapping": "gaf", "map_size": 32}, sequence_args={"mapping": "sequence"})
    rows = bf.run_task(task, [bf.Family("UniRepLKNet-A", "unireplknet_a")], tmp_path / "runs", repeats=1, batch=4,
                       log=lambda *a, **k: None)
    (row,) = rows
    assert row["input"] == [3, 32, 32]
    for key in ("val_accuracy", "params_train", "params_deploy", "macs", "samples_per_s", "train_wall_s",
                "train_cpu_s"):
        assert math.isfinite(row[key]) and row[key] >= 0, (key, row[key])
    assert 0 <= row["val_accuracy"] <= 1 and row["samples_per_s"] > 0
    assert row["params_deploy"] < row["params_train"]  # re-parameterized before timing
    assert "| UniRepLKNet-A |" in bf.format_tables(rows, {"toy": task})


def test_macs_are_counted_on_the_plain_path():
    # UniRepLKNet-A, deploy structure, 224x224: the reference's 0.6 GMACs (lkconv info: 0.64G)
    fam = bf.Family("A", "unireplknet_a")
    assert abs(bf.macs_per_sample(fam, (3, 224, 224), 1000) / 1e9 - 0.64) < 0.01
    # sequence models: the FFT convolutions count as their direct equivalent (C·L² per bidirectional layer)
    seq = bf.Family("SG", "sgconvnet_tiny", sequence=True)
    with torch.no_grad():
        macs = bf.macs_per_sample(seq, (1, 50), 2)
    assert macs > 4 * 128 * 50 * 50
