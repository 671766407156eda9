"""RepLKNet: published sizes, reference key names, re-parameterization and the FFT large-kernel path."""

import re

import pytest
import torch
import torch.nn.functional as F

import lkconv
from lkconv.analysis.complexity import count_macs, count_params
from lkconv.layers.conv_bn import LargeDepthwiseConv2d
from lkconv.models import checkpoint_structure, is_deploy_structure, load_checkpoint
from lkconv.models.replknet import ConvFFN, RepLKBlock, ReparamLargeKernelConv

# Published (paper, Table 7 / mmpretrain): params in M (rounded as published), GFLOPs (MACs) at a resolution.
# Measured here (train structure / deploy structure):
#   31B: 79.864168M / 79.390824M, 15.431G / 15.354G MACs at 224  (mmpretrain: 79.9M train, 79.5M with only the
#        large kernels merged = 79.390824M + the unfolded BatchNorms; paper 79M, 15.3G)
#   31L: 172.671016M / 171.961000M, 96.332G / 95.989G at 384      (paper 172M, 96.0G)
#   XL:  335.435752M / 335.114728M, 128.730G at 320               (paper 335M, 128.7G)
PUBLISHED = {"31b": (79, 224, 15.3), "31l": (172, 384, 96.0), "xl": (335, 320, 128.7)}
EXACT = {"31b": (79_864_168, 79_390_824), "31l": (172_671_016, 171_961_000), "xl": (335_435_752, 335_114_728)}
TINY = {"dims": (8, 16, 16, 24), "depths": (1, 1, 1, 1), "num_classes": 5}


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return lkconv.create_model(name, **kw)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("variant", list(PUBLISHED))
def test_parameter_counts_and_macs_match_the_paper(variant):
    params_m, size, gmacs = PUBLISHED[variant]
    train, deploy = meta_model(f"replknet_{variant}"), meta_model(f"replknet_{variant}", deploy=True)
    assert (count_params(train), count_params(deploy)) == EXACT[variant]
    # the published counts are given in whole millions (31B's 79.86M is printed "79M"): within 1M of them
    assert abs(count_params(train) / 1e6 - params_m) < 1.0
    macs = count_macs(deploy, torch.empty(1, 3, size, size, device="meta")) / 1e9
    assert abs(macs - gmacs) / gmacs < 0.01, macs


def test_mmpretrain_train_count_and_merged_count():
    # mmpretrain: 79.9M for the training structure, 79.5M with only the large kernels merged (the reference's
    # small_kernel_merged, which keeps the other BatchNorms)
    model = meta_model("replknet_31b")
    assert round(count_params(model) / 1e6, 1) == 79.9
    for m in model.modules():
        if isinstance(m, ReparamLargeKernelConv):
            m.reparameterize()
    assert round(count_params(model) / 1e6, 1) == 79.5


def test_reference_key_names_and_shapes():
    sd = meta_model("replknet_31b").state_dict()
    expect = {
        "stem.0.conv.weight": (128, 3, 3, 3),
        "stem.0.bn.running_var": (128,),
        "stem.1.conv.weight": (128, 1, 3, 3),
        "stem.2.conv.weight": (128, 128, 1, 1),
        "stem.3.conv.weight": (128, 1, 3, 3),
        "stages.0.blocks.0.prelkb_bn.weight": (128,),
        "stages.0.blocks.0.pw1.conv.weight": (128, 128, 1, 1),
        "stages.0.blocks.0.pw1.bn.bias": (128,),
        "stages.0.blocks.0.large_kernel.lkb_origin.conv.weight": (128, 1, 31, 31),
        "stages.0.blocks.0.large_kernel.lkb_origin.bn.num_batches_tracked": (),
        "stages.0.blocks.0.large_kernel.small_conv.conv.weight": (128, 1, 5, 5),
        "stages.0.blocks.0.pw2.conv.weight": (128, 128, 1, 1),
        "stages.0.blocks.1.preffn_bn.weight": (128,),
        "stages.0.blocks.1.pw1.conv.weight": (512, 128, 1, 1),
        "stages.0.blocks.1.pw2.bn.weight": (128,),
        "stages.2.blocks.35.pw2.conv.weight": (512, 2048, 1, 1),
        "stages.2.blocks.34.large_kernel.lkb_origin.conv.weight": (512, 1, 27, 27),
        "stages.3.blocks.0.large_kernel.lkb_origin.conv.weight": (1024, 1, 13, 13),
        "transitions.0.0.conv.weight": (256, 128, 1, 1),
        "transitions.0.1.conv.weight": (256, 1, 3, 3),
        "transitions.2.1.bn.running_mean": (1024,),
        "norm.weight": (1024,),
        "head.weight": (1000, 1024),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(".bias" in k and ".conv." in k for k in sd)  # convs before BatchNorms have no bias
    assert checkpoint_structure(sd) == "train"
    xl = meta_model("replknet_xl").state_dict()
    assert tuple(xl["stages.0.blocks.0.pw1.conv.weight"].shape) == (384, 256, 1, 1)  # dw_ratio 1.5
    assert not any("small_conv" in k for k in xl)


def test_deploy_keys_equal_reparameterized_keys():
    for name in ("replknet_31b", "replknet_xl"):
        train = meta_model(name)
        lkconv.reparameterize_model(train)
        deploy = meta_model(name, deploy=True)
        fused = {k: tuple(v.shape) for k, v in train.state_dict().items()}
        assert fused == {k: tuple(v.shape) for k, v in deploy.state_dict().items()}
        assert is_deploy_structure(train) and is_deploy_structure(deploy)
    assert "stages.0.blocks.0.large_kernel.lkb_reparam.bias" in fused
    assert "stages.0.blocks.0.pw1.conv.bias" in fused
    assert not any("prelkb_bn" in k or "preffn_bn" in k or ".bn." in k for k in fused)


@pytest.mark.parametrize("variant,extra", [("31b", {}), ("xl", {"dims": (12, 16, 16, 24)})])
def test_reparameterize_model_is_exact(variant, extra, randomize):
    # stage maps at 32x32 input: 8, 4, 2, 1 -- the 31/29/27 kernels take the FFT path, 13 the direct one
    model = lkconv.create_model(f"replknet_{variant}", **{**TINY, **extra}).eval()
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        assert lkconv.reparameterize_model(model) is model
        out = model(x)
    assert model.deploy and is_deploy_structure(model)
    assert _rel_err(out, ref) < 1e-5
    deploy = lkconv.create_model(f"replknet_{variant}", **{**TINY, **extra}, deploy=True).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), out)


