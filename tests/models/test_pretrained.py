"""Published weights (issue 15): tags, the offline hub cache, the adapting load, pretrained_cfg and ``predict --model``.

No network: each test lays out a Hugging Face hub cache as huggingface_hub stores it
(``models--OWNER--NAME/snapshots/REV/FILE`` and ``refs/main``) holding a stand-in checkpoint with the reference's
key names under the published file name, and sets ``HF_HUB_OFFLINE=1`` / ``HF_HUB_CACHE``.
"""

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lkconv
from lkconv.cli import main
from lkconv.models import create_model, is_deploy_structure
from lkconv.models._checkpoint import CheckpointReadError
from lkconv.models.imagenet_classes import IMAGENET_1K_CLASSES
from lkconv.models.pretrained import (PRETRAINED_TAGS, PretrainedWeightsError, adapt_input_conv, pretrained_cfg_for,
                                      resolve_tag)


REPO = "DingXiaoH/UniRepLKNet"
A_FILE = "unireplknet_a_in1k_224_acc77.03.pth"
REVISION = "af190f7" + "0" * 33  # a 40-hex commit, as the cache names snapshots
# The stand-in head favours these classes, in this order (tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat).
TOP5 = [281, 282, 283, 284, 285]


def _standin_state_dict(randomize) -> dict[str, torch.Tensor]:
    """A unireplknet_a state_dict with random BatchNorm statistics and scales (conftest; fusion is not trivial) whose head ranks
    :data:`TOP5` first."""
    model = create_model("unireplknet_a")
    randomize(model)
    with torch.no_grad():
        model.head.weight.mul_(0.01)
        model.head.bias.zero_()
        for rank, c in enumerate(TOP5):
            model.head.bias[c] = 12.0 - rank
    return model.state_dict()


def make_hub_cache(root: Path, files: dict[str, object], repo: str = REPO) -> Path:
    """A huggingface_hub cache under ``root`` with ``files`` of ``repo`` (name -> object saved with torch.save, raw
    bytes, or a path to copy)."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / REVISION
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(REVISION)
    for name, obj in files.items():
        if isinstance(obj, bytes):
            (snap / name).write_bytes(obj)
        elif isinstance(obj, Path):
            (snap / name).write_bytes(obj.read_bytes())
        else:
            torch.save(obj, snap / name)
    return root


@pytest.fixture(scope="module")
def standin(randomize) -> dict[str, torch.Tensor]:
    return _standin_state_dict(randomize)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, standin) -> Path:
    # the published A file is a bare state_dict (its pickle imports OrderedDict and storages only)
    return make_hub_cache(tmp_path_factory.mktemp("hub"), {A_FILE: standin})


def use_cache(monkeypatch, cache: Path) -> None:
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE for this test (huggingface_hub reads both when imported: patched too).

    Tests of the hub cache skip without huggingface_hub (the extra ``[hub]``, which ``make`` installs); the others run.
    """
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))


