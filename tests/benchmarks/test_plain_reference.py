"""The plain eager baseline of the speed benchmarks computes the same function as lkconv's UniRepLKNet."""

import sys
from pathlib import Path

import pytest
import torch

import lkconv

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _plain_unireplknet import plain_like  # noqa: E402


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    for name, p in model.named_parameters():  # GRN gamma/beta start at 0; make every term count
        if "act.1" in name:
            p.data.normal_(0, 0.1, generator=g)


@pytest.mark.parametrize("deploy", [False, True])
def test_plain_reference_equals_lkconv(deploy):
    torch.manual_seed(0)
    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    _randomize_bn(model)
    if deploy:
        lkconv.reparameterize_model(model)
    plain = plain_like(model).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref, out = model(x), plain(x)
    # fp32, different op order (NHWC Linear vs 1x1 conv; mean/var LayerNorm vs F.layer_norm): 1e-4 of the scale
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4 * ref.abs().max().item())
    # the training structure's extra parameters (branches, BNs, GRN beta, layer scale) are really used
    n_model = sum(p.numel() for p in model.parameters())
    assert n_model == sum(p.numel() for p in plain.parameters())
