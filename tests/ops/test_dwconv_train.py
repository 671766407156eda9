"""The training path of the depthwise convolution has the gradients of F.conv2d."""

import pytest
import torch
import torch.nn.functional as F

from lkconv.ops import native
from lkconv.ops.dwconv_train import depthwise_conv2d_train, depthwise_grad_weight, depthwise_train_applies

needs_ext = pytest.mark.skipif(native.load() is None, reason="C kernels unavailable (no compiler)")


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@needs_ext
@pytest.mark.parametrize(
    ("n", "c", "h", "w", "k", "d", "channels_last", "bias"),
    [
        (2, 20, 9, 7, 5, 1, True, True),  # channel tail (20 = 16 + 4), non-square map
        (3, 17, 6, 6, 7, 2, False, False),  # dilated, NCHW input, 17 channels
        (2, 32, 8, 8, 13, 1, True, True),  # most taps on padding
        (1, 48, 4, 5, 3, 5, True, True),  # dilation wider than the map
        (2, 16, 12, 12, 3, 3, False, True),
    ],
)
def test_gradients_equal_conv2d(n, c, h, w, k, d, channels_last, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, 1, k, k, generator=g)
    b = torch.randn(c, generator=g) if bias else None
    grad_out = torch.randn(n, c, h, w, generator=g)
    p = d * (k - 1) // 2
    assert depthwise_train_applies(x, weight, (1, 1), (p, p), (d, d), c)
    results = []
    for fn in (lambda *a: F.conv2d(*a, 1, (p, p), (d, d), c), lambda *a: depthwise_conv2d_train(*a, (p, p), (d, d))):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        bi = None if b is None else b.clone().requires_grad_()
        y = fn(xi, wi, bi)
        y.backward(grad_out)
        results.append([y, xi.grad, wi.grad] + ([bi.grad] if bias else []))
    # fp32 with another summation order: 1e-5 of each tensor's largest magnitude
    for ours, ref in zip(results[1], results[0]):
        assert _rel(ours, ref) < 1e-5


@needs_ext
def test_grad_weight_is_deterministic_and_matches_torch():
    x = torch.randn(4, 40, 10, 10).contiguous(memory_format=torch.channels_last)
    go = torch.randn(4, 40, 10, 10)
    a = depthwise_grad_weight(x, go, (13, 13), (6, 6), (1, 1))
    b = depthwise_grad_weight(x, go, (13, 13), (6, 6), (1, 1))
    assert torch.equal(a, b)
    ref = torch.nn.grad.conv2d_weight(x, (40, 1, 13, 13), go, 1, 6, 1, 40)
    assert _rel(a, ref) < 1e-5


def test_falls_back_where_it_does_not_apply():
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert not depthwise_train_applies(x, w, (1, 1), (2, 2), (1, 1), 8)  # fp64
    assert not depthwise_train_applies(x.float(), w.float()[:, :, :3, :3], (1, 1), (1, 1), (1, 1), 8)  # plain 3x3
    assert not depthwise_train_applies(x.float(), w.float(), (2, 2), (2, 2), (1, 1), 8)  # strided
    assert not depthwise_train_applies(x.float(), w.float(), (1, 1), "same", (1, 1), 8)  # string padding
    y = depthwise_conv2d_train(x, w, None, (2, 2), (1, 1))
    torch.testing.assert_close(y, F.conv2d(x, w, None, 1, 2, 1, 8))
    assert torch.autograd.gradcheck(lambda a, b: depthwise_conv2d_train(a, b, None, (2, 2), (1, 1)), (x, w))


@needs_ext
def test_a_unireplknet_training_step_matches_the_torch_path(monkeypatch):
    import lkconv

    def step(model, x):
        model.zero_grad()
        F.cross_entropy(model(x), torch.tensor([1, 3, 0, 4])).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(0)
    model = lkconv.create_model("unireplknet_a", num_classes=5, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128),
                                kernel_sizes=((3,), (13,), (7,), (13,)), drop_path_rate=0.0).train()
    for p in model.parameters():  # GRN gammas and layer scales start at 0 / 1e-6: give every path a gradient
        if p.dim() == 1 or p.shape[:3] == (1, 1, 1):
            p.data.normal_(0, 0.1)
    x = torch.randn(4, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    import lkconv.layers.conv_bn as conv_bn

    calls = []
    fast = conv_bn.depthwise_conv2d_train
    monkeypatch.setattr(conv_bn, "depthwise_conv2d_train", lambda *a: calls.append(1) or fast(*a))
    ours = step(model, x)
    assert len(calls) == 6 + 4 + 6  # stages 1-3: K=13 (origin + 5 dilated branches), K=7 (origin + 3), K=13

    monkeypatch.setattr(conv_bn, "depthwise_train_applies", lambda *a: False)
    torch_fp32 = step(model, x)
    exact = step(model.double(), x.double())  # float64 through PyTorch's own path: the yardstick
    assert ours.keys() == torch_fp32.keys() == exact.keys()
    # Rounding differences grow through the training-mode BatchNorms, so compare both fp32 paths with
    # float64: ours must be as close to it as PyTorch's fp32 path is (within 3x, or 1e-5 relative).
    # (Gradients that are exactly zero in real arithmetic, e.g. a BatchNorm bias right before another BatchNorm, are
    # pure rounding noise: skipped.)
    checked = 0
    scale = max(g.abs().max().item() for g in exact.values())
    for name in exact:
        if exact[name].abs().max() < 1e-9 * scale:
            continue
        err_ours, err_torch = _rel(ours[name].double(), exact[name]), _rel(torch_fp32[name].double(), exact[name])
        assert err_ours < max(3 * err_torch, 1e-5), (name, err_ours, err_torch)
        checked += 1
    assert checked > 40


@needs_ext
@pytest.mark.parametrize(("n", "c", "side", "k", "d"), [(64, 64, 2, 5, 1), (64, 64, 2, 3, 3), (2, 16, 10, 7, 1)])
def test_runs_in_fp32_under_cpu_autocast(n, c, side, k, d):
    """``amp: true`` on the CPU: the fast path must not hand a bf16 result to its fp32-only backward (on small maps
    the planned forward is F.conv2d, which autocast ran in bf16, and backward raised a dtype error); under autocast
    it computes in fp32 and has the fp32 gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, side, side, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, 1, k, k, generator=g)
    grad_out = torch.randn(n, c, side, side, generator=g)
    grads = []
    for amp in (False, True):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = depthwise_conv2d_train(xi, wi, None, (d * (k - 1) // 2,) * 2, (d, d))
        assert y.dtype == torch.float32
        y.backward(grad_out)
        grads.append((y.detach(), xi.grad, wi.grad))
    for plain, autocast in zip(*grads):
        torch.testing.assert_close(autocast, plain, rtol=0, atol=0)  # the same fp32 computation
