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


def test_sum_of_squares_path_equals_vector_norm_values_and_gradients():
    """Small maps take sqrt(sum(x^2)) (faster there), larger ones torch.linalg.vector_norm: both equal GRN computed in
    float64 with vector_norm, forward and backward, within float32 rounding (rtol 1e-5)."""
    from lkconv.ops.grn import SUM_SQUARES_MAX_SPATIAL

    torch.manual_seed(0)
    side_small, side_large = 2, int(SUM_SQUARES_MAX_SPATIAL ** 0.5) + 1  # 4 and 289 positions: both branches
    for side in (side_small, side_large):
        x = (torch.randn(3, side, side, 8) * 3).requires_grad_()
        gamma = torch.rand(1, 1, 1, 8, dtype=torch.float64)
        beta = torch.rand(1, 1, 1, 8, dtype=torch.float64)
        out = global_response_norm(x, gamma.float(), beta.float(), channel_dim=-1)
        x64 = x.detach().double().requires_grad_()
        g = torch.linalg.vector_norm(x64, ord=2, dim=(1, 2), keepdim=True)
        want = torch.addcmul(x64, x64, gamma * g / (g.mean(-1, keepdim=True) + 1e-6)) + beta
        torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-6)
        w = torch.randn_like(want)
        (gx,) = torch.autograd.grad((out.double() * w).sum(), x)
        (gx64,) = torch.autograd.grad((want * w).sum(), x64)
        torch.testing.assert_close(gx.double(), gx64, rtol=1e-5, atol=1e-5)


def test_se_block_equals_the_reference_convolutions():
    """SEBlock runs its 1x1 convolutions as matrix products on the pooled vector: values and gradients equal the
    reference definition with conv2d (ops.fused.se_gate_reference) up to float32 rounding."""
    from lkconv.layers.se import SEBlock
    from lkconv.ops.fused import se_gate_reference

    torch.manual_seed(0)
    se = SEBlock(12, 3)
    x = torch.randn(4, 12, 5, 6, requires_grad=True)
    out = se(x)
    want = se_gate_reference(x, se.down.weight, se.down.bias, se.up.weight, se.up.bias)
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    w = torch.randn_like(out)
    got = torch.autograd.grad((out * w).sum(), [x, se.down.weight, se.up.bias])
    ref = torch.autograd.grad((want * w).sum(), [x, se.down.weight, se.up.bias])
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_zero_channels_have_finite_gradients_on_both_paths():
    """A channel that is zero over the whole map (common on the 1x1 maps of the last stage after GELU) must not make
    the gradient NaN: both paths give vector_norm's gradient there."""
    from lkconv.ops.grn import SUM_SQUARES_MAX_SPATIAL

    for side in (1, int(SUM_SQUARES_MAX_SPATIAL ** 0.5) + 1):
        x = torch.zeros(2, side, side, 4)
        x[0, :, :, 1] = torch.randn(side, side)
        x.requires_grad_()
        gamma = torch.full((1, 1, 1, 4), 0.5)
        (grad,) = torch.autograd.grad(global_response_norm(x, gamma, None, channel_dim=-1).sum(), x)
        x64 = x.detach().double().requires_grad_()
        g = torch.linalg.vector_norm(x64, ord=2, dim=(1, 2), keepdim=True)
        want = torch.addcmul(x64, x64, gamma.double() * g / (g.mean(-1, keepdim=True) + 1e-6))
        (grad64,) = torch.autograd.grad(want.sum(), x64)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad.double(), grad64, rtol=1e-5, atol=1e-6)
