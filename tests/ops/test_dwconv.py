"""Tests for lkconv.ops.dwconv (planned depthwise convolution), lkconv.ops.plans (plan cache) and
lkconv.layers.planned_dwconv (the module)."""

from __future__ import annotations

import json
import os
import warnings
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lkconv.layers.planned_dwconv import PlannedDepthwiseConv2d
from lkconv.ops import dwconv, native, plans
from lkconv.ops.dwconv import (
    ALGORITHMS,
    DwConvShape,
    depthwise_conv2d,
    plan_for,
    planner,
    timing,
    tune,
    useful_macs,
)

CL = torch.channels_last


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory, heuristic plans (tests that measure turn autotuning on), a fresh plan
    memo and one torch thread (a 2-thread OpenMP region stalls whenever a busy CI machine preempts one of its threads;
    test_direct_multithreaded covers the threaded paths)."""
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LKCONV_AUTOTUNE", "0")
    plans.set_autotune(None)
    planner.clear_memo()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plans.set_autotune(None)
    planner.clear_memo()


def _close(out: torch.Tensor, ref: torch.Tensor, rtol: float) -> None:
    """Assert |out - ref| <= rtol * max|ref| elementwise (tolerance relative to the output's scale)."""
    assert out.shape == ref.shape
    scale = ref.abs().max().item()
    err = (out.float() - ref.float()).abs().max().item()
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol} * {scale:.3g}"


def _conv(x, w, b, padding, dilation):
    return F.conv2d(x, w, b, 1, padding, dilation, x.shape[1])


# (shape, kernel, dilation, padding): odd/even/non-square kernels, dilation, asymmetric 'same', kernel > map
CASES = [
    ((2, 40, 13, 11), (7, 7), 1, 3),
    ((1, 17, 7, 7), (31, 31), 1, 15),
    ((3, 33, 20, 9), (5, 5), 2, "same"),
    ((2, 16, 6, 30), (4, 6), 1, "same"),
    ((1, 5, 9, 9), (3, 3), 1, 0),
    ((19, 20, 5, 6), (3, 1), 1, (1, 0)),
    ((2, 24, 12, 12), (13, 13), 1, "same"),
    ((2, 8, 10, 10), (3, 5), (2, 1), "valid"),
]


