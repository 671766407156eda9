import math

import numpy as np
import pytest
import torch

from lkconv.ops.fbank import feature_window, kaldi_fbank, mel_banks, mel_scale, num_frames

# Tolerance against kaldi-native-fbank (float32 C++): |log-mel difference| <= LOG_ATOL for every bin within
# NEAR_NATS of its frame's strongest bin. Deeper bins (a pure sine's far bins sit 20-40 nats down) are dominated by
# float32 rounding in both implementations, so there the linear power must agree within LIN_RTOL of the frame peak.
LOG_ATOL = 2e-3
NEAR_NATS = 15.0
LIN_RTOL = 1e-4


def _knf_fbank(x: np.ndarray, **kw) -> np.ndarray:
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = kw.get("sample_rate", 16000)
    opts.frame_opts.window_type = kw.get("window", "hanning")
    opts.frame_opts.snip_edges = kw.get("snip_edges", True)
    opts.frame_opts.preemph_coeff = kw.get("preemphasis", 0.97)
    opts.frame_opts.remove_dc_offset = kw.get("remove_dc_offset", True)
    opts.mel_opts.num_bins = kw.get("num_mel_bins", 128)
    opts.mel_opts.low_freq = kw.get("low_freq", 20.0)
    opts.mel_opts.high_freq = kw.get("high_freq", 0.0)
    opts.use_energy = kw.get("use_energy", False)
    opts.htk_compat = kw.get("htk_compat", True)
    opts.energy_floor = kw.get("energy_floor", 1.0)
    opts.raw_energy = kw.get("raw_energy", True)
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(float(opts.frame_opts.samp_freq), x.tolist())
    fb.input_finished()
    return np.stack([np.asarray(fb.get_frame(i)) for i in range(fb.num_frames_ready)])


def _assert_close_to_kaldi(ours: torch.Tensor, ref: np.ndarray) -> None:
    ours = ours.double().numpy()
    assert ours.shape == ref.shape
    peak = ref.max(axis=1, keepdims=True)
    near = ref > peak - NEAR_NATS
    assert near.mean() > 0.1
    np.testing.assert_array_less(np.abs(ours - ref)[near], LOG_ATOL)
    lin = np.abs(np.exp(ours) - np.exp(ref.astype(np.float64))) / np.exp(peak)
    np.testing.assert_array_less(lin, LIN_RTOL)


def _noise(n: int = 16000, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.float32)