def test_blocks_reparameterize_idempotently_in_float64(randomize):
    for block in (RepLKBlock(6, 9, 11, 5), ConvFFN(6, 24), ReparamLargeKernelConv(6, 7, 3),
                  ReparamLargeKernelConv(6, 7, None)):
        block = block.double().eval()
        randomize(block)
        x = torch.randn(2, 6, 10, 10, dtype=torch.float64)
        with torch.no_grad():
            ref = block(x)
            block.reparameterize()
            first = {k: v.clone() for k, v in block.state_dict().items()}
            block.reparameterize()
            out = block(x)
        assert all(torch.equal(first[k], v) for k, v in block.state_dict().items())
        assert all(p.dtype == torch.float64 for p in block.parameters())
        assert _rel_err(out, ref) < 1e-12


@pytest.mark.parametrize("k,size", [(17, 12), (31, 8), (27, 20)])
def test_large_kernels_use_the_fft_and_equal_direct_convolution(k, size):
    conv = LargeDepthwiseConv2d(6, 6, k, 1, k // 2, groups=6, bias=True)
    x = torch.randn(2, 6, size, size, requires_grad=True)
    assert conv.uses_fft(x)
    out = conv(x)
    ref = F.conv2d(x, conv.weight, conv.bias, padding=k // 2, groups=6)
    assert _rel_err(out, ref) < 1e-4
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, conv.weight), g)
    ref_grads = torch.autograd.grad(ref, (x, conv.weight), g)
    for a, b in zip(grads, ref_grads):
        assert _rel_err(a, b) < 1e-4
    small = LargeDepthwiseConv2d(6, 6, 13, 1, 6, groups=6)
    assert not small.uses_fft(x) and not LargeDepthwiseConv2d(6, 12, k, padding=k // 2, groups=6).uses_fft(x)


def test_protocol_on_a_tiny_configuration():
    model = lkconv.create_model("replknet_31b", **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(model.forward_head(final), model(x))
    assert [t.shape[1] for t in inter] == [f["num_chs"] for f in model.feature_info] == [8, 16, 16, 24]
    assert [64 // t.shape[-1] for t in inter] == [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    names = [n for n, _ in model.named_parameters()]
    m = model.group_matcher()
    patterns = [m["stem"]] + [p for p, _ in m["blocks"]]
    assert all(any(re.match(p, n) for p in patterns) for n in names if not n.startswith("head."))
    extractor = lkconv.create_model("replknet_31b", **TINY, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        assert [o.shape[1] for o in extractor(x)] == [16, 24]
    model.train()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_train_checkpoint_loads_into_a_deploy_model(tmp_path, randomize):
    train = lkconv.create_model("replknet_31b", **TINY).eval()
    randomize(train)
    path = tmp_path / "replknet.pth"
    torch.save(train.state_dict(), path)
    deploy = lkconv.create_model("replknet_31b", **TINY, deploy=True).eval()
    load_checkpoint(deploy, path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _rel_err(deploy(x), train(x)) < 1e-5


def test_drop_path_rates_follow_the_reference():
    m = meta_model("replknet_31b", drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in m.stages for b in s.blocks]
    assert len(rates) == 48 and rates[0] == 0.0 and rates[0::2] == rates[1::2]  # RepLK block and its FFN share
    assert abs(rates[-1] - 0.3) < 1e-9


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="4 entries"):
        lkconv.create_model("replknet_31b", depths=(1, 1, 1))
    with pytest.raises(ValueError, match="small_kernel"):
        ReparamLargeKernelConv(4, 7, 9)
    with pytest.raises(ValueError, match="kernel_size"):
        ReparamLargeKernelConv(4, 8, 3)
    with pytest.raises(ValueError, match="drop_path_rate"):
        lkconv.create_model("replknet_31b", drop_path_rate=1.0)