@pytest.mark.parametrize("algo", [*ALGORITHMS, "direct", None])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}-d{c[2]}-p{c[3]}")
def test_matches_conv2d_fp32(algo, case):
    shape, (kh, kw), dilation, padding = case
    if algo is not None and algo.startswith("direct") and not dwconv.direct_available():
        pytest.skip("C kernel unavailable")
    gen = torch.Generator().manual_seed(hash(case) % 1000)
    x = torch.randn(*shape, generator=gen)
    w = torch.randn(shape[1], 1, kh, kw, generator=gen)
    b = torch.randn(shape[1], generator=gen)
    for bias in (b, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on even-kernel 'same' padding
            ref = _conv(x, w, bias, padding, dilation)
        for xin in (x, x.contiguous(memory_format=CL)):
            fmt = CL if xin is not x else torch.contiguous_format
            for _ in range(2):  # the second call takes the memoised fast path
                with torch.no_grad():
                    out = depthwise_conv2d(xin, w, bias, padding, dilation, algo=algo)
                _close(out, ref, dwconv.FP32_RTOL)
                assert out.is_contiguous(memory_format=fmt), "output must keep the input's memory format"


@pytest.mark.parametrize("threads", [2, 3])
def test_direct_multithreaded(threads):
    if not dwconv.direct_available():
        pytest.skip("C kernel unavailable")
    torch.set_num_threads(threads)  # restored by the fixture
    gen = torch.Generator().manual_seed(threads)
    # one image (row chunks split across threads), channel tails, several images per batch block
    for shape, k in (((1, 20, 17, 9), 7), ((5, 40, 7, 7), 13), ((2, 16, 30, 30), 31)):
        x = torch.randn(*shape, generator=gen)
        w = torch.randn(shape[1], 1, k, k, generator=gen)
        ref = _conv(x, w, None, k // 2, 1)
        for algo in dwconv.DIRECT_VARIANTS:
            for xin in (x, x.contiguous(memory_format=CL)):
                _close(depthwise_conv2d(xin, w, None, k // 2, algo=algo), ref, dwconv.FP32_RTOL)


@pytest.mark.parametrize("algo", ["nchw", "nhwc", "fft", "direct:cols14", "direct:batch8"])
def test_matches_conv2d_bf16(algo):
    if algo.startswith("direct") and not dwconv.direct_available():
        pytest.skip("C kernel unavailable")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 24, 14, 14, generator=gen)
    w = torch.randn(24, 1, 13, 13, generator=gen) / 13
    b = torch.randn(24, generator=gen)
    ref = _conv(x, w, b, 6, 1)
    for xin in (x, x.contiguous(memory_format=CL)):
        for _ in range(2):
            out = depthwise_conv2d(xin.bfloat16(), w.bfloat16(), b.bfloat16(), 6, algo=algo)
            assert out.dtype == torch.bfloat16
            _close(out, ref, dwconv.BF16_RTOL)


@pytest.mark.parametrize("case", CASES + [((3, 70, 29, 31), (7, 7), 1, 3), ((2, 48, 5, 40), (2, 2), 1, (0, 1))],
                         ids=lambda c: f"{c[0]}-k{c[1]}-d{c[2]}-p{c[3]}")
def test_bf16_dot_path_equals_fp32_path(case):
    """bf16 channels_last: the AVX512-BF16 pair-of-taps path against the fp32-accumulating path and F.conv2d."""
    from lkconv.ops import native

    lib = native.load()
    if lib is None or not lib.lk_has_bf16dot():
        pytest.skip("no AVX512-BF16 path in this build")
    shape, (kh, kw), dilation, padding = case
    # a seed fixed across processes (hash() of a case holding "same" changed with PYTHONHASHSEED)
    gen = torch.Generator().manual_seed(zlib.crc32(repr(case).encode()) % 1000)
    x = torch.randn(*shape, generator=gen).bfloat16().contiguous(memory_format=CL)
    w = (torch.randn(shape[1], 1, kh, kw, generator=gen) / kh).bfloat16()
    b = torch.randn(shape[1], generator=gen).bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = _conv(x.float(), w.float(), b.float(), padding, dilation)  # fp32 on the same bf16 values
        # sum of the terms' magnitudes: bounds how far two fp32 summation orders can drift apart
        mag = _conv(x.float().abs(), w.float().abs(), b.float().abs(), padding, dilation)
    outs = {}
    try:
        for on in (1, 0):
            lib.lk_set_bf16dot(on)
            outs[on] = depthwise_conv2d(x, w, b, padding, dilation, algo="direct:cols14")
    finally:
        lib.lk_set_bf16dot(1)
    for out in outs.values():
        assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=CL)
        _close(out, ref, dwconv.BF16_RTOL)
    # both accumulate exact products in fp32 (in different orders: at most (taps + 1) * 2^-24 * mag apart) and round
    # once to bf16 (half a step each): one bf16 step apart, plus the ordering drift where the terms cancel
    a, c = outs[1].float(), outs[0].float()
    drift = (kh * kw + 1) * 2.0**-24 * mag
    assert ((a - c).abs() <= 2.0**-7 * torch.maximum(a.abs(), c.abs()) + drift + 1e-30).all()


@pytest.mark.parametrize("algo", ["nchw", "nhwc", "fft", "direct:cols7"])
@pytest.mark.parametrize("out_format", ["nchw", "nhwc", "any"])
def test_out_format(algo, out_format):
    if algo.startswith("direct") and not dwconv.direct_available():
        pytest.skip("C kernel unavailable")
    x = torch.randn(2, 20, 9, 9).contiguous(memory_format=CL)
    w = torch.randn(20, 1, 7, 7)
    out = depthwise_conv2d(x, w, None, 3, algo=algo, out_format=out_format)
    _close(out, _conv(x, w, None, 3, 1), dwconv.FP32_RTOL)
    if out_format == "nchw":
        assert out.is_contiguous()
    elif out_format == "nhwc":
        assert out.is_contiguous(memory_format=CL)


def test_strided_input_and_autograd():
    x = torch.randn(2, 16, 12, 20)[..., ::2].requires_grad_()  # neither NCHW- nor channels_last-contiguous
    w = torch.randn(16, 1, 5, 5, requires_grad=True)
    out = depthwise_conv2d(x, w, None, 2)
    ref = _conv(x, w, None, 2, 1)
    _close(out, ref, dwconv.FP32_RTOL)
    g = torch.randn_like(ref)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    rx, rw = torch.autograd.grad(ref, (x, w), g)
    _close(gx, rx, 1e-5)
    _close(gw, rw, 1e-5)
    with pytest.raises(ValueError, match="no backward"):
        depthwise_conv2d(x, w, None, 2, algo="direct")


def test_input_validation():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        depthwise_conv2d(x.numpy(), w)
    with pytest.raises(ValueError, match="4-D"):
        depthwise_conv2d(x[0], w)
    with pytest.raises(ValueError, match="depthwise"):
        depthwise_conv2d(x, torch.randn(4, 2, 3, 3))
    with pytest.raises(TypeError, match="dtype"):
        depthwise_conv2d(x, w.double())
    with pytest.raises(ValueError, match="bias"):
        depthwise_conv2d(x, w, torch.randn(3))
    with pytest.raises(ValueError, match="padding"):
        depthwise_conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="padding"):
        depthwise_conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="dilation"):
        depthwise_conv2d(x, w, dilation=0)
    with pytest.raises(ValueError, match="algo"):
        depthwise_conv2d(x, w, algo="winograd")
    with pytest.raises(ValueError, match="out_format"):
        depthwise_conv2d(x, w, out_format="nhcw")
    with pytest.raises(ValueError, match="empty"):
        depthwise_conv2d(x, torch.randn(4, 1, 11, 11), padding=0)


