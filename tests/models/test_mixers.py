"""UniRepLKNet with interchangeable spatial mixers (drb, dw, inception, lsconv, dcls) and the DCLS post_step hook."""

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_params
from lkconv.layers.conv_bn import LargeDepthwiseConv2d
from lkconv.layers.dcls import DCLSConv2d
from lkconv.layers.inception_dw import InceptionDWConv2d
from lkconv.layers.lsconv import LSConv
from lkconv.models import is_deploy_structure
from lkconv.models.unireplknet import MIXERS, UniRepLKNetBlock

TINY = {"depths": (1, 1, 1, 1), "dims": (16, 16, 24, 32), "kernel_sizes": ((3,), (13,), (13,), (7,)), "num_classes": 5}
MIXER_TYPES = {"dw": LargeDepthwiseConv2d, "inception": InceptionDWConv2d, "lsconv": LSConv, "dcls": DCLSConv2d}


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("mixer", MIXERS)
def test_forward_backward_reparameterize_and_deploy_load(mixer, randomize):
    model = lkconv.create_model("unireplknet_a", mixers=mixer, **TINY)
    if mixer in MIXER_TYPES:
        assert all(isinstance(s[0].dwconv, MIXER_TYPES[mixer]) for s in model.stages)
    assert [s["mixer"] for s in model.stage_summary()] == [mixer] * 4
    x = torch.randn(2, 3, 32, 32)
    model.train()
    model(x).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())

    model.eval()
    randomize(model)
    with torch.no_grad():
        ref = model(x)
        lkconv.reparameterize_model(model)
        out = model(x)
    assert is_deploy_structure(model)
    assert _rel_err(out, ref) < 1e-5
    deploy = lkconv.create_model("unireplknet_a", mixers=mixer, deploy=True, **TINY).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), out)


def test_mixers_per_stage_and_default_keys_unchanged():
    model = lkconv.create_model("unireplknet_a", mixers=("drb", "inception", "lsconv", "dcls"), **TINY)
    assert [type(s[0].dwconv).__name__ for s in model.stages] == ["LargeDepthwiseConv2d", "InceptionDWConv2d", "LSConv",
                                                                  "DCLSConv2d"]
    with torch.device("meta"):
        default = lkconv.create_model("unireplknet_a").state_dict()
        explicit = lkconv.create_model("unireplknet_a", mixers="drb").state_dict()
    assert list(default) == list(explicit)
    assert lkconv.create_model("unireplknet_a", **TINY).mixers == ("drb",) * 4


def test_large_dw_mixer_takes_the_fft_path():
    model = lkconv.create_model("unireplknet_a", mixers="dw", depths=(1, 1, 1, 1), dims=(8, 8, 8, 8),
                                kernel_sizes=((3,), (31,), (17,), (5,)), num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    conv = model.stages[1][0].dwconv
    assert conv.uses_fft(torch.empty(1, 8, 8, 8))
    with torch.no_grad():
        ref = model(x)
        conv.fft_min_kernel = 99  # force the direct path
        model.stages[2][0].dwconv.fft_min_kernel = 99
        assert _rel_err(model(x), ref) < 1e-4


def test_dcls_post_step_clamps_positions_and_exempts_them_from_decay():
    model = lkconv.create_model("unireplknet_a_dcls", num_classes=4)
    layers = [m for m in model.modules() if isinstance(m, DCLSConv2d)]
    assert len(layers) == 10 and all(m.kernel_count == 34 and m.dilated_kernel_size == 13 for m in layers)
    with torch.no_grad():
        for m in layers:
            m.P.mul_(100.0)
    assert any(m.P.abs().max() > m.limit for m in layers)
    model.post_step()
    assert all(m.P.abs().max() <= m.limit for m in layers)
    nwd = model.no_weight_decay()
    assert "stages.1.0.dwconv.P" in nwd and "stages.3.1.dwconv.SIG" in nwd
    with torch.device("meta"):
        base = count_params(lkconv.create_model("unireplknet_a"))
        dcls = count_params(lkconv.create_model("unireplknet_a_dcls"))
    # each of the 10 LarK blocks: a 13x13 DRB (169 + dilated branches + BNs) becomes 34 weights and 2x2x34 positions
    assert dcls < base


def test_post_step_exists_on_every_family():
    for name in ("unireplknet_a", "replknet_31b", "inception_next_atto", "lsnet_t", "sgconvnet_tiny"):
        with torch.device("meta"):
            model = lkconv.create_model(name)
        model.post_step()  # a no-op without DCLS layers


def test_unknown_mixer_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="drb.*dw.*inception.*lsconv.*dcls"):
        lkconv.create_model("unireplknet_a", mixers="conv")
    with pytest.raises(ValueError, match="one name or 4 names"):
        lkconv.create_model("unireplknet_a", mixers=("drb", "dw"))
    with pytest.raises(ValueError, match="mixer must be one of"):
        UniRepLKNetBlock(8, 3, mixer="attention")


@pytest.mark.parametrize("mixer", ["lsconv", "dcls"])  # custom autograd (SKA) and rebuilt kernels
def test_grad_checkpointing_leaves_grads_unchanged(mixer):
    model = lkconv.create_model("unireplknet_a", mixers=mixer, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6)
