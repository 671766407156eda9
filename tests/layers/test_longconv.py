import pytest
import torch
import torch.nn.functional as F

from lkconv.layers.longconv import LongConv


def _causal_direct(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return F.conv1d(F.pad(u, (k.shape[-1] - 1, 0)), k.flip(-1).unsqueeze(1), groups=u.shape[1])


def test_init_scale_and_shapes():
    m = LongConv(16, 512)
    assert m.kernel.shape == (1, 16, 512)
    assert 0.0015 < m.kernel.std().item() < 0.0025
    assert LongConv(16, 512, bidirectional=True).kernel.shape == (2, 16, 512)


def test_kernel_smoothing_and_squash():
    m = LongConv(2, 20, squash_lambda=0.05)
    with torch.no_grad():
        m.kernel.copy_(torch.randn(1, 2, 20))
    smooth = F.avg_pool1d(m.kernel.detach(), 7, stride=1, padding=3)
    expected = torch.sign(smooth) * (smooth.abs() - 0.05).clamp_min(0)
    torch.testing.assert_close(m.build_kernel(), expected)
    m.smooth = False
    raw = m.kernel.detach()
    torch.testing.assert_close(m.build_kernel(), torch.sign(raw) * (raw.abs() - 0.05).clamp_min(0))


def test_reference_lambda_kills_the_initial_kernel():
    # Why the default lambda is 1e-3: 0.1 against the randn * 0.002 init zeroes every tap and its gradient.
    dead = LongConv(8, 64, squash_lambda=0.1)
    dead(torch.randn(2, 8, 64)).square().sum().backward()
    assert torch.count_nonzero(dead.build_kernel()) == 0 and torch.count_nonzero(dead.kernel.grad) == 0
    alive = LongConv(8, 64)
    alive(torch.randn(2, 8, 64)).square().sum().backward()
    assert torch.count_nonzero(alive.kernel.grad) > 0.2 * alive.kernel.numel()


def test_kernel_dropout_only_in_training():
    m = LongConv(4, 64, squash_lambda=0.0, kernel_dropout=0.5)
    assert torch.count_nonzero(m.build_kernel()) < m.kernel.numel()
    m.eval()
    assert torch.count_nonzero(m.build_kernel()) == m.kernel.numel()


@pytest.mark.parametrize("L", [33, 64, 100])
@pytest.mark.parametrize("glu", [False, True])
def test_forward_matches_direct_convolution(L, glu):
    m = LongConv(4, 64, squash_lambda=0.0, glu=glu).eval()
    with torch.no_grad():
        m.kernel.normal_()
    u = torch.randn(2, 4, L)
    k = m.build_kernel()[0, :, :L]
    z = F.gelu(_causal_direct(u, k) + m.D[:, None] * u)
    expected = m.output_glu(m.output_linear(z.transpose(1, 2))).transpose(1, 2)
    y = m(u)
    assert y.shape == u.shape
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)


def test_bidirectional_gradients():
    m = LongConv(4, 32, bidirectional=True, glu=True, squash_lambda=0.0)
    m(torch.randn(2, 4, 32)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        LongConv(4, 32, smooth_window=6)
    with pytest.raises(ValueError):
        LongConv(4, 32, squash_lambda=-1.0)
    with pytest.raises(ValueError):
        LongConv(4, 32)(torch.randn(1, 3, 32))
