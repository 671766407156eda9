"""UniRepLKNet: exact numbers of the reference, re-parameterization and the branch table."""

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_macs, count_params
from lkconv.layers.dilated_reparam import DILATED_BRANCHES, DilatedReparamBlock
from lkconv.models.unireplknet import UniRepLKNetBlock

# Reference numbers (1000 classes): deploy params, train params (None: not given), GMACs at 224.
REFERENCE = {
    "a": (4.437, 4.649, 0.64), "f": (6.235, 6.489, 0.91), "p": (10.742, 11.081, 1.57), "n": (18.319, 18.819, 2.77),
    "t": (31.038, 31.693, 4.90), "s": (55.646, None, 9.09), "b": (98.008, None, None), "l": (218.455, None, None),
    "xl": (386.529, None, None),
}
KEY_COUNTS = {"a": (626, 156), "f": (626, 156), "p": (626, 156), "n": (738, 178), "t": (1116, 321)}


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return lkconv.create_model(name, **kw)


@pytest.mark.parametrize("variant", list(REFERENCE))
def test_parameter_counts_and_macs(variant):
    deploy_m, train_m, gmacs = REFERENCE[variant]
    name = f"unireplknet_{variant}"
    deploy = meta_model(name, deploy=True)
    assert round(count_params(deploy) / 1e6, 3) == deploy_m
    if train_m is not None:
        assert round(count_params(meta_model(name)) / 1e6, 3) == train_m
    if gmacs is not None:
        assert round(count_macs(deploy, torch.empty(1, 3, 224, 224, device="meta")) / 1e9, 2) == gmacs


@pytest.mark.parametrize("variant,size,gmacs", [("s", 384, 26.72), ("b", 384, 47.18), ("l", 192, 26.37),
                                                ("xl", 192, 46.71), ("b", 224, 16.06)])
def test_macs_at_other_resolutions(variant, size, gmacs):
    m = meta_model(f"unireplknet_{variant}", deploy=True)
    assert round(count_macs(m, torch.empty(1, 3, size, size, device="meta")) / 1e9, 2) == gmacs


@pytest.mark.parametrize("variant", list(KEY_COUNTS))
def test_state_dict_key_counts(variant):
    train_n, deploy_n = KEY_COUNTS[variant]
    assert len(meta_model(f"unireplknet_{variant}").state_dict()) == train_n
    assert len(meta_model(f"unireplknet_{variant}", deploy=True).state_dict()) == deploy_n


def test_state_dict_key_names_and_shapes():
    train = meta_model("unireplknet_a").state_dict()
    deploy = meta_model("unireplknet_a", deploy=True).state_dict()
    c = 80  # stage 1 width of A, a LarK stage
    lark = "stages.1.0."
    expect_train = {
        lark + "gamma": (c,),
        lark + "dwconv.lk_origin.weight": (c, 1, 13, 13),
        lark + "dwconv.origin_bn.num_batches_tracked": (),
        lark + "dwconv.dil_conv_k7_2.weight": (c, 1, 7, 7),
        lark + "dwconv.dil_bn_k3_5.running_var": (c,),
        lark + "norm.running_mean": (c,),
        lark + "se.down.weight": (c // 4, c, 1, 1),
        lark + "se.up.bias": (c,),
        lark + "pwconv1.1.weight": (4 * c, c),
        lark + "act.1.gamma": (1, 1, 1, 4 * c),
        lark + "act.1.beta": (1, 1, 1, 4 * c),
        lark + "pwconv2.0.weight": (c, 4 * c),
        lark + "pwconv2.2.weight": (c,),
        "stages.0.0.dwconv.weight": (40, 1, 3, 3),
        "downsample_layers.0.0.weight": (20, 3, 3, 3),
        "downsample_layers.0.4.bias": (40,),
        "downsample_layers.3.1.weight": (320,),
        "norm.weight": (320,),
        "head.weight": (1000, 320),
    }
    for k, shape in expect_train.items():
        assert tuple(train[k].shape) == shape, k
    assert "stages.0.0.dwconv.bias" not in train and "stages.1.0.pwconv2.0.bias" not in train
    expect_deploy = {
        lark + "dwconv.lk_origin.weight": (c, 1, 13, 13),
        lark + "dwconv.lk_origin.bias": (c,),
        "stages.0.0.dwconv.bias": (40,),
        lark + "pwconv2.0.bias": (c,),
        lark + "act.1.gamma": (1, 1, 1, 4 * c),
    }
    for k, shape in expect_deploy.items():
        assert tuple(deploy[k].shape) == shape, k
    for gone in (".norm.", "act.1.beta", "pwconv2.2.", "origin_bn", "dil_conv"):
        assert not any(gone in k for k in deploy if k.startswith("stages.")), gone
    assert not any(k.count(".") == 3 and k.endswith(".gamma") for k in deploy)  # layer scale stages.i.j.gamma


def test_kernel_table_layout_of_t():
    m = meta_model("unireplknet_t")
    summary = m.stage_summary()
    assert [s["lark"] for s in summary] == [0, 3, 9, 3]
    assert [s["smak"] for s in summary] == [3, 0, 9, 0]
    assert summary[2]["kernel_sizes"][:4] == [13, 3, 13, 3]


@pytest.mark.parametrize("k", sorted(DILATED_BRANCHES))
def test_dilated_reparam_block_fuses_exactly_for_every_k(k, randomize):
    block = DilatedReparamBlock(8, k)
    randomize(block)
    block.eval()
    x = torch.randn(2, 8, 24, 24)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert block.deploy and not block.branches
    assert list(dict(block.named_parameters())) == ["lk_origin.weight", "lk_origin.bias"]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [3, 4, 6, 19, 31])
