"""UPerNet segmentation network: mmseg key layout, strict loading of a stand-in checkpoint, shapes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from lkconv.models import CheckpointMismatchError
from lkconv.models.segmentation import default_head_channels, load_mmseg_checkpoint, segmentation_model

SMALL = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": [[3], [7], [7, 7], [7]]}


def _net(num_classes: int = 5, **kw):
    torch.manual_seed(0)
    return segmentation_model("unireplknet_a", num_classes=num_classes, head_channels=32, **SMALL, **kw)


def _conv_module(prefix: str) -> set[str]:
    """mmcv ConvModule with a BatchNorm: bias-free conv, then bn with its five entries."""
    return {f"{prefix}.conv.weight"} | {f"{prefix}.bn.{k}" for k in
                                        ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def test_head_keys_follow_mmseg_uperhead_and_fcnhead():
    sd = _net().state_dict()
    expected = set()
    for i in range(4):  # PPM: Sequential(AdaptiveAvgPool2d, ConvModule) per pool scale 1, 2, 3, 6
        expected |= _conv_module(f"decode_head.psp_modules.{i}.1")
    expected |= _conv_module("decode_head.bottleneck") | _conv_module("decode_head.fpn_bottleneck")
    for i in range(3):
        expected |= _conv_module(f"decode_head.lateral_convs.{i}") | _conv_module(f"decode_head.fpn_convs.{i}")
    expected |= {"decode_head.conv_seg.weight", "decode_head.conv_seg.bias"}
    expected |= _conv_module("auxiliary_head.convs.0") | {"auxiliary_head.conv_seg.weight",
                                                           "auxiliary_head.conv_seg.bias"}
    heads = {k for k in sd if not k.startswith("backbone.")}
    assert heads == expected
    assert {f"backbone.norm{i}.{p}" for i in range(4) for p in ("weight", "bias")} <= set(sd)
    assert not any(k.startswith(("backbone.head.", "backbone.norm.")) for k in sd)  # no classifier, no final norm
    assert sd["decode_head.bottleneck.conv.weight"].shape == (32, 128 + 4 * 32, 3, 3)
    assert sd["auxiliary_head.convs.0.conv.weight"].shape == (16, 64, 3, 3)  # stage 3 (64 ch) -> half the width


def test_stand_in_mmseg_checkpoint_loads_strictly_with_weights_only(tmp_path):
    src = _net()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    meta = {"mmseg_version": "0.27.0", "mmcv_version": "1.5.0", "config": "model = dict(type='EncoderDecoder')",
            "CLASSES": ("wall", "building", "sky", "floor", "tree"), "PALETTE": [[120, 120, 120], [180, 120, 120],
                                                                                  [6, 230, 230], [80, 50, 50],
                                                                                  [4, 200, 3]],
            "env_info": "sys.platform: linux", "seed": 0, "iter": 160000, "epoch": 1, "hook_msgs": {}}
    path = tmp_path / "upernet_stand_in.pth"
    torch.save({"meta": meta, "state_dict": OrderedDict(src.state_dict())}, path)
    assert set(torch.load(path, weights_only=True)) == {"meta", "state_dict"}  # plain types only
    dst = _net()
    got = load_mmseg_checkpoint(dst, path)
    assert got["CLASSES"] == meta["CLASSES"]
    src.eval(), dst.eval()
    x = torch.randn(2, 3, 64, 96)
    assert torch.equal(src(x), dst(x))


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    sd = _net().state_dict()
    sd.pop("decode_head.conv_seg.bias")
    sd["decode_head.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: decode_head\.conv_seg\.bias[\s\S]*"
                                                      r"unexpected keys: decode_head\.extra\.weight"):
        load_mmseg_checkpoint(_net(), path)


def test_outputs_at_input_size_and_auxiliary_only_in_training():
    net = _net(num_classes=3)
    x = torch.randn(2, 3, 70, 100)  # not a multiple of 32
    net.train()
    main, aux = net(x)
    assert main.shape == aux.shape == (2, 3, 70, 100)
    net.eval()
    assert net(x).shape == (2, 3, 70, 100)
    main.float().mean().backward()


def test_default_head_width():
    assert default_head_channels(640) == 512  # UniRepLKNet-T: the reference's UPerNet width
    assert default_head_channels(512) == 512
    assert default_head_channels(320) == 160  # UniRepLKNet-A
    assert default_head_channels(8) == 32
    net = segmentation_model("unireplknet_a", num_classes=2, **SMALL)
    assert net.decode_head.channels == 64 and net.auxiliary_head.channels == 32


@pytest.mark.parametrize("name", ["replknet_31b", "inception_next_atto", "lsnet_t"])
def test_other_2d_families(name):
    from lkconv.models import list_models

    if name not in list_models():
        pytest.skip(f"{name} not registered")
    net = segmentation_model(name, num_classes=4, head_channels=32).eval()
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)
