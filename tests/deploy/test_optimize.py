"""optimize_for_inference equals the original; bf16 agrees on top-1 on real images."""

from pathlib import Path

import pytest
import torch

import lkconv
from lkconv.deploy import optimize_for_inference
from lkconv.deploy.optimize import FastUniRepLKNetBlock, _auto_micro_batch
from lkconv.layers.planned_dwconv import PlannedDepthwiseConv2d
from lkconv.ops.fused import PW1_PATHS, PW2_PATHS


@pytest.fixture(autouse=True)
def _plan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("variant", ["a", "p", "t"])
def test_fp32_equals_original(variant, randomize):
    model = lkconv.create_model(f"unireplknet_{variant}", num_classes=10).eval()
    randomize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x)
    assert _rel(fast(x), ref) < 1e-4
    assert fast(x).dtype == torch.float32
    net = fast.net
    assert all(isinstance(b, FastUniRepLKNetBlock) for s in net.stages for b in s)
    assert any(isinstance(m, PlannedDepthwiseConv2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    # the original is untouched and a different batch size works
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        assert _rel(fast(x[:1]), model(x[:1])) < 1e-4


@pytest.mark.parametrize("pw1", PW1_PATHS)
@pytest.mark.parametrize("pw2", PW2_PATHS)
def test_every_pointwise_path_equals_original(pw1, pw2, randomize):
    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    randomize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x, micro_batch=None, choose_pointwise=False)
    blocks = [b for b in fast.net.modules() if isinstance(b, FastUniRepLKNetBlock)]
    assert {(b.pw1_path, b.pw2_path) for b in blocks} == {("conv_gelu", "conv_add")}  # not measured: the default
    for b in blocks:
        b.pw1_path, b.pw2_path = pw1, pw2
    assert _rel(fast(x), ref) < 1e-4


def test_pointwise_paths_are_measured_per_block(monkeypatch):
    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    from lkconv.deploy import fast_unireplknet as opt_mod

    measured = []

    def fake_measure(fns, reps):  # deterministic: the last candidate is "fastest"
        measured.append(tuple(fns))
        return {name: float(len(fns) - i) for i, name in enumerate(fns)}

    monkeypatch.setattr(opt_mod, "_measure", fake_measure)
    monkeypatch.setattr(opt_mod, "_POINTWISE_CHOICES", {})
    fast = optimize_for_inference(model, x, micro_batch=None)
    blocks = [b for b in fast.net.modules() if isinstance(b, FastUniRepLKNetBlock)]
    # one measurement per distinct block shape (A: 4 stages of identical blocks), shared by the blocks of a stage
    assert measured.count(PW1_PATHS) == measured.count(PW2_PATHS) == len(fast.net.stages) < len(blocks)
    assert all(b.pw1_path == PW1_PATHS[-1] and b.pw2_path == PW2_PATHS[-1] and not b.calibrate for b in blocks)
    assert "pw1=linear, pw2=linear" in repr(blocks[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_micro_batches_equal_whole_batches(dtype, randomize):
    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    randomize(model)
    x = torch.randn(5, 3, 64, 64)
    whole = optimize_for_inference(model, x, dtype=dtype, micro_batch=None)
    sliced = optimize_for_inference(model, x, dtype=dtype, micro_batch=2)  # slices of 2, 2 and 1
    assert whole.micro_batch is None and sliced.micro_batch == 2
    # the same arithmetic per sample; oneDNN may block a GEMM differently for another row count
    assert _rel(sliced(x), whole(x)) < (1e-5 if dtype == torch.float32 else 2e-2)
    with torch.no_grad():
        assert _rel(sliced(x), model(x)) < (1e-4 if dtype == torch.float32 else 5e-2)
    # A at 224: the first stage's FFN holds 4 x 40 x 56 x 56 elements per sample -> 8 samples per 4M elements
    assert _auto_micro_batch(model, torch.randn(16, 3, 224, 224)) == 8
    assert _auto_micro_batch(model, torch.randn(16, 3, 64, 64)) == 102  # 4M // (4 x 40 x 16 x 16)
    with pytest.raises(ValueError, match="micro_batch"):
        optimize_for_inference(model, x, micro_batch=0)


def test_works_on_a_run_model_and_other_families(randomize):
    from lkconv.modalities.base import PerceptionModel
    from lkconv.modalities.image import ImageAdapter

    model = PerceptionModel(ImageAdapter(1), lkconv.create_model("unireplknet_a", num_classes=4, in_chans=1)).eval()
    randomize(model)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ref = model(x)
    assert _rel(optimize_for_inference(model, x)(x), ref) < 1e-4


def test_compiled_equals_original_with_one_graph_per_shape(randomize):
    """compile=True: same outputs; normal and inference-mode inputs share one graph (dynamo guards on dispatch keys)."""
    import torch._dynamo.utils

    model = lkconv.create_model("unireplknet_a", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                kernel_sizes=((3,), (13,), (13,), (7,)), num_classes=5).eval()
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x, compile=True)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        x_inference = x.clone()
        assert _rel(fast(x_inference), ref) < 1e-4
    assert _rel(fast(x), ref) < 1e-4
    assert _rel(fast(x.contiguous(memory_format=torch.channels_last)), ref) < 1e-4
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # the warm-up's graph serves all three


def test_bad_dtype():
    with pytest.raises(ValueError, match="bfloat16"):
        optimize_for_inference(lkconv.create_model("unireplknet_a"), torch.randn(1, 3, 32, 32), dtype=torch.float16)


FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FMNIST.exists(), reason="Fashion-MNIST not installed (make data)")
def test_bf16_top1_agreement_on_real_images(tmp_path):
    """bf16 tolerance: outputs within 5e-2 of the logit range; top-1 agreement >= 99% on 1000 test images."""
    from lkconv.engine.trainer import train

    run = train({"data": "builtin:fashion-mnist", "out": str(tmp_path / "run"), "model": "unireplknet_a",
                 "model_args": {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128],
                                "kernel_sizes": [[3], [13], [13, 3], [13]]},
                 "epochs": 1, "batch_size": 64, "lr": 3e-3, "img_size": 32, "max_train_samples": 1500,
                 "max_val_samples": 1000, "progress": False})
    model = lkconv.load_run(run)
    from lkconv.modalities import build_data
    from lkconv.engine.evaluate import run_train_config

    val = build_data(run_train_config(run)).val
    x = torch.stack([val[i][0] for i in range(len(val))])
    with torch.no_grad():
        ref = model(x)
    out = optimize_for_inference(model, x[:64], dtype=torch.bfloat16)(x)
    agree = (out.argmax(-1) == ref.argmax(-1)).float().mean().item()
    assert agree >= 0.99, agree
    assert (out - ref).abs().max().item() < 5e-2 * (ref.max() - ref.min()).item()