@pytest.fixture(scope="module")
def offline_hub(cache_dir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        use_cache(mp, cache_dir)
        yield cache_dir


@pytest.fixture(scope="module")
def loaded(offline_hub) -> torch.nn.Module:
    """``create_model("unireplknet_a.in1k", pretrained=True)`` from the offline cache (shared: models take a while)."""
    return create_model("unireplknet_a.in1k", pretrained=True).eval()


@pytest.fixture(scope="module")
def reference(standin) -> torch.nn.Module:
    """The architecture loaded from the same tensors with plain load_state_dict (the expected outputs)."""
    model = create_model("unireplknet_a")
    model.load_state_dict(standin)
    return model.eval()


def x_in(chans: int = 3, side: int = 32) -> torch.Tensor:
    return torch.randn(2, chans, side, side, generator=torch.Generator().manual_seed(5))


# --- the tag table ------------------------------------------------------------------------------------------------
def test_tags_and_published_names():
    tags = lkconv.list_models(pretrained=True)
    assert len(tags) == 22 and tags[0] == "unireplknet_a.in1k"
    assert set(tags) == {f"unireplknet_{v}.in1k" for v in "afpnts"} | {
        f"unireplknet_{v}.{t}" for v in ("s", "b", "l", "xl") for t in ("in22k", "in22k_ft_in1k_384")} | {
        f"inception_next_{v}.sail_in1k" for v in ("atto", "tiny", "small", "base")} | {
        "inception_next_base.sail_in1k_384"} | {f"lsnet_{v}.in1k" for v in "tsb"}
    assert lkconv.list_models("unireplknet_s*", pretrained=True) == [
        "unireplknet_s.in1k", "unireplknet_s.in22k", "unireplknet_s.in22k_ft_in1k_384"]
    t = PRETRAINED_TAGS["unireplknet_t.in1k"]
    assert (t.hub_repo, t.hub_file, t.top1, t.input_size) == (REPO, "unireplknet_t_in1k_224_acc83.21.pth", 83.21, 224)
    xl = PRETRAINED_TAGS["unireplknet_xl.in22k_ft_in1k_384"]
    assert (xl.hub_file, xl.top1, xl.input_size, xl.crop_pct) == (
        "unireplknet_xl_in22k_to_in1k_384_acc87.96.pth", 87.96, 384, 1.0)
    l22 = PRETRAINED_TAGS["unireplknet_l.in22k"]
    assert (l22.hub_file, l22.num_classes, l22.input_size) == ("unireplknet_l_in22k_pretrain.pth", 21841, 192)
    assert resolve_tag("unireplknet_a").name == "unireplknet_a.in1k"
    assert resolve_tag("unireplknet_b").name == "unireplknet_b.in22k_ft_in1k_384"
    with pytest.raises(PretrainedWeightsError, match="unknown pretrained tag 'unireplknet_a.in22k'.*accepted: "
                       "unireplknet_a.in1k"):
        resolve_tag("unireplknet_a.in22k")
    with pytest.raises(PretrainedWeightsError, match="no published weights for 'replknet_31b'"):
        create_model("replknet_31b", pretrained=True)


def test_a_tag_without_pretrained_builds_random_weights_with_its_cfg():
    model = create_model("unireplknet_l.in22k", device="meta")
    assert model.num_classes == 21841 and model.pretrained_cfg["input_size"] == [3, 192, 192]
    assert model.pretrained_cfg["loaded"] is False and model.model_name == "unireplknet_l"


# --- loading --------------------------------------------------------------------------------------------------------
def test_outputs_equal_a_model_loaded_from_the_same_tensors(offline_hub, loaded, reference, standin):
    model = loaded
    x = x_in()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == [3, 224, 224] and cfg["num_classes"] == 1000 and cfg["label_set"] == "imagenet-1k"
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]
    assert cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bicubic" and cfg["crop_mode"] == "center"
    assert (cfg["hub_repo"], cfg["hub_file"], cfg["top1"]) == (REPO, A_FILE, 77.03)
    assert Path(cfg["file"]) == offline_hub / f"models--DingXiaoH--UniRepLKNet/snapshots/{REVISION}/{A_FILE}"
    assert model.model_name == "unireplknet_a"  # rebuilds from model_name/model_args without the tag
    assert all(torch.equal(v, standin[k]) for k, v in model.state_dict().items())


def test_the_plain_name_takes_the_default_tag(offline_hub, monkeypatch):
    import lkconv.models.pretrained as pretrained

    seen = []
    monkeypatch.setattr(pretrained, "load_state_dict_file", lambda path, **kw: seen.append(Path(path).name) or {})
    with pytest.raises(PretrainedWeightsError, match="has no 'downsample_layers.0.0.weight'"):
        create_model("unireplknet_a", pretrained=True, device="meta")
    assert seen == [A_FILE]


