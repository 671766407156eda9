"""The deploy path off the CPU: no C kernel and no oneDNN op ever sees a non-CPU tensor, depthwise plans are keyed
and chosen per device, and ``optimize_for_inference`` on a non-CPU model keeps its device and layout.

Without a GPU the dispatch decisions are checked on PyTorch's ``meta`` device: a real non-CPU device whose tensors
hold no data, so any C kernel given such a pointer would be a bug this test catches (the kernel entry points are
replaced by ones that fail). The runs on a real GPU are marked ``cuda`` and skip here.
"""

import dataclasses

import pytest
import torch

import lkconv
from lkconv.deploy import optimize_for_inference
from lkconv.deploy.optimize import FastUniRepLKNetBlock
from lkconv.ops import fused
from lkconv.ops.dwconv import planner
from lkconv.ops.dwconv.backends import run_direct
from lkconv.ops.dwconv.spec import make_spec

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [13], [7], [7]]}
META = torch.device("meta")


@pytest.fixture(autouse=True)
def _plan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_cpu_kernels(monkeypatch):
    """Any call into the C kernels or oneDNN's fused op fails the test."""

    def refuse(*a, **k):
        pytest.fail("a CPU-only kernel was dispatched for a non-CPU tensor")

    monkeypatch.setattr(fused.native, "load", refuse)
    monkeypatch.setattr(fused, "_onednn_pointwise", refuse)


def _cl(*shape, device=META):
    return torch.empty(*shape, device=device).contiguous(memory_format=torch.channels_last)


def test_fused_ops_fall_back_to_torch_off_the_cpu(no_cpu_kernels):
    y, gamma = _cl(2, 8, 5, 5), torch.empty(8, device=META)
    assert fused.gelu_grn(y, gamma).device == META
    assert fused.gelu_grn(y, gamma, gamma, gelu_done=True).shape == y.shape
    down_w, up_w = torch.empty(2, 8, 1, 1, device=META), torch.empty(8, 2, 1, 1, device=META)
    assert fused.se_gate(y, down_w, None, up_w, None).shape == y.shape
    assert fused.layer_norm_channels(y, gamma, gamma, 1e-6, gelu=True).shape == y.shape
    w = torch.empty(16, 8, 1, 1, device=META)
    for path in fused.PW1_PATHS:
        out, gelu_done = fused.pointwise_gelu(y, w, None, path)
        assert out.shape == (2, 16, 5, 5) and gelu_done is False  # the caller applies GELU (its torch formula)
    z, w2 = _cl(2, 16, 5, 5), torch.empty(8, 16, 1, 1, device=META)
    for path in fused.PW2_PATHS:
        assert fused.pointwise_add(z, w2, None, y, path).shape == y.shape
    assert fused.conv1x1_gelu(y, w, None)[1] is False
    assert fused.conv1x1_add(z, w2, None, y).device == META


def test_the_guards_are_what_the_cpu_uses():
    """Same shapes on the CPU do take the kernel paths (where this machine has them): the guard is the device."""
    y = _cl(2, 8, 5, 5, device="cpu")
    assert fused._kernel_applies(y) and fused._onednn_applies(y)
    assert not fused._kernel_applies(y.to(META)) and not fused._onednn_applies(y.to(META))


def _fast_block():
    model = lkconv.create_model("unireplknet_a", num_classes=4, **TINY).eval()
    lkconv.models.reparameterize_model(model)
    return model.stages[1][0].inference_form()


def test_fast_block_runs_the_torch_formula_off_the_cpu(no_cpu_kernels):
    block = _fast_block()
    assert isinstance(block, FastUniRepLKNetBlock)
    block = block.to(META)
    out = block(_cl(2, 16, 8, 8))
    assert out.device == META and out.shape == (2, 16, 8, 8)


