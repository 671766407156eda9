"""InceptionNeXt: published sizes, reference key names, the MLP head's protocol."""

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_macs, count_params
from lkconv.models.inceptionnext import MlpHead

# Published (paper, Table 1): params (M) and MACs (G) at 224, rounded as printed. Measured here:
#   atto 4.156520M 0.503G | tiny 28.055680M 4.189G | small 49.374016M 8.356G | base 86.672136M 14.841G.
# Tolerance: params within half a unit of the printed last digit (0.05M for atto, 0.5M for the others);
# MACs within 2 % (atto's 0.503G prints as 0.50, the paper says 0.51; the counter counts convs and linears only).
PUBLISHED = {"atto": (4.2, 0.05, 0.51), "tiny": (28, 0.5, 4.2), "small": (49, 0.5, 8.4), "base": (87, 0.5, 14.9)}
EXACT = {"atto": 4_156_520, "tiny": 28_055_680, "small": 49_374_016, "base": 86_672_136}


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return lkconv.create_model(name, **kw)


@pytest.mark.parametrize("variant", list(PUBLISHED))
def test_parameter_counts_and_macs_match_the_paper(variant):
    params_m, tol, gmacs = PUBLISHED[variant]
    model = meta_model(f"inception_next_{variant}")
    params = count_params(model)
    assert params == EXACT[variant]
    assert abs(params / 1e6 - params_m) <= tol
    macs = count_macs(model, torch.empty(1, 3, 224, 224, device="meta")) / 1e9
    assert abs(macs - gmacs) / gmacs < 0.02, macs


def test_reference_key_names_and_shapes():
    sd = meta_model("inception_next_tiny").state_dict()
    expect = {
        "stem.0.weight": (96, 3, 4, 4),
        "stem.1.running_var": (96,),
        "stages.0.blocks.0.token_mixer.dwconv_hw.weight": (12, 1, 3, 3),
        "stages.0.blocks.0.token_mixer.dwconv_w.weight": (12, 1, 1, 11),
        "stages.0.blocks.0.token_mixer.dwconv_h.bias": (12,),
        "stages.0.blocks.0.norm.weight": (96,),
        "stages.0.blocks.0.mlp.fc1.weight": (384, 96, 1, 1),
        "stages.0.blocks.0.mlp.fc2.weight": (96, 384, 1, 1),
        "stages.0.blocks.0.gamma": (96,),
        "stages.1.downsample.0.weight": (96,),
        "stages.1.downsample.1.weight": (192, 96, 2, 2),
        "stages.3.blocks.2.mlp.fc1.weight": (2304, 768, 1, 1),  # last stage MLP ratio 3
        "head.fc1.weight": (2304, 768),
        "head.norm.weight": (2304,),
        "head.fc2.weight": (1000, 2304),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("stages.0.downsample") for k in sd)
    atto = meta_model("inception_next_atto").state_dict()
    assert tuple(atto["stages.0.blocks.0.token_mixer.dwconv_w.weight"].shape) == (10, 1, 1, 9)  # ratio 1/4, band 9


def test_layer_scale_starts_small_and_is_not_decayed():
    model = lkconv.create_model("inception_next_atto")
    gammas = [p for n, p in model.named_parameters() if n.endswith(".gamma")]
    assert len(gammas) == 12 and all(torch.allclose(g, torch.full_like(g, 1e-6)) for g in gammas)
    assert model.no_weight_decay() == {n for n, _ in model.named_parameters() if n.endswith(".gamma")}


def test_mlp_head_pre_logits_reset_and_prune():
    model = lkconv.create_model("inception_next_atto", num_classes=7).eval()
    assert isinstance(model.head, MlpHead) and model.head_hidden_size == 960
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 320, 2, 2)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 960)
        assert model(x).shape == (2, 7)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, 960)
        model.prune_head()
        assert model(x).shape == (2, 320) and model.head_hidden_size == 320
        model.reset_classifier(4)
        assert model(x).shape == (2, 4)
    no_head = lkconv.create_model("inception_next_atto", num_classes=0)
    assert isinstance(no_head.head.fc2, torch.nn.Identity)


def test_deploy_is_accepted_and_changes_nothing():
    a = {k: tuple(v.shape) for k, v in meta_model("inception_next_atto").state_dict().items()}
    b = {k: tuple(v.shape) for k, v in meta_model("inception_next_atto", deploy=True).state_dict().items()}
    assert a == b


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="4 entries"):
        lkconv.create_model("inception_next_atto", depths=(1, 1, 1))
    with pytest.raises(ValueError, match="drop_path_rate"):
        lkconv.create_model("inception_next_atto", drop_path_rate=-0.1)
    with pytest.raises(ValueError, match="band_kernel_size"):
        lkconv.create_model("inception_next_atto", band_kernel_size=8)
