"""The ERF is centred on the input for even-sized final maps too (issue 14, #19)."""

import numpy as np
import pytest
import torch.nn.functional as F

import lkconv
from lkconv.analysis.erf import analyze_erf, central_positions, compute_erf


def centroid(erf_map: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[: erf_map.shape[0], : erf_map.shape[1]]
    return float((yy * erf_map).sum() / erf_map.sum()), float((xx * erf_map).sum() / erf_map.sum())


@pytest.mark.parametrize(("size", "expected"), [(1, (0, 1)), (2, (0, 2)), (7, (3, 4)), (8, (3, 5))])
def test_central_positions(size, expected):
    s = central_positions(size)
    assert (s.start, s.stop) == expected


@pytest.mark.parametrize("cells", [(4, 4), (3, 3), (4, 5), (2, 2)])
def test_pooling_erf_is_centred_on_the_input(cells):
    """A 16x16 average pool: the ERF is the central cell(s), symmetric about the input centre."""
    h, w = 16 * cells[0], 16 * cells[1]
    # + 100 keeps every output positive, so the ReLU of the recipe passes every gradient
    erf = compute_erf(lambda x: F.avg_pool2d(x, 16) + 100, num_inputs=1, size=(h, w), in_chans=1)
    assert centroid(erf) == pytest.approx(((h - 1) / 2, (w - 1) / 2))
    rows, cols = np.nonzero(erf)
    assert rows.min() + rows.max() == h - 1 and cols.min() + cols.max() == w - 1


def test_inception_next_at_64px_is_not_in_a_corner():
    model = lkconv.create_model("inception_next_atto").eval()  # ends in a 2x2 map at 64 px
    erf = compute_erf(model, num_inputs=1, size=64)
    cy, cx = centroid(erf)
    assert abs(cy - 31.5) < 3 and abs(cx - 31.5) < 3, (cy, cx)
    # the 50 % square around the centre holds the bulk: a centred map needs no more than the full map for it
    assert analyze_erf(erf)["thresholds"][2]["area_ratio"] < 1.0
