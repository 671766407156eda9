"""bench_breakdown: every kind of operation of the fused blocks is timed, and the timers come off afterwards."""

import sys
from pathlib import Path

import torch

import lkconv
import lkconv.deploy.fast_unireplknet as optimize_module

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_breakdown as bb  # noqa: E402


def test_breakdown_times_each_kind_of_work(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))
    model = lkconv.create_model("unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                kernel_sizes=((3,), (13,), (13,), (7,)), num_classes=5).eval()
    saved = {name: getattr(optimize_module, name) for name in bb.BLOCK_OPS}
    total, per = bb.breakdown(model, torch.randn(2, 3, 32, 32), torch.float32, repeats=2)
    assert {f"all:{op}" for op in (*bb.BLOCK_OPS, "dwconv")} <= set(per)
    assert {"down0", "stage3", "s1:dwconv"} <= set(per)
    assert 0 < per["all:dwconv"] < total and sum(per[f"stage{i}"] for i in range(4)) < total
    assert all(getattr(optimize_module, name) is fn for name, fn in saved.items())  # timers removed
