import pytest
import torch
import torch.nn.functional as F

from lkconv.layers.inception_dw import InceptionDWConv2d


def test_split_and_shapes():
    m = InceptionDWConv2d(64)
    assert m.split_indexes == (40, 8, 8, 8)
    assert m.dwconv_hw.kernel_size == (3, 3)
    assert m.dwconv_w.kernel_size == (1, 11) and m.dwconv_w.padding == (0, 5)
    assert m.dwconv_h.kernel_size == (11, 1) and m.dwconv_h.padding == (5, 0)
    assert m(torch.randn(2, 64, 13, 9)).shape == (2, 64, 13, 9)


def test_branches_match_definition():
    m = InceptionDWConv2d(20, square_kernel_size=5, band_kernel_size=7, branch_ratio=0.25)
    x = torch.randn(2, 20, 10, 12)
    y = m(x)
    g = 5
    torch.testing.assert_close(y[:, :5], x[:, :5])
    for sl, conv in ((slice(5, 10), m.dwconv_hw), (slice(10, 15), m.dwconv_w), (slice(15, 20), m.dwconv_h)):
        ref = F.conv2d(x[:, sl], conv.weight, conv.bias, padding="same", groups=g)
        torch.testing.assert_close(y[:, sl], ref)


def test_gradients_and_identity_part():
    m = InceptionDWConv2d(16, branch_ratio=0.125)
    x = torch.randn(1, 16, 8, 8, requires_grad=True)
    m(x).sum().backward()
    assert torch.equal(x.grad[:, :10], torch.ones(1, 10, 8, 8))  # 16 - 3 * 2 identity channels
    assert all(p.grad is not None for p in m.parameters())


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        InceptionDWConv2d(4, branch_ratio=0.125)  # no channel left for a branch
    with pytest.raises(ValueError):
        InceptionDWConv2d(16, branch_ratio=0.5)
    with pytest.raises(ValueError):
        InceptionDWConv2d(16, band_kernel_size=10)
