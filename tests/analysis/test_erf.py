"""Tests of the ERF computation and analysis on hand-built convolutions with known receptive fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lkconv.analysis.erf import analyze_erf, compute_erf, erf_transform, noise_inputs


def _positive_conv(in_ch: int, out_ch: int, k: int, dilation: int = 1, seed: int = 0) -> nn.Conv2d:
    """A stride-1 "same" conv with positive weights and a large bias: its ReLU never clips and its gradient is w."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(in_ch, out_ch, k, padding=dilation * (k // 2), dilation=dilation)
    with torch.no_grad():
        conv.weight.copy_(conv.weight.abs() + 0.1)
        conv.bias.fill_(100.0)
    return conv


class _Features(nn.Module):
    """A tiny model with the protocol's forward_features, and a head that must not be used."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.in_chans = 2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("compute_erf must call forward_features")


def _support(erf_map: np.ndarray) -> np.ndarray:
    return erf_map > 0


def _square_mask(shape: tuple[int, int], side: int, step: int = 1) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    cy, cx, r = shape[0] // 2, shape[1] // 2, side // 2
    mask[cy - r : cy + r + 1 : step, cx - r : cx + r + 1 : step] = True
    return mask


@pytest.mark.parametrize("size", [(15, 15), (16, 16), (15, 21)])
def test_single_conv_erf_is_its_kernel(size: tuple[int, int]) -> None:
    conv = _positive_conv(2, 3, 5)
    erf_map = compute_erf(conv, torch.randn(3, 2, *size))
    assert erf_map.shape == size
    # d(sum_c out_c)/dx = sum over output and input channels of the kernel, whatever the input. On an odd side it is
    # taken at the one central output; on an even side the score is the mean over the two central outputs, so the
    # map is the mean of the kernel placed at each of them (16 x 16: a 6 x 6 support around the centre).
    kernel = conv.weight.detach().double().sum(dim=(0, 1)).numpy()
    rows = range((size[0] - 1) // 2, size[0] // 2 + 1)
    cols = range((size[1] - 1) // 2, size[1] // 2 + 1)
    expected = np.zeros(size)
    for cy in rows:
        for cx in cols:
            expected[cy - 2 : cy + 3, cx - 2 : cx + 3] += kernel / (len(rows) * len(cols))
    if size[0] % 2 and size[1] % 2:
        np.testing.assert_array_equal(_support(erf_map), _square_mask(size, 5))
    else:
        assert _support(erf_map).sum() == (4 + len(rows)) * (4 + len(cols))
    np.testing.assert_allclose(erf_map, expected, rtol=1e-5, atol=1e-12)


def test_two_stacked_3x3_give_5x5() -> None:
    model = _Features(nn.Sequential(_positive_conv(2, 4, 3, seed=1), _positive_conv(4, 4, 3, seed=2)))
    model.train()
    erf_map = compute_erf(model, num_inputs=2, size=17)
    np.testing.assert_array_equal(_support(erf_map), _square_mask((17, 17), 5))
    assert model.training, "the train/eval mode must be restored"


def test_dilated_conv_erf_is_sparse_grid() -> None:
    conv = _positive_conv(1, 2, 3, dilation=2)
    erf_map = compute_erf(conv, torch.randn(1, 1, 13, 13))
    np.testing.assert_array_equal(_support(erf_map), _square_mask((13, 13), 5, step=2))


def test_inputs_forms_and_noise_defaults() -> None:
    conv = _positive_conv(3, 1, 3)
    # A data loader's (image, label) pairs with batches > 1 and unbatched (C, H, W) images are accepted.
    loader = [(torch.randn(2, 3, 9, 9), torch.zeros(2)), torch.randn(3, 9, 9)]
    from_loader = compute_erf(conv, loader)
    from_noise = compute_erf(conv, num_inputs=1, size=(9, 9))
    np.testing.assert_allclose(from_loader, from_noise)  # a linear conv's ERF does not depend on the input
    assert next(noise_inputs(1, in_chans=4, size=(5, 7))).shape == (1, 4, 5, 7)


def test_nan_maps_are_skipped_and_the_rest_averaged() -> None:
    conv = _positive_conv(1, 1, 3)
    calls = {"n": 0}

    def features(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = conv(x)
        return out * float("nan") if calls["n"] == 1 else out * calls["n"]

    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        erf_map = compute_erf(features, torch.randn(3, 1, 7, 7))
    single = compute_erf(conv, torch.randn(1, 1, 7, 7))
    np.testing.assert_allclose(erf_map, single * (2 + 3) / 2)  # the mean of the 2nd (x2) and 3rd (x3) maps


def test_bad_outputs_raise() -> None:
    with pytest.raises(ValueError, match="1, C, h, w"):
        compute_erf(lambda x: x.mean(dim=(2, 3)), torch.randn(1, 1, 5, 5))
    with pytest.raises(ValueError, match="all of them gave NaN"):
        compute_erf(lambda x: x * float("nan"), torch.randn(2, 1, 5, 5))


def test_analyze_uniform_square() -> None:
    erf_map = np.zeros((31, 31))
    erf_map[12:19, 12:19] = 5.0  # a uniform 7x7 square at the centre (15, 15)
    result = analyze_erf(erf_map)
    sides = {r["threshold"]: r["side"] for r in result["thresholds"]}
    # side 3 holds 9/49 = 0.18 of the mass, side 5 holds 25/49 = 0.51, side 7 all of it.
    assert sides == {0.2: 5, 0.3: 5, 0.5: 5, 0.99: 7}
    ratios = {r["threshold"]: r["area_ratio"] for r in result["thresholds"]}
    assert ratios[0.99] == pytest.approx(49 / 31**2)
    assert result["height"] == result["width"] == 31 and result["map_max"] == 5.0
    json.dumps(result)


def test_analyze_matches_a_direct_loop() -> None:
    rng = np.random.default_rng(0)
    erf_map = rng.exponential(size=(24, 24)) * np.exp(-np.hypot(*np.mgrid[-12:12, -12:12]) / 4)
    d = erf_transform(erf_map)
    for entry in analyze_erf(erf_map, thresholds=(0.1, 0.5, 0.9))["thresholds"]:
        for i in range(1, 12):
            if d[12 - i : 12 + i + 1, 12 - i : 12 + i + 1].sum() / d.sum() > entry["threshold"]:
                break
        assert entry["side"] == 2 * i + 1
        assert entry["area_ratio"] == pytest.approx((2 * i + 1) ** 2 / 24**2)


def test_analyze_non_square_clips_squares() -> None:
    erf_map = np.ones((5, 41))  # uniform: the share grows with the clipped area
    result = analyze_erf(erf_map, thresholds=(0.5, 0.99))
    half, full = result["thresholds"]
    # A side-21 square clipped to the 5 rows covers 5 x 21 = 105 of 205 pixels (0.512 > 0.5); side 19 covers 0.46.
    assert half["side"] == 21 and half["area_ratio"] == pytest.approx(105 / 205)
    assert full["side"] == 41 and full["area_ratio"] == pytest.approx(1.0)


def test_analyze_validation() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        analyze_erf(np.ones((5, 5)), thresholds=(1.0,))
    with pytest.raises(ValueError, match="all zero"):
        analyze_erf(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="2-D"):
        analyze_erf(np.ones((1, 5, 5)))


def test_erf_plots_write_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lkconv.analysis.plots import plot_erf, plot_erf_grid

    erf_map = compute_erf(_positive_conv(1, 1, 5), torch.randn(1, 1, 21, 21))
    single = plot_erf(erf_map, tmp_path / "erf.png", "5x5 conv", squares=True)
    grid = plot_erf_grid({"a": erf_map, "b": erf_map[:, :15], "c": erf_map}, tmp_path / "grid.png", ncols=2)
    for path in (single, grid):
        assert path.exists() and path.stat().st_size > 0
    with pytest.raises(ValueError, match="at least one"):
        plot_erf_grid({}, tmp_path / "empty.png")
