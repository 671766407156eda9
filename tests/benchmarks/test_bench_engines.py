"""bench_engines: every available engine runs the model, gets finite times and an agreement; missing ones are noted."""

import importlib.util
import math
import sys
from pathlib import Path

import torch

import lkconv

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_engines as be  # noqa: E402


def test_engines_side_by_side(one_thread):
    model = lkconv.create_model("unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                kernel_sizes=((3,), (13,), (13,), (7,)), num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    names = ["eager", "lkconv-int8", "ov-fp32"]
    have_ort = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript")
    if have_ort:
        names.append("ort-int8")
    rows, notes = be.bench(model, x, [torch.randn(4, 3, 32, 32)], names, threads=1, repeats=2)
    got = {r["engine"]: r for r in rows}
    assert {"eager", "lkconv-int8"} <= set(got) and ("ort-int8" in got) == bool(have_ort)
    assert got["eager"]["speedup"] == 1.0 and got["eager"]["agreement"] == 1.0
    for r in rows:
        assert math.isfinite(r["median_s"]) and 0 < r["median_s"] <= r["p95_s"] and 0 <= r["agreement"] <= 1
    if importlib.util.find_spec("openvino") is None:
        assert any(n.startswith("ov-fp32: skipped") for n in notes)
    assert be.p95([1.0, 2.0, 3.0]) == 3.0