def test_the_model_container_and_a_local_file(tmp_path, reference, standin):
    path = tmp_path / A_FILE
    torch.save({"model": standin, "epoch": 300}, path)  # the reference loader's "model" wrapper
    model = create_model("unireplknet_a.in1k", pretrained_file=path).eval()
    x = x_in()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert model.pretrained_cfg["file"] == str(path)


def test_another_num_classes_reinitializes_only_the_head(offline_hub, reference, standin):
    model = create_model("unireplknet_a.in1k", pretrained=True, num_classes=7).eval()
    assert model.head.weight.shape == (7, 320)
    assert all(torch.equal(v, standin[k]) for k, v in model.state_dict().items() if not k.startswith("head."))
    # the fresh trunc-normal init (std 0.02), not the file's head
    assert model.head.weight.detach().std().item() == pytest.approx(0.02, rel=0.3)
    x = x_in()
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x), pre_logits=True),
                           reference.forward_head(reference.forward_features(x), pre_logits=True))
    assert model.pretrained_cfg["num_classes"] == 7 and model.pretrained_cfg["label_set"] is None


def test_one_channel_stem_sums_rgb_grey_identity(offline_hub, reference):
    model = create_model("unireplknet_a.in1k", pretrained=True, in_chans=1).eval()
    grey = x_in(1)
    with torch.no_grad():
        got, want = model(grey), reference(grey.repeat(1, 3, 1, 1))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert model.pretrained_cfg["input_size"] == [1, 224, 224] and len(model.pretrained_cfg["mean"]) == 1


def test_more_channels_repeat_and_rescale():
    w = torch.randn(20, 3, 3, 3)
    six = adapt_input_conv(w, 6)
    assert torch.equal(six, torch.cat([w, w], 1) * 0.5)
    five = adapt_input_conv(w, 5)
    assert torch.allclose(five, torch.cat([w, w[:, :2]], 1) * 0.6)
    assert torch.equal(adapt_input_conv(w, 1), w.sum(1, keepdim=True)) and adapt_input_conv(w, 3) is w


def test_six_channels_of_one_rgb_image_twice_give_the_original_output(offline_hub, reference):
    model = create_model("unireplknet_a.in1k", pretrained=True, in_chans=6).eval()
    x = x_in()
    with torch.no_grad():
        torch.testing.assert_close(model(torch.cat([x, x], 1)), reference(x), rtol=1e-4, atol=1e-4)


def test_deploy_fuses_after_loading(offline_hub, reference):
    model = create_model("unireplknet_a.in1k", pretrained=True, deploy=True)
    assert is_deploy_structure(model) and model.model_args["deploy"] is True
    x = x_in()
    with torch.no_grad():
        want = reference(x)
        assert (model(x) - want).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())
        assert not torch.equal(model(x), want)  # not trivially the unfused model
    # a fused stand-in file loads into the fused structure, with or without deploy=True
    fused_file = offline_hub.parent / "fused_a.pth"
    torch.save(model.state_dict(), fused_file)
    again = create_model("unireplknet_a.in1k", pretrained_file=fused_file)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), model(x))


def test_features_only(offline_hub, reference):
    feats = create_model("unireplknet_a.in1k", pretrained=True, features_only=True, out_indices=(1, 3)).eval()
    x = x_in()
    with torch.no_grad():
        got = feats(x)
        want = reference.forward_intermediates(x, [1, 3], intermediates_only=True)
    assert [t.shape[1] for t in got] == [80, 320] and all(torch.equal(a, b) for a, b in zip(got, want))
    assert feats.pretrained_cfg["tag"] == "unireplknet_a.in1k"


# --- errors ---------------------------------------------------------------------------------------------------------
def _assert_names_everything(message: str, file: str) -> None:
    for part in ("lkconv[hub]" if "not installed" in message else "", REPO, file, "pretrained_file="):
        assert part in message, (part, message)


