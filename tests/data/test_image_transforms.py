"""The small-image fast paths of the image transforms equal the plain computations: the matrix resize equals
F.interpolate, the gathered pad-crop equals reflect padding then cropping, photometric equals its formula."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lkconv.data.augment.image import MATRIX_RESIZE_MAX_PIXELS, random_pad_crop, resize_image
from lkconv.modalities.image.augment import photometric


@pytest.mark.parametrize("src,dst", [((28, 28), (32, 32)), ((8, 8), (32, 32)), ((64, 48), (32, 32)),
                                     ((20, 30), (64, 40)), ((33, 17), (7, 9))])
def test_matrix_resize_equals_interpolate(src, dst):
    """Up- and down-sampling (antialiased), square or not: within 2e-6 of F.interpolate on [0, 1] images."""
    assert src[0] * src[1] <= MATRIX_RESIZE_MAX_PIXELS  # the matrix path is the one under test
    img = torch.rand(3, *src)
    want = F.interpolate(img[None], size=dst, mode="bilinear", antialias=True, align_corners=False)[0]
    got = resize_image(img, dst)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    # a strided view (a crop) takes the same path
    view = img[:, 1:, 1:]
    torch.testing.assert_close(resize_image(view, dst), F.interpolate(view[None], size=dst, mode="bilinear",
                                                                      antialias=True, align_corners=False)[0],
                               rtol=0, atol=2e-6)


def test_pad_crop_equals_reflect_pad_then_crop():
    """Every offset the gather can produce is a crop of F.pad(mode="reflect"), flipped when drawn so."""
    img = torch.rand(2, 32, 32)
    padded = F.pad(img[None], (3, 3, 3, 3), mode="reflect")[0]
    crops = {padded[:, t : t + 32, s : s + 32].numpy().tobytes() for t in range(7) for s in range(7)}
    crops |= {padded[:, t : t + 32, s : s + 32].flip(-1).numpy().tobytes() for t in range(7) for s in range(7)}
    seen = set()
    for seed in range(300):
        out = random_pad_crop(img, 32, np.random.default_rng(seed), pad_frac=0.1)
        assert out.shape == img.shape and out.numpy().tobytes() in crops
        seen.add(out.numpy().tobytes())
    assert len(seen) > 50  # offsets and flips vary
    unflipped = {random_pad_crop(img, 32, np.random.default_rng(s), flip=False).numpy().tobytes() for s in range(50)}
    assert all(c in crops for c in unflipped)


@pytest.mark.parametrize("channels", [1, 3])
def test_photometric_equals_its_formula(channels):
    """brightness b, contrast c about the brightened mean, saturation s about the per-pixel grey, clamped to [0, 1]."""
    img = torch.rand(channels, 12, 12)
    b, c, s = np.random.default_rng(4).uniform(0.7, 1.3, size=3)
    out = img * b
    out = (out - out.mean()) * c + out.mean()
    if channels == 3:
        grey = out.mean(0, keepdim=True)
        out = (out - grey) * s + grey
    torch.testing.assert_close(photometric(img, np.random.default_rng(4), 0.3), out.clamp(0, 1), rtol=0, atol=1e-6)