def test_useful_macs_matches_brute_force():
    h, w, kh, kw, pad = 5, 7, 9, 4, (4, 1)
    x = torch.ones(1, 1, h, w)
    # with an all-ones input and kernel every output counts the taps that hit real pixels
    expected = int(F.conv2d(x, torch.ones(1, 1, kh, kw), padding=pad).sum().item())
    assert useful_macs(1, 1, h, w, (kh, kw), 1, pad) == expected
    assert useful_macs(2, 3, 56, 56, 3, 1, 1) == 2 * 3 * (56 * 3 - 2) ** 2


# ------------------------------------------------------------------------------------------------------ plans / cache


def _plan_file() -> str:
    return os.path.join(os.environ["LKCONV_CACHE_DIR"], plans.CACHE_FILENAME)


def test_tune_persists_and_round_trips():
    result = tune([(2, 16, 8, 8, 7), DwConvShape(1, 8, 6, 6, 5, padding=2)], reps=1)
    assert len(result) == 2 and set(result.values()) <= set(ALGORITHMS)
    with open(_plan_file(), encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["format"] == plans.CACHE_FORMAT and data["version"] == plans.CACHE_VERSION
    mine = data["machines"][plans.machine_key()]
    for key, algo in result.items():
        assert mine[key]["algo"] == algo and mine[key]["source"] == "measured"
    fresh = plans.PlanCache(_plan_file())
    assert {k: fresh.get(k)["algo"] for k in result} == result
    # the plan is used without re-measuring
    planner.clear_memo()
    x, w = torch.randn(2, 16, 8, 8), torch.randn(16, 1, 7, 7)
    key = next(k for k in result if "|n2|" in k)
    assert plan_for(x, w, None, "same", autotune=False) == result[key]


def test_plans_of_another_machine_are_not_trusted():
    cache = plans.PlanCache(_plan_file(), machine="other-cpu|torch=0.0")
    cache.put("k", {"algo": "nchw"})
    mine = plans.PlanCache(_plan_file())
    assert mine.get("k") is None
    mine.put("k2", {"algo": "nhwc"})
    with open(_plan_file(), encoding="utf-8") as fh:
        machines = json.load(fh)["machines"]
    assert machines["other-cpu|torch=0.0"] == {"k": {"algo": "nchw"}}  # kept, not overwritten
    assert machines[plans.machine_key()]["k2"]["algo"] == "nhwc"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": plans.CACHE_FORMAT, "version": plans.CACHE_VERSION + 1, "machines": {}}),
        json.dumps({"format": "something-else", "version": 1}),
        json.dumps({"format": plans.CACHE_FORMAT, "version": plans.CACHE_VERSION, "machines": []}),
        json.dumps([1, 2, 3]),
    ],
    ids=["corrupt", "newer-version", "foreign-format", "malformed", "not-a-dict"],
)
def test_bad_cache_file_is_ignored_and_rebuilt(content):
    os.makedirs(os.environ["LKCONV_CACHE_DIR"])
    with open(_plan_file(), "w", encoding="utf-8") as fh:
        fh.write(content)
    cache = plans.PlanCache(_plan_file())
    with pytest.warns(UserWarning, match="plan cache"):
        assert cache.get("anything") is None
    with pytest.warns(UserWarning, match="plan cache"):  # save re-reads the bad file before replacing it
        cache.put("k", {"algo": "nchw"})
    with open(_plan_file(), encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["version"] == plans.CACHE_VERSION
    assert data["machines"][plans.machine_key()]["k"]["algo"] == "nchw"


def test_first_use_with_corrupt_cache_does_not_crash():
    os.makedirs(os.environ["LKCONV_CACHE_DIR"])
    with open(_plan_file(), "w", encoding="utf-8") as fh:
        fh.write("\x00garbage")
    x, w = torch.randn(1, 8, 6, 6), torch.randn(8, 1, 3, 3)
    with pytest.warns(UserWarning, match="corrupt"):
        out = depthwise_conv2d(x, w, None, 1)
    _close(out, _conv(x, w, None, 1, 1), dwconv.FP32_RTOL)


def test_save_is_atomic(monkeypatch):
    cache = plans.PlanCache(_plan_file())
    cache.put("a", {"algo": "nchw"})
    with open(_plan_file(), encoding="utf-8") as fh:
        before = fh.read()
    replaced = []
    real_replace = os.replace

    def failing_replace(src, dst):
        replaced.append((src, dst))
        raise OSError("disk full")

    monkeypatch.setattr(plans.os, "replace", failing_replace)
    with pytest.warns(UserWarning, match="cannot write"):
        assert cache.put("b", {"algo": "nhwc"}) is None
    assert replaced and os.path.dirname(replaced[0][0]) == os.path.dirname(_plan_file())
    with open(_plan_file(), encoding="utf-8") as fh:
        assert fh.read() == before  # the old file is intact
    assert not [f for f in os.listdir(os.environ["LKCONV_CACHE_DIR"]) if f.endswith(".tmp")]  # no temp file left
    monkeypatch.setattr(plans.os, "replace", real_replace)
    assert cache.save()
    assert plans.PlanCache(_plan_file()).get("b") == {"algo": "nhwc"}


def test_heuristic_mode_times_nothing(monkeypatch):
    def no_timing(fn, calls=1, settle=False):
        raise AssertionError("heuristic mode must not time anything")

    monkeypatch.setattr(timing, "time_call", no_timing)
    x, w = torch.randn(2, 16, 7, 7), torch.randn(16, 1, 13, 13)
    assert os.environ["LKCONV_AUTOTUNE"] == "0"
    out = depthwise_conv2d(x, w, None, 6)
    _close(out, _conv(x, w, None, 6, 1), dwconv.FP32_RTOL)
    monkeypatch.delenv("LKCONV_AUTOTUNE")
    plans.set_autotune(False)
    planner.clear_memo()
    out = depthwise_conv2d(x.contiguous(memory_format=CL), w, None, 6)
    _close(out, _conv(x, w, None, 6, 1), dwconv.FP32_RTOL)
    assert not os.path.exists(_plan_file())  # heuristic choices are not persisted
    with pytest.raises(TypeError):
        plans.set_autotune("no")


def test_autotune_measures_once(monkeypatch):
    calls = []
    real = timing.time_call
    monkeypatch.setattr(timing, "time_call", lambda fn, n=1, settle=False: calls.append(1) or real(fn, n, settle))
    plans.set_autotune(True)
    x, w = torch.randn(1, 16, 8, 8), torch.randn(16, 1, 5, 5)
    depthwise_conv2d(x, w)
    assert calls, "first use must measure"
    n = len(calls)
    depthwise_conv2d(x, w)
    planner.clear_memo()
    depthwise_conv2d(x, w)  # from the cache file, not re-measured
    assert len(calls) == n
    with open(_plan_file(), encoding="utf-8") as fh:
        (entry,) = json.load(fh)["machines"][plans.machine_key()].values()
    assert entry["source"] == "measured" and entry["algo"] in entry["times_ms"]


@pytest.mark.parametrize("duel_direct_ms, expected", [(0.5, "direct:cols14"), (0.98, "nhwc")])
def test_direct_pick_is_confirmed_head_to_head(monkeypatch, duel_direct_ms, expected):
    if not dwconv.direct_available():
        pytest.skip("the direct kernel is unavailable (no C compiler)")
    seen = []

    def fake_measure(fns, reps, prune=4.0):
        seen.append((tuple(fns), reps))
        if len(seen) == 1:  # the first round: the direct kernel looks 2x faster than everything
            return {a: (0.5 if a == "direct:cols14" else 1.0 if a == "nhwc" else 3.0) for a in fns}
        return {"direct:cols14": duel_direct_ms, "nhwc": 1.0}  # the head-to-head decides

    monkeypatch.setattr(timing, "measure", fake_measure)
    plans.set_autotune(True)
    x, w = torch.randn(2, 16, 8, 8).contiguous(memory_format=CL), torch.randn(16, 1, 5, 5)
    assert dwconv.plan_for(x, w, None, 2) == expected
    assert len(seen) == 2 and set(seen[1][0]) == {"direct:cols14", "nhwc"} and seen[1][1] >= dwconv.CONFIRM_REPS
    with open(_plan_file(), encoding="utf-8") as fh:
        (entry,) = json.load(fh)["machines"][plans.machine_key()].values()
    assert entry["algo"] == expected and entry["confirm_ms"]["nhwc"] == 1.0


def test_near_ties_go_to_pytorch():
    assert planner.pick({"direct:cols7": 0.99, "nhwc": 1.0, "nchw": 3.0}) == "nhwc"
    assert planner.pick({"direct:cols7": 0.5, "nhwc": 1.0}) == "direct:cols7"
    assert planner.pick({"nchw": 2.0, "nhwc": 1.0}) == "nhwc"


def test_no_extension_falls_back(monkeypatch):
    monkeypatch.setenv("LKCONV_NO_EXT", "1")
    native._reset_for_tests()
    try:
        assert not dwconv.direct_available()
        x, w = torch.randn(2, 8, 7, 7), torch.randn(8, 1, 7, 7)
        algo = plan_for(x, w, None, 3)
        assert not algo.startswith("direct")
        with pytest.raises(RuntimeError, match="unavailable"):
            depthwise_conv2d(x, w, None, 3, algo="direct:cols7")
    finally:
        monkeypatch.delenv("LKCONV_NO_EXT")
        native._reset_for_tests()


def test_tune_validation():
    with pytest.raises(TypeError, match="shape"):
        tune(["bad"])
    with pytest.raises(ValueError, match="memory_format"):
        tune([(1, 8, 8, 8, 3)], memory_format="nwhc")
    with pytest.raises(ValueError, match="positive"):
        tune([(0, 8, 8, 8, 3)])


# ------------------------------------------------------------------------------------------------------ module


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel,dilation,padding", [(7, 1, 3), (13, 1, "same"), ((5, 3), 2, (4, 2))])
def test_from_conv_equals_conv(bias, kernel, dilation, padding):
    conv = nn.Conv2d(24, 24, kernel, padding=padding, dilation=dilation, groups=24, bias=bias)
    mod = PlannedDepthwiseConv2d.from_conv(conv)
    assert mod.weight is conv.weight and (mod.bias is conv.bias)
    assert mod.weight.dtype == conv.weight.dtype and mod.weight.device == conv.weight.device
    x = torch.randn(3, 24, 14, 14)
    with torch.no_grad():
        for xin in (x, x.contiguous(memory_format=CL)):
            _close(mod(xin), conv(xin), dwconv.FP32_RTOL)
        # the packed-weight cache notices in-place weight updates
        conv.weight.mul_(2)
        _close(mod(x), conv(x), dwconv.FP32_RTOL)
    assert set(mod.state_dict()) == set(conv.state_dict())


def test_from_conv_rejects_non_depthwise():
    with pytest.raises(TypeError):
        PlannedDepthwiseConv2d.from_conv(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="depthwise"):
        PlannedDepthwiseConv2d.from_conv(nn.Conv2d(8, 8, 3, groups=2))
    with pytest.raises(ValueError, match="stride"):
        PlannedDepthwiseConv2d.from_conv(nn.Conv2d(8, 8, 3, stride=2, groups=8))
    with pytest.raises(ValueError, match="padding_mode"):
        PlannedDepthwiseConv2d.from_conv(nn.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"))


def test_module_constructor_and_training_step():
    mod = PlannedDepthwiseConv2d(8, 5, dtype=torch.float32)
    x = torch.randn(2, 8, 9, 9)
    out = mod(x)  # grad enabled: differentiable algorithms only
    out.sum().backward()
    assert mod.weight.grad is not None and mod.bias.grad is not None
    _close(out.detach(), _conv(x, mod.weight.detach(), mod.bias.detach(), 2, 1), dwconv.FP32_RTOL)
    assert "kernel_size=(5, 5)" in repr(mod)
    with pytest.raises(ValueError, match="channels"):
        PlannedDepthwiseConv2d(0, 3)
