"""Tests of the depthwise-kernel statistics on hand-made kernels with known answers, and of the kernel plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lkconv.analysis.filters import depthwise_convs, filter_stats, kernel_stats, plot_kernels


def _delta(k: int, y: int | None = None, x: int | None = None) -> np.ndarray:
    kernel = np.zeros((k, k))
    kernel[k // 2 if y is None else y, k // 2 if x is None else x] = 1.0
    return kernel


@pytest.mark.parametrize("k", [3, 7, 13])
def test_delta_kernel(k: int) -> None:
    stats = filter_stats(np.stack([_delta(k), -2.0 * _delta(k)]))
    assert stats["spectral_entropy"] == pytest.approx(1.0)  # |FFT| of a delta is flat
    assert stats["sparsity"] == pytest.approx((k * k - 1) / (k * k))
    assert stats["mean_l2_norm"] == pytest.approx(1.5)
    assert stats["effective_radius"] == 0.0 and stats["degenerate_share"] == 0.0
    assert stats["kernel_size"] == [k, k] and stats["num_filters"] == 2


def test_box_kernel_has_zero_entropy_and_full_radius() -> None:
    stats = filter_stats(np.ones((1, 5, 5)), mass=1.0)
    assert stats["spectral_entropy"] == pytest.approx(0.0, abs=1e-12)  # only the DC term
    assert stats["sparsity"] == 0.0
    assert stats["effective_radius"] == pytest.approx(np.sqrt(8))  # 100 % of the mass needs the corners
    assert stats["effective_radius_ratio"] == pytest.approx(np.sqrt(8) / 2)


def test_effective_radius_off_centre_and_90_percent() -> None:
    assert filter_stats(_delta(5, 0, 0)[None])["effective_radius"] == pytest.approx(np.sqrt(8))
    kernel = _delta(5) * 0.85 + _delta(5, 2, 3) * 0.1 + _delta(5, 0, 0) * 0.05
    assert filter_stats(kernel[None])["effective_radius"] == pytest.approx(1.0)  # 0.95 within r = 1


def test_zero_and_tiny_filters_are_degenerate() -> None:
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(8, 5, 5))
    kernels[3] = 0.0
    kernels[5] *= 1e-4
    stats = filter_stats(kernels)
    assert stats["degenerate_share"] == pytest.approx(2 / 8)
    # The zero filter is left out of the entropy; the tiny one counts as sparse under the layer-wide rule.
    assert stats["sparsity"] >= 2 * 25 / (8 * 25)
    all_zero = filter_stats(np.zeros((4, 3, 3)))
    assert all_zero["degenerate_share"] == 1.0 and all_zero["sparsity"] == 1.0
    assert all_zero["spectral_entropy"] is None and all_zero["effective_radius"] is None


def test_filter_stats_validation() -> None:
    with pytest.raises(ValueError, match=r"\(N, kh, kw\)"):
        filter_stats(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="mass"):
        filter_stats(np.ones((1, 3, 3)), mass=0.0)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)  # dense: not depthwise
        self.dw7 = nn.Conv2d(4, 4, 7, padding=3, groups=4)
        self.pw = nn.Conv2d(4, 4, 1, groups=4)  # 1x1 depthwise: left out by default
        self.dilated = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4)  # depthwise with multiplier 2
        self.seq = nn.Conv1d(3, 3, 5, groups=3)
        with torch.no_grad():
            self.dw7.weight.zero_()
            self.dw7.weight[:, 0, 3, 3] = 1.0
            self.dw7.weight[2] = 0.0


def test_kernel_stats_finds_depthwise_convs() -> None:
    model = _Tiny()
    names = [name for name, _ in depthwise_convs(model)]
    assert names == ["dw7", "dilated", "seq"]
    assert [name for name, _ in depthwise_convs(model, min_kernel_size=1)] == ["dw7", "pw", "dilated", "seq"]
    rows = {row["name"]: row for row in kernel_stats(model)}
    dw7 = rows["dw7"]
    assert dw7["type"] == "Conv2d" and dw7["channels"] == 4 and dw7["kernel_size"] == [7, 7]
    assert dw7["degenerate_share"] == 0.25 and dw7["spectral_entropy"] == pytest.approx(1.0)
    assert dw7["sparsity"] == pytest.approx(1 - 3 / (4 * 49))
    assert rows["dilated"]["dilation"] == [2, 2] and rows["dilated"]["num_filters"] == 8
    assert rows["seq"]["kernel_size"] == [1, 5] and rows["seq"]["type"] == "Conv1d"
    json.dumps(list(rows.values()))


def test_plot_kernels_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = plot_kernels(_Tiny(), tmp_path / "sub" / "kernels.png", max_channels=3)
    assert out.exists() and out.stat().st_size > 0
    with pytest.raises(ValueError, match="no depthwise conv"):
        plot_kernels(nn.Conv2d(3, 3, 3), tmp_path / "none.png")
