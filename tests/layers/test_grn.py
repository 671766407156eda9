"""GRN has one formula (ops.grn.global_response_norm, re-exported by layers.norm); its layouts and the fused ops' reference agree with it."""

import torch
import torch.nn.functional as F

from lkconv.layers.norm import GRN, global_response_norm
from lkconv.ops.fused import gelu_grn_reference


def test_grn_formula_by_hand_and_both_layouts():
    grn = GRN(6)
    with torch.no_grad():
        grn.gamma.copy_(torch.rand(1, 1, 1, 6))
        grn.beta.copy_(torch.rand(1, 1, 1, 6))
    x = torch.randn(2, 5, 7, 6)  # NHWC
    g = x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    want = (grn.gamma * g / (g.mean(-1, keepdim=True) + 1e-6) + 1) * x + grn.beta
    torch.testing.assert_close(grn(x), want)
    nchw = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grn.forward_channels_first(nchw), want.permute(0, 3, 1, 2))
    # the fused ops' torch reference (GELU then GRN) is the same formula
    y = torch.randn(2, 6, 5, 7)
    ref = global_response_norm(F.gelu(y), grn.gamma.view(1, 6, 1, 1), grn.beta.view(1, 6, 1, 1), channel_dim=1)
    torch.testing.assert_close(gelu_grn_reference(y, grn.gamma, grn.beta), ref)


def test_grn_rejects_bad_layouts():
    import pytest

    with pytest.raises(ValueError, match="channel_dim"):
        global_response_norm(torch.randn(2, 3, 4), torch.ones(3), None, channel_dim=-1)
