import pytest
import torch

from lkconv.layers.lsconv import LKP, LSConv
from lkconv.ops.ska import SKA_IMPLS, ska


def _ska_loop(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Direct definition: y[b,c,i,j] = sum_{u,v} x[b,c,i+u,j+v] w[b, c mod G, (u+r)K+(v+r), i, j], zero padded."""
    b_, c_, h_, w_ = x.shape
    groups, ks = w.shape[1], round(w.shape[2] ** 0.5)
    r = ks // 2
    y = torch.zeros_like(x)
    for b in range(b_):
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    acc = x.new_zeros(())
                    for u in range(-r, r + 1):
                        for v in range(-r, r + 1):
                            if 0 <= i + u < h_ and 0 <= j + v < w_:
                                acc = acc + x[b, c, i + u, j + v] * w[b, c % groups, (u + r) * ks + v + r, i, j]
                    y[b, c, i, j] = acc
    return y


@pytest.mark.parametrize("impl", SKA_IMPLS)
@pytest.mark.parametrize("channels,groups,ks", [(8, 2, 3), (6, 3, 5), (4, 4, 1)])
def test_ska_matches_loop(impl, channels, groups, ks):
    x = torch.randn(2, channels, 5, 6, dtype=torch.float64)
    w = torch.randn(2, groups, ks * ks, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ska(x, w, impl), _ska_loop(x, w))


@pytest.mark.parametrize("impl", SKA_IMPLS)
def test_ska_backward_matches_loop_and_gradcheck(impl):
    x = torch.randn(1, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 9, 4, 3, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(1, 4, 4, 3, dtype=torch.float64)
    grads = torch.autograd.grad((ska(x, w, impl) * gy).sum(), (x, w))
    ref = torch.autograd.grad((_ska_loop(x, w) * gy).sum(), (x, w))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r)
    assert torch.autograd.gradcheck(lambda a, b: ska(a, b, impl), (x, w))


def test_ska_only_x_or_only_w_needs_grad():
    x, w = torch.randn(1, 4, 5, 5), torch.randn(1, 2, 9, 5, 5)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    ska(xg, w).sum().backward()
    ska(x, wg).sum().backward()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ska(xr, wr, "shift_autograd").sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad)
    torch.testing.assert_close(wg.grad, wr.grad)


def test_ska_implementations_agree_in_float32():
    x, w = torch.randn(2, 16, 9, 7), torch.randn(2, 2, 9, 9, 7)
    ref = ska(x, w, "shift_autograd")
    for impl in SKA_IMPLS:
        torch.testing.assert_close(ska(x, w, impl), ref, rtol=1e-5, atol=1e-5)


def test_ska_rejects_bad_inputs():
    x = torch.randn(1, 8, 4, 4)
    with pytest.raises(ValueError):
        ska(x, torch.randn(1, 3, 9, 4, 4))  # 8 channels not divisible by 3 groups
    with pytest.raises(ValueError):
        ska(x, torch.randn(1, 2, 8, 4, 4))  # 8 is not K*K
    with pytest.raises(ValueError):
        ska(x, torch.randn(1, 2, 9, 4, 4), impl="triton")


def test_lkp_shapes():
    lkp = LKP(32, lks=7, sks=3, groups=8)
    assert lkp(torch.randn(2, 32, 10, 12)).shape == (2, 4, 9, 10, 12)


@pytest.mark.parametrize("impl", SKA_IMPLS)
def test_lsconv_forward_backward(impl):
    m = LSConv(32, ska_impl=impl)
    x = torch.randn(2, 32, 14, 14, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in m.parameters())
    assert m.lkp.cv4.weight.grad.abs().sum() > 0


def test_lsconv_is_bn_of_ska_plus_identity():
    m = LSConv(16).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        expected = m.bn(_ska_loop(x.double(), m.lkp(x).double()).float()) + x
        torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-4)


def test_lsconv_rejects_bad_configuration():
    with pytest.raises(ValueError):
        LSConv(12, groups=8)
    with pytest.raises(ValueError):
        LSConv(16, lks=6)
    with pytest.raises(ValueError):
        LSConv(16, ska_impl="cuda")
