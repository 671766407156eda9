"""The built-in segmentation set: real photographs, Fashion-MNIST items, exact masks."""

from __future__ import annotations

import numpy as np
import pytest

from lkconv.modalities.builtin import list_builtins
from lkconv.modalities.image.segment_builtin import SEGMENT_CLASSES, _available, make_fashion_on_photos


def test_listed_as_a_segmentation_set():
    entry = {b["name"]: b for b in list_builtins()}["fashion-on-photos"]
    assert entry["modality"] == "image" and entry["task"] == "segment"


@pytest.mark.skipif(not _available(), reason="needs dataset-fashion-mnist and scikit-learn's photos")
def test_composites_have_exact_masks_and_disjoint_splits():
    x, y = make_fashion_on_photos(6, split="train", seed=0)
    x2, y2 = make_fashion_on_photos(6, split="train", seed=0)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # seeded
    assert x.shape == (6, 64, 64, 3) and y.shape == (6, 64, 64) and x.dtype == y.dtype == np.uint8
    assert y.max() < len(SEGMENT_CLASSES) and all((m > 0).any() for m in y)  # every image holds an item
    vx, vy = make_fashion_on_photos(6, split="val", seed=0)
    assert not np.array_equal(vx, x)
    assert len(SEGMENT_CLASSES) == 5 and SEGMENT_CLASSES[0] == "background"
