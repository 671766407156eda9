"""bench_int8_layers: every precision computes the layer (int8 paths agree with fp32) and gets a finite time."""

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_int8_layers as bi  # noqa: E402


def test_layer_rates_times_every_precision(one_thread):
    from lkconv.deploy.int8 import int8_gemm_saturates

    if int8_gemm_saturates():  # the benchmark then (rightly) refuses: its raw oneDNN int8 GEMM is wrong here
        pytest.skip("oneDNN's int8 GEMM saturates on this CPU (no VNNI)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantized tensor creation is deprecated in torch 2.13
        t = bi.layer_rates(tokens=64, cin=16, cout=32, repeats=2, clock="wall")
    assert set(t) == {"fp32", "bf16", "int8 gemm", "int8 +q/dq", "int8 dynamic", "onednn u8→bf16", "onednn +q"}
    assert all(math.isfinite(v) and v > 0 for v in t.values())


def test_onednn_linear_equals_the_float_layer_within_int8_rounding():
    torch.manual_seed(0)
    x, w, b = torch.randn(50, 24), torch.randn(40, 24) / 5, torch.randn(40)
    scale = float(x.abs().amax()) / 127
    qx = ((x / scale).round() + 128).clamp(0, 255).to(torch.uint8)
    y = bi.onednn_linear(w, b, 50, scale)(qx)
    ref = torch.nn.functional.linear(x, w, b)
    assert y.dtype == torch.bfloat16
    # two int8 roundings (input, weight) and a bf16 output: ~1 % of the largest output
    assert float((y.float() - ref).abs().max() / ref.abs().max()) < 0.03


def test_block_rates_time_bf16_and_int8_blocks(one_thread):
    rows = bi.block_rates("a", batch=1, img=32, repeats=1, clock="thread")
    assert [i for i, _ in rows] == [0, 1, 2, 3]
    for _, t in rows:
        assert set(t) == {"bf16 fused", "int8 (bf16 around)", "int8 (fp32 around)"}
        assert all(math.isfinite(v) and v > 0 for v in t.values())