def test_fast_block_matches_its_formula_on_cpu_without_kernels(monkeypatch):
    """The fallback the GPU takes is the same function as the kernels (checked on the CPU, kernels switched off)."""
    block = _fast_block()
    x = _cl(2, 16, 8, 8, device="cpu").normal_()
    with torch.no_grad():
        want = block(x.clone())
        monkeypatch.setattr(fused, "_kernel_applies", lambda t: False)
        monkeypatch.setattr(fused, "_onednn_applies", lambda t: False)
        got = block(x.clone())
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5


# --- depthwise plans --------------------------------------------------------------------------------------------
def _spec(device):
    x = torch.empty(2, 16, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.empty(16, 1, 31, 31, device=device)
    with torch.no_grad():
        return make_spec(x, w, None, "same", 1, None)


def test_plan_keys_carry_the_device():
    cpu, meta = _spec("cpu"), _spec(META)
    assert cpu.device == "cpu" and "|cpu" not in cpu.key()  # existing CPU plan caches stay valid
    assert meta.key() == cpu.key() + "|meta"
    assert dataclasses.replace(cpu, device="cuda").key().endswith("|cuda")


def test_cuda_candidates_are_cudnn_layouts_and_fft():
    s = dataclasses.replace(_spec("cpu"), device="cuda")
    cands = planner._candidates(s, torch.device("cuda", 0))
    assert set(cands) == {"nchw", "nhwc", "fft"}  # 31x31 on 28x28: FFT is a candidate; no C kernel
    assert cands[0] == "nhwc"  # the input's layout first: cuDNN runs it without a conversion
    assert planner.heuristic(dataclasses.replace(s, in_fmt="nchw"), ["nchw", "nhwc"]) == "nchw"
    assert not planner._nchw_is_slow_path(s)  # the CPU probe is not run for a GPU shape


def test_direct_kernel_refuses_non_cpu_tensors():
    s = _spec(META)
    with pytest.raises(ValueError, match="CPU tensors only"):
        run_direct(torch.empty(2, 16, 28, 28, device=META), torch.empty(16, 1, 31, 31, device=META), None, s,
                   "direct:cols14")


# --- optimize_for_inference off the CPU ---------------------------------------------------------------------------
def test_optimize_off_the_cpu_keeps_device_and_layout_and_skips_cpu_measures(no_cpu_kernels):
    model = lkconv.create_model("unireplknet_a", num_classes=4, **TINY).eval().to(META)
    fast = optimize_for_inference(model, torch.empty(2, 3, 64, 64, device=META))
    assert fast.device == META and fast.micro_batch is None
    assert all(p.device == META for p in fast.parameters())
    blocks = [m for m in fast.net.modules() if isinstance(m, FastUniRepLKNetBlock)]
    assert blocks and all((b.pw1_path, b.pw2_path) == ("conv_gelu", "conv_add") for b in blocks)  # not measured
    out = fast(torch.empty(3, 3, 64, 64))  # a CPU input is moved to the model's device
    assert out.device == META and out.shape == (3, 4) and out.dtype == torch.float32


def test_fp16_is_for_gpu_models_only():
    model = lkconv.create_model("unireplknet_a", num_classes=4, **TINY).eval()
    with pytest.raises(ValueError, match="for a cpu model"):
        optimize_for_inference(model, torch.randn(1, 3, 64, 64), dtype=torch.float16)


# --- on a GPU (skipped here) --------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _rel(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@pytest.mark.cuda
@cuda
def test_optimize_on_cuda_equals_eager(randomize):
    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    randomize(model)
    model = model.cuda()
    x = torch.randn(4, 3, 64, 64, device="cuda")
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x)
    assert _rel(fast(x), ref) < 1e-4 and fast(x).device.type == "cuda"
    for dtype in (torch.float16, torch.bfloat16):
        low = optimize_for_inference(model, x, dtype=dtype)(x)
        assert torch.isfinite(low).all() and _rel(low, ref) < 5e-2
