import math

import pytest
import torch
import torch.nn.functional as F

from lkconv.layers.sgconv import SGConv, sgconv_num_scales


def _causal_direct(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return F.conv1d(F.pad(u, (k.shape[-1] - 1, 0)), k.flip(-1).unsqueeze(1), groups=u.shape[1])


@pytest.mark.parametrize("max_len,d,n", [(64, 64, 1), (65, 64, 2), (128, 64, 2), (129, 64, 3), (1024, 64, 5),
                                         (16384, 64, 9), (10, 64, 1)])
def test_num_scales(max_len, d, n):
    assert sgconv_num_scales(max_len, d) == n
    assert d * 2 ** (n - 1) >= max_len


def test_kernel_parameters_grow_logarithmically():
    h, d = 8, 32
    counts = {}
    for max_len in (256, 1024, 4096, 16384):
        m = SGConv(h, max_len, kernel_dim=d)
        counts[max_len] = m.kernel.numel()
        assert counts[max_len] == h * d * (1 + math.ceil(math.log2(max_len / d)))
        assert counts[max_len] < h * max_len
    # Each 4x longer sequence adds just two sub-kernels per channel.
    assert counts[16384] - counts[4096] == counts[1024] - counts[256] == 2 * h * d
    assert SGConv(h, 4096, kernel_dim=d, bidirectional=True).kernel.numel() == 2 * counts[4096]


def test_kernel_construction_matches_definition():
    m = SGConv(3, 200, kernel_dim=16, decay_min=1.5, decay_max=3.0)
    n = m.num_scales
    assert n == 5
    k = m.raw_kernel()[0]
    decay = torch.linspace(1.5, 3.0, 3)[:, None]
    start = 0
    for i in range(n):
        scale = 2 ** max(0, i - 1)
        part = F.interpolate(m.kernel[i, :1].transpose(0, 1), scale_factor=scale, mode="linear")[:, 0]
        part = part * decay ** (n - 1 - i)
        stop = min(start + 16 * scale, 200)
        torch.testing.assert_close(k[:, start:stop], part[:, : stop - start])
        start += 16 * scale
    assert k.shape == (3, 200)
    assert k[:, :16].abs().mean() > k[:, 128:].abs().mean()  # decay weighs early parts up


def test_kernel_norm_frozen_after_first_forward():
    m = SGConv(4, 100, kernel_dim=8)
    assert not bool(m.kernel_norm_ready)
    m(torch.randn(2, 4, 60))
    assert bool(m.kernel_norm_ready)
    frozen = m.kernel_norm.clone()
    torch.testing.assert_close(frozen, m.raw_kernel().norm(dim=-1, keepdim=True).detach())
    torch.testing.assert_close(m.build_kernel(100).norm(dim=-1), torch.ones(1, 4))
    with torch.no_grad():
        m.kernel.mul_(3.0)
    m(torch.randn(2, 4, 60))
    assert torch.equal(m.kernel_norm, frozen)
    assert "kernel_norm" in m.state_dict() and "kernel_norm_ready" in m.state_dict()


@pytest.mark.parametrize("glu", [False, True])
@pytest.mark.parametrize("L", [50, 100, 131])
def test_forward_matches_direct_convolution(glu, L):
    m = SGConv(4, 100, kernel_dim=16, glu=glu).eval()
    u = torch.randn(2, 4, L)
    y = m(u)
    assert y.shape == u.shape
    k = m.build_kernel(L)[0]
    z = F.gelu(_causal_direct(u, k) + m.D[:, None] * u)
    expected = m.output_glu(m.output_linear(z.transpose(1, 2))).transpose(1, 2)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)


def test_bidirectional_sees_the_future_and_causal_does_not():
    u = torch.randn(1, 4, 64)
    u2 = u.clone()
    u2[..., 40:] += 1.0
    causal = SGConv(4, 64, kernel_dim=8).eval()
    torch.testing.assert_close(causal(u)[..., :40], causal(u2)[..., :40])
    bidir = SGConv(4, 64, kernel_dim=8, bidirectional=True).eval()
    assert (bidir(u)[..., :40] - bidir(u2)[..., :40]).abs().max() > 1e-3


def test_gradients_reach_all_parameters():
    m = SGConv(4, 128, kernel_dim=16, bidirectional=True, glu=True)
    m(torch.randn(2, 4, 128)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        SGConv(4, 100, interp_mode="cubic")
    with pytest.raises(ValueError):
        SGConv(4, 100)(torch.randn(2, 5, 100))
