"""The fused element-wise kernels equal the plain torch computation."""

import pytest
import torch
import torch.nn.functional as F

from lkconv.ops import native
from lkconv.ops.fused import (
    conv1x1_add,
    conv1x1_gelu,
    gelu_grn,
    gelu_grn_reference,
    layer_norm_channels,
    layer_norm_channels_reference,
    onednn_bf16,
    PW1_PATHS,
    PW2_PATHS,
    pointwise_add,
    pointwise_gelu,
    quantize_u8,
    se_gate,
    se_gate_reference,
)
from lkconv.layers.se import SEBlock

needs_ext = pytest.mark.skipif(native.load() is None, reason="C kernels unavailable (no compiler)")

# fp32: a different summation order and erf approximation (|error| <= 1.5e-7): 1e-5 of the output scale.
# bf16: the output is rounded to bf16 (8 significant bits) once, torch rounds after each op: 1e-2 of the scale.
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def _cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def _rel(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 40, 9, 7), (3, 17, 5, 5), (1, 64, 1, 1), (5, 160, 4, 4)])
def test_gelu_grn_matches_torch(dtype, shape):
    g = torch.Generator().manual_seed(0)
    y = _cl(torch.randn(shape, generator=g) * 3).to(dtype)
    gamma, beta = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    ref = gelu_grn_reference(y.float(), gamma, beta)
    out = gelu_grn(y.clone(), gamma.to(dtype), beta.to(dtype))
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert _rel(out, ref) < TOL[dtype]
    # GELU already applied (by the convolution): GRN only
    pre = _cl(F.gelu(y.float())).to(dtype)
    assert _rel(gelu_grn(pre, gamma.to(dtype), gelu_done=True), gelu_grn_reference(y.float(), gamma)) < TOL[dtype]


@needs_ext
def test_gelu_grn_overwrites_and_handles_tails_and_denormals():
    y = _cl(torch.randn(2, 19, 6, 6))
    y[0, :, 0, 0] = -30.0  # GELU(-30) underflows; its square is far below the denormal range
    y[1, :, 1, 1] = 1e-39  # a denormal input
    gamma = torch.randn(19)
    ref = gelu_grn_reference(y.clone(), gamma)
    out = gelu_grn(y, gamma)
    assert out.data_ptr() == y.data_ptr()  # in place
    assert torch.isfinite(out).all()
    assert _rel(out, ref) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["cl", "nchw"])
