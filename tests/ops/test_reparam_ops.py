import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lkconv.ops.reparam import dilate_kernel, fuse_bn, merge_kernels, pad_kernel_to


def test_fuse_bn_equals_conv_then_bn(randomize):
    conv = nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=True)
    bn = nn.BatchNorm2d(8)
    randomize(nn.Sequential(conv, bn))
    bn.eval()
    x = torch.randn(2, 8, 12, 12)
    w, b = fuse_bn(conv.weight, conv.bias, bn)
    torch.testing.assert_close(F.conv2d(x, w, b, padding=2, groups=8), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_fuse_bn_into_linear(randomize):
    lin, bn = nn.Linear(6, 4, bias=False), nn.BatchNorm1d(4)
    randomize(nn.Sequential(lin, bn))
    bn.eval()
    x = torch.randn(3, 6)
    w, b = fuse_bn(lin.weight, None, bn)
    torch.testing.assert_close(F.linear(x, w, b), bn(lin(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k,r", [(3, 2), (3, 5), (5, 2), (7, 3)])
def test_dilated_kernel_equals_dilated_conv(k, r):
    w = torch.randn(4, 1, k, k)
    x = torch.randn(1, 4, 20, 20)
    pad = (k - 1) * r // 2
    dense = dilate_kernel(w, r)
    assert dense.shape[-1] == (k - 1) * r + 1
    torch.testing.assert_close(F.conv2d(x, dense, padding=pad, groups=4), F.conv2d(x, w, padding=pad, dilation=r, groups=4))


def test_merge_small_into_large_equals_sum():
    x = torch.randn(1, 3, 16, 16)
    big, small = torch.randn(3, 1, 9, 9), torch.randn(3, 1, 5, 5)
    w, b = merge_kernels(big, torch.zeros(3), small, torch.ones(3))
    ref = F.conv2d(x, big, padding=4, groups=3) + F.conv2d(x, small, torch.ones(3), padding=2, groups=3)
    torch.testing.assert_close(F.conv2d(x, w, b, padding=4, groups=3), ref, rtol=1e-5, atol=1e-5)


def test_pad_kernel_rejects_odd_difference():
    with pytest.raises(ValueError, match="even"):
        pad_kernel_to(torch.zeros(1, 1, 3, 3), 6)
    with pytest.raises(ValueError, match="dilation"):
        dilate_kernel(torch.zeros(1, 1, 3, 3), 0)
