"""bench_models' dense-layer share: which profiled ops count as GEMMs, and the bound computed from them."""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_models as bm  # noqa: E402


def test_dense_ms_counts_gemms_and_dense_convolutions(one_thread):
    w1, w3, lin = torch.randn(64, 32, 1, 1), torch.randn(32, 32, 3, 3), torch.randn(10, 64)
    x = torch.randn(2, 32, 24, 24)

    def dense(x):  # a 1x1 convolution and a Linear: all GEMM
        return F.linear(F.conv2d(x, w1).mean((2, 3)), lin)

    def spatial(x):  # a 3x3 convolution and elementwise work: no GEMM
        return torch.tanh(F.conv2d(x, w3, padding=1)) * 2

    wall, gemm, conv = bm.dense_ms(dense, x)
    assert 0 < gemm <= wall and conv == 0
    wall, gemm, conv = bm.dense_ms(spatial, x)
    assert gemm == 0 and 0 < conv <= wall
    op = torch.ops.mkldnn._convolution_pointwise  # oneDNN with the addition in the epilogue: (x, other, weight, ...)
    if torch.backends.mkldnn.is_available() and hasattr(op, "binary"):
        xc = x.contiguous(memory_format=torch.channels_last)
        other = torch.randn(2, 64, 24, 24).contiguous(memory_format=torch.channels_last)
        wall, gemm, conv = bm.dense_ms(
            lambda x: op.binary(x, other, w1, None, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None), xc)
        assert 0 < gemm <= wall and conv == 0
    dw = torch.randn(32, 1, 7, 7)
    wall, gemm, conv = bm.dense_ms(lambda x: F.conv2d(x, dw, padding=3, groups=32), x)  # depthwise: neither
    assert gemm == 0 and conv == 0 and wall > 0


def test_gemm_share_table_bounds():
    r = {"model": "m", "batch": 4, "base_ms": 100.0,
         "gemm_share": {"plain-deploy": (110.0, 40.0, 15.0), "opt-fp32": (60.0, 40.0, 10.0),
                        "opt-bf16": (30.0, 20.0, 5.0)}}
    table = bm.gemm_share_table([r])
    assert ("| m | 4 | 110.0 (40.0 + 15.0, 50%) | 60.0 (40.0 + 10.0, 83%) | 30.0 (20.0 + 5.0, 83%) "
            "| 2.50× (2.00×) | 5.00× (4.00×) |") in table