def test_missing_extra_names_the_extra_repo_file_and_alternative(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(PretrainedWeightsError) as e:
        create_model("unireplknet_a.in1k", pretrained=True)
    assert "pip install 'lkconv[hub]'" in str(e.value)
    _assert_names_everything(str(e.value), A_FILE)


def test_missing_file_names_the_repo_file_and_alternative(offline_hub):
    with pytest.raises(PretrainedWeightsError) as e:
        create_model("unireplknet_f.in1k", pretrained=True)
    message = str(e.value)
    _assert_names_everything(message, "unireplknet_f_in1k_224_acc78.58.pth")
    assert "HF_HUB_OFFLINE" in message


class _Payload:
    """Unpickling this would create a folder: the proof that code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_a_malicious_pickle_under_the_published_name_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "code_ran"
    cache = make_hub_cache(tmp_path / "hub", {A_FILE: pickle.dumps({"model": _Payload(str(target))})})
    use_cache(monkeypatch, cache)
    with pytest.raises(CheckpointReadError, match="not a tensor.*never unpickles code"):
        create_model("unireplknet_a.in1k", pretrained=True)
    assert not target.exists()


def test_a_file_of_another_structure_is_refused_with_the_keys(tmp_path, standin):
    bad = {k: v for k, v in standin.items() if k != "norm.weight"}
    bad["stages.0.0.gamma"] = torch.zeros(3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(PretrainedWeightsError, match="does not fit unireplknet_a.*missing keys: norm.weight.*"
                       r"shape mismatches: stages.0.0.gamma: file \(3,\) vs model \(40,\)"):
        create_model("unireplknet_a.in1k", pretrained_file=tmp_path / "bad.pth")


def resolve_cfg(name: str) -> dict:
    return pretrained_cfg_for(resolve_tag(name))


# --- prediction -----------------------------------------------------------------------------------------------------
def test_class_names_table():
    assert len(IMAGENET_1K_CLASSES) == len(set(IMAGENET_1K_CLASSES)) == 1000
    assert (IMAGENET_1K_CLASSES[0], IMAGENET_1K_CLASSES[281], IMAGENET_1K_CLASSES[999]) == (
        "tench", "tabby", "toilet tissue")


def test_preprocessing_follows_pretrained_cfg(tmp_path):
    from PIL import Image

    from lkconv.engine.predict_pretrained import pretrained_transform

    # 384 wide, 256 high: the shorter side is already 256 (= 224 / 0.875), so the transform is the centre crop alone
    yy, xx = np.mgrid[0:256, 0:384]
    rgb = np.stack([xx // 2, yy, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ramp.png")
    cfg = resolve_cfg("unireplknet_a.in1k")
    x = pretrained_transform(tmp_path / "ramp.png", cfg)
    assert x.shape == (3, 224, 224)
    mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
    corner = torch.tensor([80 // 2, 16, 128]) / 255.0  # crop starts at column (384-224)/2 = 80, row (256-224)/2 = 16
    torch.testing.assert_close(x[:, 0, 0], (corner - mean) / std)
    far = torch.tensor([(80 + 223) // 2, 16 + 223, 128]) / 255.0
    torch.testing.assert_close(x[:, -1, -1], (far - mean) / std)
    # squash (the 384 tags): the whole picture, aspect not kept: left red, right blue stay apart
    halves = np.zeros((100, 200, 3), np.uint8)
    halves[:, :100, 0] = 255
    halves[:, 100:, 2] = 255
    Image.fromarray(halves).save(tmp_path / "halves.png")
    sq = pretrained_transform(tmp_path / "halves.png", resolve_cfg("unireplknet_s.in22k_ft_in1k_384"))
    assert sq.shape == (3, 384, 384)
    red, blue = (torch.tensor([1.0, 0, 0]) - mean) / std, (torch.tensor([0, 0, 1.0]) - mean) / std
    torch.testing.assert_close(sq[:, 192, 10], red, atol=1e-6, rtol=0)
    torch.testing.assert_close(sq[:, 192, 373], blue, atol=1e-6, rtol=0)


def test_predict_prints_the_top5_imagenet_names(offline_hub, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", "--model", "unireplknet_a.in1k", str(tmp_path / "a.png")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(tmp_path / "a.png") + "\t")
    names = [IMAGENET_1K_CLASSES[c] for c in TOP5]
    assert line.split("\t")[1].startswith(f"{names[0]} 0.")
    assert [part.rsplit(" ", 1)[0] for part in line.split("\t")[1].split("  ")] == names
    # a local file instead of the hub; an unreadable file is named after the others
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    standin_file = next(offline_hub.rglob(A_FILE))
    assert main(["predict", "--model", "unireplknet_a.in1k", "--pretrained-file", str(standin_file), "--top-k", "2",
                 str(tmp_path / "a.png"), str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out.strip().split("\t")[1].split("  ")[1].startswith(names[1])
    assert "cannot read" in out.err and "bad.png" in out.err


def test_predict_without_the_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert main(["predict", "--model", "unireplknet_t.in1k", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lkconv predict: error:" in err and "pip install 'lkconv[hub]'" in err and "--pretrained-file" in err


def test_list_models_pretrained_cli(capsys):
    assert main(["list-models", "--pretrained", "unireplknet_t*"]) == 0
    out = capsys.readouterr().out
    assert "unireplknet_t.in1k" in out and "83.21" in out and "224px" in out
    assert "DingXiaoH/UniRepLKNet/unireplknet_t_in1k_224_acc83.21.pth" in out


def test_shape_bias_of_a_tag_needs_no_checkpoint(offline_hub, tmp_path, capsys):
    """The stand-in head votes "cat" whatever the image: cat shapes count for shape, cat textures for texture."""
    from PIL import Image

    for n, (shape, texture) in enumerate([("cat", "elephant"), ("elephant", "cat"), ("dog", "cat")], start=1):
        (tmp_path / shape).mkdir(exist_ok=True)
        Image.new("RGB", (12, 12), (n * 40, 90, 30)).save(tmp_path / shape / f"{shape}{n}-{texture}{n + 1}.png")
    assert main(["shape-bias", "--model", "unireplknet_a.in1k", "--data", str(tmp_path), "--img-size", "32"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["shape_decisions"], result["texture_decisions"]) == (1, 2)
    assert result["shape_bias"] == pytest.approx(1 / 3)
    assert main(["shape-bias", "--model", "unireplknet_a", "--data", str(tmp_path)]) == 2
    assert "give --checkpoint FILE, or a tag of published weights" in capsys.readouterr().err


def test_erf_and_filters_take_a_tag_as_published_weights(offline_hub, standin):
    from lkconv.cli import _analysis_model

    label, model, _, in_chans = _analysis_model("unireplknet_a.in1k", None, None)
    assert (label, in_chans) == ("unireplknet_a.in1k", 3)
    assert all(torch.equal(v, standin[k]) for k, v in model.state_dict().items())


def test_export_of_a_tag_carries_the_published_weights(tmp_path, standin, reference):
    """``lkconv export --model TAG --pretrained-file F``: the file's weights (not random ones) and its preprocessing
    in the metadata; the ONNX graph gives the reference's outputs."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import json

    import numpy as np
    import onnxruntime as ort

    from lkconv.cli import main
    from lkconv.deploy.export import read_onnx_metadata

    path = tmp_path / A_FILE
    torch.save(standin, path)
    out = tmp_path / "a.onnx"
    assert main(["export", "--model", "unireplknet_a.in1k", "--pretrained-file", str(path), "--img-size", "64",
                 "--out", str(out)]) == 0
    meta = read_onnx_metadata(out)
    cfg = json.loads(meta["pretrained_cfg"])
    assert cfg["tag"] == "unireplknet_a.in1k" and cfg["file"] == str(path) and cfg["mean"] == [0.485, 0.456, 0.406]
    x = x_in(side=64)
    got = ort.InferenceSession(str(out)).run(None, {ort.InferenceSession(str(out)).get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = reference(x).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