def _sine(freq: float, n: int = 16000, sr: int = 16000, amp: float = 8000.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


@pytest.mark.parametrize("window", ["hanning", "povey", "hamming", "rectangular", "blackman"])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_matches_kaldi_native_fbank_noise_and_sine(window, snip_edges):
    for signal in (_noise(), _sine(1000.0, n=8000)):
        ref = _knf_fbank(signal, window=window, snip_edges=snip_edges)
        ours = kaldi_fbank(torch.from_numpy(signal), window=window, snip_edges=snip_edges)
        _assert_close_to_kaldi(ours, ref)


@pytest.mark.parametrize(
    "kw",
    [
        {"use_energy": True, "htk_compat": True, "energy_floor": 0.0},
        {"use_energy": True, "htk_compat": False, "energy_floor": 0.0, "raw_energy": False},
        {"sample_rate": 8000, "num_mel_bins": 23, "window": "povey"},
        {"num_mel_bins": 80, "low_freq": 64.0, "high_freq": -400.0},
        {"num_mel_bins": 40, "low_freq": 100.0, "high_freq": 7000.0, "preemphasis": 0.0, "remove_dc_offset": False},
        {"sample_rate": 44100, "snip_edges": False},
    ],
)
def test_matches_kaldi_native_fbank_options(kw):
    signal = _noise(12345, seed=1)
    ref = _knf_fbank(signal, **kw)
    _assert_close_to_kaldi(kaldi_fbank(torch.from_numpy(signal), **kw), ref)


@pytest.mark.parametrize("n", [100, 250, 401])
def test_matches_kaldi_native_fbank_short_signals_mirrored_edges(n):
    signal = _noise(n, seed=n)  # shorter than a window: Kaldi reflects repeatedly at both ends
    _assert_close_to_kaldi(
        kaldi_fbank(torch.from_numpy(signal), snip_edges=False), _knf_fbank(signal, snip_edges=False)
    )


@pytest.mark.parametrize("n", [0, 100, 399, 400, 401, 560, 16000, 16123])
def test_frame_count(n):
    x = torch.randn(n)
    assert kaldi_fbank(x).shape == (max(0, 1 + (n - 400) // 160) if n >= 400 else 0, 128)
    assert kaldi_fbank(x, snip_edges=False, num_mel_bins=23).shape == ((n + 80) // 160, 23)
    assert num_frames(n, 400, 160) == (1 + (n - 400) // 160 if n >= 400 else 0)


def test_sine_peaks_in_the_mel_bin_centred_on_its_frequency():
    sr, bins, low = 16000, 128, 20.0
    delta = (mel_scale(sr / 2) - mel_scale(low)) / (bins + 1)
    for k in (40, 80, 110):
        centre_mel = mel_scale(low) + (k + 1) * delta
        freq = 700.0 * math.expm1(centre_mel / 1127.0)
        feats = kaldi_fbank(torch.from_numpy(_sine(freq)), num_mel_bins=bins, low_freq=low)
        assert (feats.argmax(dim=-1) == k).all(), (k, freq)


def test_batched_equals_per_item_and_dtypes():
    x = torch.randn(2, 3, 4000, dtype=torch.float64) * 1000
    out = kaldi_fbank(x, num_mel_bins=40)
    assert out.shape == (2, 3, 23, 40) and out.dtype == torch.float64
    torch.testing.assert_close(out[1, 2], kaldi_fbank(x[1, 2], num_mel_bins=40))
    single = kaldi_fbank(x.float(), num_mel_bins=40)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), out, atol=2e-3, rtol=0)
    ints = kaldi_fbank((x[0, 0]).to(torch.int16), num_mel_bins=40)
    assert ints.dtype == torch.float32 and ints.shape == (23, 40)


def test_scaling_shifts_log_bins_and_energy_floor():
    x = torch.randn(3200, dtype=torch.float64)
    a, b = kaldi_fbank(x), kaldi_fbank(x * 10)
    near = a > a.amax(dim=-1, keepdim=True) - 10
    torch.testing.assert_close((b - a)[near], torch.full_like(a[near], 2 * math.log(10)), atol=1e-9, rtol=0)
    silent = kaldi_fbank(torch.zeros(1600), use_energy=True, energy_floor=2.0, htk_compat=True)
    torch.testing.assert_close(silent[:, -1], torch.full((silent.shape[0],), math.log(2.0)))
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(silent[:, :-1], torch.full_like(silent[:, :-1], math.log(eps)))
    first = kaldi_fbank(torch.zeros(1600) + 1.0, use_energy=True, energy_floor=0.0, htk_compat=False)
    assert first.shape[-1] == 129 and torch.allclose(first[:, 0], torch.full_like(first[:, 0], math.log(eps)))


def test_dither_uses_generator_and_subtract_mean():
    x = torch.zeros(4000)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    d1 = kaldi_fbank(x, dither=1.0, generator=g1)
    d2 = kaldi_fbank(x, dither=1.0, generator=g2)
    assert torch.equal(d1, d2) and d1.std() > 0
    centred = kaldi_fbank(torch.randn(4000), subtract_mean=True)
    torch.testing.assert_close(centred.mean(0), torch.zeros(128), atol=1e-5, rtol=0)
    linear = kaldi_fbank(torch.randn(4000), use_log_fbank=False)
    assert (linear >= 0).all()


def test_windows_and_mel_banks():
    torch.testing.assert_close(feature_window("hanning", 5), torch.tensor([0, 0.5, 1, 0.5, 0], dtype=torch.float64))
    torch.testing.assert_close(feature_window("povey", 7), feature_window("hanning", 7).pow(0.85))
    torch.testing.assert_close(feature_window("rectangular", 3), torch.ones(3, dtype=torch.float64))
    banks = mel_banks(128, 512, 16000, 20.0, 0.0)
    assert banks.shape == (128, 257) and (banks[:, -1] == 0).all() and banks.max() <= 1.0
    assert (banks.sum(1)[10:] > 0).all()  # the lowest filters can fall between FFT bins; the rest cannot
    with pytest.raises(ValueError, match="accepted: hanning"):
        kaldi_fbank(torch.randn(1000), window="kaiser")
    with pytest.raises(ValueError, match="need 0 <= low_freq < high"):
        kaldi_fbank(torch.randn(1000), low_freq=9000.0)
    with pytest.raises(ValueError, match="frame of >= 2 samples"):
        kaldi_fbank(torch.randn(1000), frame_length_ms=0.01)
