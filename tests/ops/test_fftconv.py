import pytest
import torch
import torch.nn.functional as F

from lkconv.ops.fftconv import fft_conv1d, fft_conv1d_bidirectional, fft_conv2d, next_fast_len

# fp32 tolerance: max error relative to the output scale (FFT round-off grows ~log n, far below this).
REL_TOL = 1e-4


def _assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float = REL_TOL) -> None:
    scale = expected.abs().max().clamp_min(1e-6)
    err = (actual - expected).abs().max()
    assert err <= rel * scale, f"max error {err.item():.3g} > {rel} * {scale.item():.3g}"


def _causal_direct(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    lk = k.shape[-1]
    return F.conv1d(F.pad(u, (lk - 1, 0)), k.flip(-1).unsqueeze(1), groups=u.shape[1])


def _is_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_next_fast_len_is_smallest_smooth():
    for n in range(1, 700):
        f = next_fast_len(n)
        assert f >= n and _is_smooth(f)
        assert not any(_is_smooth(m) for m in range(n, f))
    with pytest.raises(ValueError):
        next_fast_len(0)


@pytest.mark.parametrize("L,Lk", [(1, 1), (7, 7), (33, 33), (100, 17), (257, 257), (64, 200), (1000, 1000)])
def test_fft_conv1d_causal_matches_direct(L, Lk):
    u, k, D = torch.randn(2, 5, L), torch.randn(5, Lk), torch.randn(5)
    expected = _causal_direct(u, k) + D[:, None] * u
    _assert_close_scaled(fft_conv1d(u, k, D), expected)


@pytest.mark.parametrize("L,Lk", [(31, 9), (40, 8), (17, 17)])
def test_fft_conv1d_centred_matches_direct(L, Lk):
    u, k = torch.randn(2, 3, L), torch.randn(3, Lk)
    c = (Lk - 1) // 2
    # Centred convolution == cross-correlation with the flipped kernel and padding (Lk - 1 - c, c).
    expected = F.conv1d(F.pad(u, (Lk - 1 - c, c)), k.flip(-1).unsqueeze(1), groups=3)
    _assert_close_scaled(fft_conv1d(u, k, causal=False), expected)


@pytest.mark.parametrize("L,lf,lb", [(50, 50, 50), (33, 10, 33), (21, 1, 5), (16, 40, 3)])
def test_fft_conv1d_bidirectional_matches_two_directions(L, lf, lb):
    u, kf, kb, D = torch.randn(2, 4, L), torch.randn(4, lf), torch.randn(4, lb), torch.randn(4)
    expected = _causal_direct(u, kf) + _causal_direct(u.flip(-1), kb).flip(-1) + D[:, None] * u
    _assert_close_scaled(fft_conv1d_bidirectional(u, kf, kb, D), expected)


def test_fft_conv1d_grads_match_direct():
    u = torch.randn(2, 3, 45, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 45, dtype=torch.float64, requires_grad=True)
    D = torch.randn(3, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(2, 3, 45, dtype=torch.float64)
    grads = torch.autograd.grad((fft_conv1d(u, k, D) * gy).sum(), (u, k, D))
    ref = torch.autograd.grad(((_causal_direct(u, k) + D[:, None] * u) * gy).sum(), (u, k, D))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r)
    assert torch.autograd.gradcheck(fft_conv1d, (u[:1, :, :9], k[:, :6], D), fast_mode=True)
    kb = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fft_conv1d_bidirectional, (u[:1, :, :9], k[:, :6], kb, D), fast_mode=True)


def test_fft_conv1d_keeps_half_dtype():
    u, k = torch.randn(1, 2, 30, dtype=torch.bfloat16), torch.randn(2, 30, dtype=torch.bfloat16)
    y = fft_conv1d(u, k)
    assert y.dtype == torch.bfloat16
    _assert_close_scaled(y.float(), _causal_direct(u.float(), k.float()), rel=2e-2)


def test_fft_conv1d_rejects_bad_shapes():
    with pytest.raises(ValueError):
        fft_conv1d(torch.randn(2, 3, 10), torch.randn(4, 10))
    with pytest.raises(ValueError):
        fft_conv1d(torch.randn(2, 3, 10), torch.randn(3, 10), D=torch.randn(2))


@pytest.mark.parametrize("size", [(16, 16), (13, 10), (9, 20)])
@pytest.mark.parametrize("ks", [(3, 3), (7, 7), (4, 5), (13, 1), (31, 31)])
@pytest.mark.parametrize("padding", ["same", 0, (2, 3), (16, 15)])
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_fft_conv2d_matches_conv2d(size, ks, padding):
    x, k, b = torch.randn(2, 6, *size), torch.randn(6, 1, *ks), torch.randn(6)
    try:
        expected = F.conv2d(x, k, b, padding=padding, groups=6)
    except RuntimeError:  # kernel larger than the padded input: ours must refuse too
        with pytest.raises(ValueError):
            fft_conv2d(x, k, padding, bias=b)
        return
    _assert_close_scaled(fft_conv2d(x, k, padding, bias=b), expected)


def test_fft_conv2d_grads_match_conv2d():
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 1, 11, 9, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    grads = torch.autograd.grad((fft_conv2d(x, k, "same") * gy).sum(), (x, k))
    ref = torch.autograd.grad((F.conv2d(x, k, padding="same", groups=3) * gy).sum(), (x, k))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r)


def test_fft_conv2d_rejects_bad_arguments():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError):
        fft_conv2d(x, torch.randn(4, 1, 3, 3), padding="full")
    with pytest.raises(ValueError):
        fft_conv2d(x, torch.randn(3, 1, 3, 3))
    with pytest.raises(ValueError):
        fft_conv2d(x, torch.randn(4, 2, 3, 3))


def test_fft_conv1d_per_sample_kernels_broadcast():
    u, k = torch.randn(3, 4, 40), torch.randn(3, 4, 40)
    y = fft_conv1d(u, k)
    for b in range(3):
        _assert_close_scaled(y[b : b + 1], _causal_direct(u[b : b + 1], k[b]))