def test_dilated_reparam_block_rejects_other_k(k):
    with pytest.raises(ValueError, match="accepted kernel sizes"):
        DilatedReparamBlock(8, k)


def test_block_kernel_size_validation():
    with pytest.raises(ValueError, match="odd"):
        UniRepLKNetBlock(8, 4)
    with pytest.raises(ValueError, match="kernel_size"):
        UniRepLKNetBlock(8, 19)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("variant", ["a", "f", "p", "n", "t", "s"])
def test_reparameterize_model_is_exact(variant, randomize):
    model = lkconv.create_model(f"unireplknet_{variant}", num_classes=10).eval()
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out_model = lkconv.reparameterize_model(model)
        out = model(x)
    assert out_model is model and model.deploy
    assert _rel_err(out, ref) < 1e-5
    # the fused weights load strictly into a model built in the deploy structure and give the same outputs
    deploy = lkconv.create_model(f"unireplknet_{variant}", num_classes=10, deploy=True).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), out)


def test_reparameterize_is_idempotent_and_keeps_dtype(randomize):
    model = lkconv.create_model("unireplknet_a", num_classes=5).double().eval()
    randomize(model)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        lkconv.reparameterize_model(model)
        first = {k: v.clone() for k, v in model.state_dict().items()}
        lkconv.reparameterize_model(model)
        out = model(x)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert first.keys() == model.state_dict().keys()
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    assert _rel_err(out, ref) < 1e-10


def test_drop_path_rates_rise_linearly():
    m = meta_model("unireplknet_a", drop_path_rate=0.2)
    rates = [b.drop_path.drop_prob for s in m.stages for b in s if hasattr(b.drop_path, "drop_prob")]
    assert len(rates) == 11 and abs(rates[-1] - 0.2) < 1e-9  # the first block has rate 0 (Identity)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="kernel_sizes"):
        lkconv.create_model("unireplknet_a", kernel_sizes=((3,), (13,), (13,), (13,)))
    with pytest.raises(ValueError, match="drop_path_rate"):
        lkconv.create_model("unireplknet_a", drop_path_rate=1.5)
    custom = lkconv.create_model("unireplknet_a", kernel_sizes=((3, 3), (17, 5), (7,) * 6, (11, 11)), num_classes=3)
    assert custom(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("deploy", [False, True])
def test_channels_last_path_equals_nchw(deploy, randomize):
    """Blocks run their pointwise layers as 1x1 convs on channels_last input: same outputs and gradients."""
    model = lkconv.create_model("unireplknet_a", num_classes=5, deploy=deploy)
    randomize(model)
    model.train(not deploy)
    x = torch.randn(4, 3, 64, 64)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    cl = model.to(memory_format=torch.channels_last)
    out = cl(x.contiguous(memory_format=torch.channels_last))
    out.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for n, p in cl.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-3, atol=1e-5, msg=n)
