"""Published peer weights (issue 15): InceptionNeXt from timm's hub files (sail-sg's keys, lkconv's too) and LSNet
from ``jameslahm/lsnet``'s DeiT-style files in the reference's layout, renamed on load.

The stand-in files are made here: a randomized lkconv model saved in the published layout (for LSNet through the
inverse of the key map, written below from the reference's module layout), so that loading must reproduce the
model's outputs exactly."""

import argparse
import itertools
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lkconv.models import create_model
from lkconv.models._checkpoint import CheckpointReadError
from lkconv.models.pretrained import PRETRAINED_TAGS, PretrainedWeightsError
from test_pretrained import make_hub_cache, use_cache


def _x(chans=3, side=64):
    return torch.randn(2, chans, side, side, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def atto(randomize):
    model = create_model("inception_next_atto")
    randomize(model)
    return model.eval()


def test_peer_tags_name_the_published_files():
    t = PRETRAINED_TAGS["inception_next_tiny.sail_in1k"]
    assert (t.hub_repo, t.hub_file, t.top1, t.crop_pct) == ("timm/inception_next_tiny.sail_in1k", "model.safetensors",
                                                            82.3, 0.875)
    b384 = PRETRAINED_TAGS["inception_next_base.sail_in1k_384"]
    assert (b384.input_size, b384.crop_pct, PRETRAINED_TAGS["inception_next_base.sail_in1k"].crop_pct) == (384, 1.0, 0.95)
    ls = PRETRAINED_TAGS["lsnet_t.in1k"]
    assert (ls.hub_repo, ls.hub_file, ls.top1, ls.crop_pct) == ("jameslahm/lsnet", "lsnet_t.pth", 74.9, 0.9)
    with pytest.raises(PretrainedWeightsError, match="no published weights for 'replknet_31b'"):
        create_model("replknet_31b", pretrained=True)


def test_inception_next_from_the_hub_cache(tmp_path, monkeypatch, atto):
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in atto.state_dict().items()}, str(file))
    use_cache(monkeypatch, make_hub_cache(tmp_path / "hub", {"model.safetensors": file},
                                          repo="timm/inception_next_atto.sail_in1k"))
    model = create_model("inception_next_atto", pretrained=True).eval()  # the default tag
    assert model.pretrained_cfg["tag"] == "inception_next_atto.sail_in1k"
    with torch.no_grad():
        torch.testing.assert_close(model(_x()), atto(_x()), rtol=0, atol=0)
        # another head: only the classifier (head.fc2) starts afresh; the MLP head's first layers are the file's
        ten = create_model("inception_next_atto", pretrained=True, num_classes=10)
        assert ten.head.fc2.weight.shape == (10, atto.head.fc2.weight.shape[1])
        torch.testing.assert_close(ten.head.fc1.weight, atto.head.fc1.weight)
        grey = create_model("inception_next_atto", pretrained=True, in_chans=1).eval()
        g = _x(1)
        torch.testing.assert_close(grey(g), atto(g.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)


def _lsnet_reference_layout(sd: dict[str, torch.Tensor], attention_sides: dict[int, int]) -> dict[str, torch.Tensor]:
    """lkconv's LSNet keys in the layout of the reference's ``model/lsnet.py`` (patch_embed, blocks1..4 with the next
    stage's downsampling first, timm SqueezeExcite fc1/fc2, Conv2d_BN ``c``, head BN_Linear ``bn``/``l``), with the
    reference's ``attention_bias_idxs`` buffers."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if key.startswith("downsample_layers.0."):
            new = "patch_embed." + ".".join(parts[2:])
        elif key.startswith("downsample_layers."):
            s = int(parts[1])
            new = f"blocks{s + 1}." + ".".join(parts[2:])
        elif key.startswith("stages."):
            s, j = int(parts[1]), int(parts[2])
            rest = ".".join(parts[3:]).replace("se.down.", "se.fc1.").replace("se.up.", "se.fc2.")
            for cv in ("cv1", "cv2", "cv3"):
                rest = rest.replace(f"mixer.lkp.{cv}.conv.", f"mixer.lkp.{cv}.c.")
            new = f"blocks{s + 1}.{j + 2 if s > 0 else j}.{rest}"
        elif key.startswith("norm."):
            new = "head.bn." + key[len("norm."):]
        else:
            assert key.startswith("head."), key
            new = "head.l." + key[len("head."):]
        out[new] = value
    for key in list(out):
        if key.endswith("mixer.m.attention_biases"):
            r = attention_sides[out[key].shape[1]]
            points = list(itertools.product(range(r), range(r)))
            offsets, idxs = {}, []
            for p1 in points:
                for p2 in points:
                    idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
            out[key.replace("attention_biases", "attention_bias_idxs")] = torch.tensor(idxs).view(r * r, r * r)
    return out


@pytest.fixture(scope="module")
def lsnet_s(randomize):
    model = create_model("lsnet_s")  # stage 1 has a block (LSNet-T's has none): every part of the map is used
    randomize(model)
    return model.eval()


def test_lsnet_reference_file_loads_renamed(tmp_path, monkeypatch, lsnet_s):
    ref = _lsnet_reference_layout(lsnet_s.state_dict(), {16: 4})
    assert any(k.startswith("blocks1.0.") for k in ref) and "blocks2.0.c.weight" in ref and "head.l.weight" in ref
    # a DeiT training file: the weights under "model" and the run's argparse.Namespace (allowed: a plain attribute bag)
    published = {"model": ref, "args": argparse.Namespace(model="lsnet_s", lr=4e-3), "epoch": 299}
    use_cache(monkeypatch, make_hub_cache(tmp_path / "hub", {"lsnet_s.pth": published}, repo="jameslahm/lsnet"))
    model = create_model("lsnet_s.in1k", pretrained=True).eval()
    x = _x(side=128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), lsnet_s(x), rtol=0, atol=0)
        fused = create_model("lsnet_s.in1k", pretrained=True, deploy=True).eval()
        want = lsnet_s(x)
        assert (fused(x) - want).abs().max().item() <= 1e-4 * want.abs().max().item()
    assert model.pretrained_cfg["crop_pct"] == 0.9 and model.pretrained_cfg["hub_repo"] == "jameslahm/lsnet"


class _Other:
    """Any class but the allowed Namespace."""


def test_lsnet_file_with_another_object_is_refused(tmp_path, lsnet_s):
    path = tmp_path / "lsnet_s.pth"
    torch.save({"model": _lsnet_reference_layout(lsnet_s.state_dict(), {16: 4}), "extra": _Other()}, path)
    with pytest.raises(CheckpointReadError, match="not a tensor"):
        create_model("lsnet_s.in1k", pretrained_file=path)
