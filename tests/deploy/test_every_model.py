"""Every registered model, every UniRepLKNet mixer and run models (adapter + backbone) deploy without error and
without changing the answer: ``optimize_for_inference`` in fp32 equals eager (1e-4 of the largest logit), in bf16
agrees with eager fp32 on top-1; ONNX export agrees with onnxruntime; ``lkconv tune`` runs on every family.

Cost on 2 cores: each registered variant is built with its full depth and kernel structure but narrow widths
(``dims=NARROW``); one variant per family is also checked at its full widths.
"""

import pytest
import torch

import lkconv
from lkconv.deploy import optimize_for_inference
from lkconv.models.unireplknet import MIXERS

NARROW = (16, 32, 64, 128)
FULL_WIDTH = ("unireplknet_a", "replknet_31b", "inception_next_atto", "lsnet_t", "sgconvnet_tiny", "longconvnet_tiny")


@pytest.fixture(autouse=True)
def _plan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))


def _narrow_kwargs(name: str) -> dict:
    return {} if name.startswith(("sgconvnet", "longconvnet")) else {"dims": NARROW}


def _example(model: torch.nn.Module, batch: int = 4, side: int = 64) -> torch.Tensor:
    shape = tuple(model.default_input_size)
    return torch.randn(batch, shape[0], *([side] * (len(shape) - 1)))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _check_equal_and_bf16(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x)
    assert _rel(fast(x), ref) < 1e-4
    bf16 = optimize_for_inference(model, x, dtype=torch.bfloat16)(x)
    assert bf16.dtype == torch.float32
    assert torch.equal(bf16.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("name", lkconv.list_models())
def test_every_registered_model_narrow(name, randomize):
    model = lkconv.create_model(name, num_classes=10, **_narrow_kwargs(name))
    randomize(model)
    _check_equal_and_bf16(model, _example(model))


@pytest.mark.parametrize("name", FULL_WIDTH)
def test_one_per_family_at_full_width(name, randomize):
    model = lkconv.create_model(name, num_classes=10)
    randomize(model)
    _check_equal_and_bf16(model, _example(model, batch=2))


@pytest.mark.parametrize("mixer", MIXERS)
def test_every_unireplknet_mixer(mixer, randomize):
    """inception and lsconv keep the BatchNorm after the mixer in the deploy structure; the fast block applies it."""
    model = lkconv.create_model("unireplknet_a", num_classes=10, mixers=mixer)
    randomize(model)
    _check_equal_and_bf16(model, _example(model))
    from lkconv.deploy.optimize import FastUniRepLKNetBlock

    net = optimize_for_inference(model, _example(model, batch=1), plan_depthwise=False).net
    assert all(isinstance(b, FastUniRepLKNetBlock) for s in net.stages for b in s)


def test_inference_forms_fold_what_they_can(randomize):
    """InceptionNeXt's block form folds its BatchNorm and γ; the stem's and downsampling's BatchNorms fold too."""
    model = lkconv.create_model("inception_next_atto", num_classes=10, dims=NARROW)
    randomize(model)
    net = optimize_for_inference(model, _example(model, batch=1)).net
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert all(b.gamma is None for s in net.stages for b in s.blocks)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched


@pytest.mark.parametrize("adapter, backbone", [("image", "replknet_31b"), ("audio", "inception_next_atto"),
                                               ("image", "lsnet_t")])
def test_run_models(adapter, backbone, randomize):
    from lkconv.modalities import PerceptionModel, build_adapter

    kwargs = {"in_chans": 1} if adapter == "image" else {"num_mel_bins": 64, "target_frames": 64}
    a = build_adapter(adapter, **kwargs)
    model = PerceptionModel(a, lkconv.create_model(backbone, num_classes=5, in_chans=a.out_chans, dims=NARROW))
    randomize(model)
    raw = torch.randn(3, 1, 64, 64) if adapter == "image" else torch.randn(3, a.num_samples)
    _check_equal_and_bf16(model, raw)


@pytest.mark.parametrize("name", ["unireplknet_a_dcls", "replknet_31b", "inception_next_atto", "lsnet_t",
                                  "sgconvnet_tiny", "longconvnet_tiny"])
def test_onnx_export_every_family(name, tmp_path, randomize):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lkconv.deploy.export import check_onnx, export_onnx

    model = lkconv.create_model(name, num_classes=10, **_narrow_kwargs(name)).eval()
    randomize(model)
    path = export_onnx(model, _example(model, batch=2), tmp_path / "m.onnx")
    assert check_onnx(path, model, _example(model, batch=3)) < 1e-4


@pytest.mark.parametrize("name", ["unireplknet_a", "inception_next_atto", "lsnet_t", "sgconvnet_tiny"])
def test_tune_command_every_family(name, tmp_path, capsys):
    from lkconv.cli import main

    assert main(["tune", "--model", name, "--img-size", "64", "--num-classes", "3"]) == 0
    assert "tuned depthwise plans" in capsys.readouterr().out
    cache = tmp_path / "cache"
    if name != "sgconvnet_tiny":  # a sequence model has no 2-D depthwise convolution to plan
        assert any(cache.rglob("*")), "no plan written"