def test_pointwise_paths_match_conv(dtype, layout):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(2, 24, 5, 7, generator=g)).to(dtype)
    x = _cl(x) if layout == "cl" else x
    w, b = torch.randn(40, 24, 1, 1, generator=g).to(dtype) / 5, torch.randn(40, generator=g).to(dtype)
    res = _cl(torch.randn(2, 40, 5, 7, generator=g)).to(dtype)
    ref = F.conv2d(x.float(), w.float(), b.float())
    for path in PW1_PATHS:
        y, gelu_done = pointwise_gelu(x, w, b, path)
        assert y.shape == ref.shape and y.dtype == dtype
        assert _rel(y, F.gelu(ref) if gelu_done else ref) < TOL[dtype], path
        if layout == "cl":
            native = dtype == torch.float32 or onednn_bf16()  # oneDNN's bf16 needs AVX512 or AVX-NE-CONVERT
            assert gelu_done == (path == "conv_gelu" and native) and y.is_contiguous(memory_format=torch.channels_last)
    for path in PW2_PATHS:
        out = pointwise_add(x, w, b, res, path)
        assert out.dtype == dtype and _rel(out, ref + res.float()) < TOL[dtype], path
    with pytest.raises(ValueError, match="path must be one of"):
        pointwise_gelu(x, w, b, "fft")
    with pytest.raises(ValueError, match="path must be one of"):
        pointwise_add(x, w, b, res, "fft")


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 40, 9, 7), (3, 17, 5, 5), (1, 64, 1, 1), (4, 160, 4, 4)])
def test_se_gate_matches_seblock(dtype, shape):
    torch.manual_seed(2)
    se = SEBlock(shape[1], max(1, shape[1] // 4)).to(dtype)
    y = _cl(torch.randn(shape) * 2 + 0.5).to(dtype)
    with torch.no_grad():
        ref = SEBlock.forward(se.float(), y.float())  # the module's own forward, in fp32
        se = se.to(dtype)
        out = se_gate(y, se.down.weight, se.down.bias, se.up.weight, se.up.bias)
    assert out.data_ptr() == y.data_ptr() and out.dtype == dtype  # gated in place
    assert _rel(out, ref) < TOL[dtype]
    torch.testing.assert_close(  # the fallback (NCHW input) is the module's formula
        se_gate_reference(ref.contiguous(), se.down.weight.float(), se.down.bias.float(), se.up.weight.float(),
                          se.up.bias.float()),
        se.float()(ref.contiguous()))


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_se_gate_without_biases(dtype):
    g = torch.Generator().manual_seed(3)
    y = _cl(torch.randn(3, 33, 6, 5, generator=g)).to(dtype)
    w1, w2 = torch.randn(9, 33, 1, 1, generator=g).to(dtype), torch.randn(33, 9, 1, 1, generator=g).to(dtype)
    ref = se_gate_reference(y.float(), w1.float(), None, w2.float(), None)
    assert _rel(se_gate(y.clone(), w1, None, w2, None), ref) < TOL[dtype]


# (scale, zero point) pairs for the quantized outputs: mid-range, one-sided (zp 0 and 255: half the values clip),
# a fine step (most values clip) and a coarse one
QPARAMS = [(0.02, 128), (0.013, 0), (0.03, 255), (0.004, 100), (0.3, 7)]


def _is_nhwc_codes(q, shape):
    return q.dtype == torch.uint8 and q.shape == shape and q.permute(0, 2, 3, 1).is_contiguous()


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 40, 9, 7), (3, 17, 5, 5), (4, 160, 4, 4), (1, 64, 1, 1)])
def test_quantized_outputs_are_torchs_codes_of_the_float_outputs(dtype, shape):
    """se_gate / gelu_grn with ``quantize=``: exactly (no tolerance) the codes torch.quantize_per_tensor gives for the
    float kernels' output: the kernel forms the same fp32 (or bf16-rounded) product and quantizes it with torch's own
    arithmetic (fma with the fp32 1/scale and the zero point, round half to even), so no rounding can differ."""
    g = torch.Generator().manual_seed(4)
    c = shape[1]
    y = _cl(torch.randn(shape, generator=g) * 2 + 0.5).to(dtype)
    w1, b1 = torch.randn(c // 4 + 1, c, 1, 1, generator=g).to(dtype), torch.randn(c // 4 + 1, generator=g).to(dtype)
    w2, b2 = torch.randn(c, c // 4 + 1, 1, 1, generator=g).to(dtype), torch.randn(c, generator=g).to(dtype)
    gamma = torch.randn(c, generator=g).to(dtype)
    for scale, zp in QPARAMS:
        want = quantize_u8(se_gate(y.clone(), w1, b1, w2, b2), scale, zp)
        before = y.clone()
        got = se_gate(y, w1, b1, w2, b2, quantize=(scale, zp))
        assert _is_nhwc_codes(got, y.shape) and torch.equal(got, want)
        assert torch.equal(y, before)  # the gate is not applied to y
        for gelu_done in (False, True):
            want = quantize_u8(gelu_grn(y.clone(), gamma, gelu_done=gelu_done), scale, zp)
            got = gelu_grn(y.clone(), gamma, gelu_done=gelu_done, quantize=(scale, zp))
            assert _is_nhwc_codes(got, y.shape) and torch.equal(got, want)
        assert 0 < (want == 0).sum() + (want == 255).sum() < want.numel()  # the clamps are exercised, not everywhere


def _codes(y, scale, zp):
    """lk_scale_channels_u8 with all channel scales 1: the codes of y itself (channels_last fp32/bf16)."""
    b, c, h, w = y.shape
    ones = torch.ones(b, c)
    q = torch.empty(b, h, w, c, dtype=torch.uint8)
    inv = (1 / torch.tensor(scale, dtype=torch.float32)).item()
    native.load().lk_scale_channels_u8(y.data_ptr(), ones.data_ptr(), q.data_ptr(), b, h * w, c,
                                       int(y.dtype == torch.bfloat16), inv, zp, 1)
    return q.permute(0, 3, 1, 2)


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantized_output_rounding_ties_reciprocal_and_nan(dtype):
    """The kernel's quantizer alone (channel scales 1): halfway values round to even, the value is multiplied by the
    fp32 reciprocal of the scale as torch does (fbgemm's own example: 0.273939937 / 0.00214854861 rounds to 127,
    times the reciprocal to 128), NaN gives what torch's quantizer gives, in the 16-lane part and the tail; and on
    150 000 random values per scale the codes are torch's, all of them (fma(x, 1/scale, zp) rounded once: rounding
    x / scale first and adding zp after differs from torch on a few values in a million)."""
    c = 37  # two 16-lane blocks and a scalar tail
    halves = torch.arange(-40, 41, dtype=torch.float32) * 0.125  # odd multiples: halfway between codes of step 0.25
    y = _cl(halves.reshape(1, 1, 9, 9).expand(1, c, 9, 9).contiguous()).to(dtype)
    got = _codes(y, 0.25, 60)
    assert torch.equal(got, quantize_u8(y, 0.25, 60))
    assert torch.equal(got.float(), torch.round(y.float() / 0.25) + 60)  # torch.round: half to even
    x = halves.reshape(9, 9)
    for value, code in ((0.125, 60), (0.375, 62), (-0.125, 60), (-0.375, 58)):  # 0.5→0, 1.5→2, -0.5→0, -1.5→-2
        i, j = (x == value).nonzero()[0].tolist()
        assert (got[0, :, i, j] == code).all()
    if dtype == torch.float32:
        fb = _cl(torch.full((1, c, 2, 3), 0.273939937))
        assert (_codes(fb, 0.00214854861, 0) == 128).all()
        assert torch.equal(_codes(fb, 0.00214854861, 0), quantize_u8(fb, 0.00214854861, 0))
    nan = y.clone()
    nan[0, 3, 2, 2] = float("nan")
    nan[0, 33, 1, 1] = float("nan")  # in the scalar tail
    assert torch.equal(_codes(nan, 0.25, 60), quantize_u8(nan, 0.25, 60))
    g = torch.Generator().manual_seed(7)
    x = _cl(torch.randn(1, c, 64, 64, generator=g) * 0.5).to(dtype)
    for scale, zp in ((0.004, 100), (0.013, 0), (0.02, 128), (0.0071, 37)):
        assert torch.equal(_codes(x, scale, zp), quantize_u8(x, scale, zp))


def test_quantized_outputs_fall_back_to_torch(monkeypatch):
    """Without the kernel (NCHW input, or the kernels disabled) ``quantize=`` gives the torch path's codes."""
    g = torch.Generator().manual_seed(5)
    y = torch.randn(2, 20, 5, 6, generator=g)
    w1, w2, gamma = torch.randn(5, 20, 1, 1, generator=g), torch.randn(20, 5, 1, 1, generator=g), torch.randn(20)
    want = quantize_u8(se_gate_reference(y, w1, None, w2, None), 0.02, 128)
    assert torch.equal(se_gate(y.clone(), w1, None, w2, None, quantize=(0.02, 128)), want)
    want = quantize_u8(gelu_grn_reference(y, gamma), 0.01, 3)
    assert torch.equal(gelu_grn(y.clone(), gamma, quantize=(0.01, 3)), want)
    monkeypatch.setenv("LKCONV_NO_EXT", "1")
    assert torch.equal(gelu_grn(_cl(y), gamma, quantize=(0.01, 3)), want)
    with pytest.raises(ValueError, match="zero point"):
        gelu_grn(y, gamma, quantize=(0.01, 256))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("shape", [(2, 20, 11, 13), (1, 3, 4, 4), (2, 80, 5, 3), (1, 200, 2, 2)])
def test_layer_norm_channels_matches_torch(dtype, gelu, shape):
    g = torch.Generator().manual_seed(1)
    x = _cl(torch.randn(shape, generator=g) * 2 + 1).to(dtype)
    w, b = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    ref = layer_norm_channels_reference(x.float(), w, b, 1e-6, gelu)
    out = layer_norm_channels(x, w.to(dtype), b.to(dtype), 1e-6, gelu)
    assert out.shape == x.shape and out.dtype == dtype
    assert _rel(out, ref) < TOL[dtype]


def test_fallbacks_without_channels_last_or_with_grad():
    y = torch.randn(2, 8, 5, 5)  # NCHW: the torch path
    gamma = torch.randn(8)
    torch.testing.assert_close(gelu_grn(y.clone(), gamma), gelu_grn_reference(y, gamma))
    yg = _cl(torch.randn(2, 8, 5, 5)).requires_grad_()
    out = gelu_grn(yg, gamma)
    out.sum().backward()  # differentiable: the kernels are not used
    assert yg.grad is not None and torch.isfinite(yg.grad).all()


def test_kernels_disabled(monkeypatch):
    monkeypatch.setenv("LKCONV_NO_EXT", "1")
    x = _cl(torch.randn(2, 24, 5, 5))
    w, b = torch.randn(24), torch.randn(24)
    torch.testing.assert_close(layer_norm_channels(x, w, b, 1e-6, True), layer_norm_channels_reference(x, w, b, 1e-6, True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_onednn_fused_convolutions_match_torch(dtype):
    g = torch.Generator().manual_seed(2)
    x = _cl(torch.randn(2, 24, 7, 5, generator=g)).to(dtype)
    w1, b1 = torch.randn(96, 24, 1, 1, generator=g).to(dtype) * 0.2, torch.randn(96, generator=g).to(dtype)
    w2, b2 = torch.randn(24, 96, 1, 1, generator=g).to(dtype) * 0.1, torch.randn(24, generator=g).to(dtype)
    with torch.inference_mode():
        h, gelu_done = conv1x1_gelu(x, w1, b1)
        ref_h = F.conv2d(x.float(), w1.float(), b1.float())
        assert _rel(h, F.gelu(ref_h) if gelu_done else ref_h) < TOL[dtype]
        hh = _cl(F.gelu(ref_h)).to(dtype)
        out = conv1x1_add(hh, w2, b2, x)
        ref = x.float() + F.conv2d(hh.float(), w2.float(), b2.float())
        assert _rel(out, ref) < TOL[dtype]
