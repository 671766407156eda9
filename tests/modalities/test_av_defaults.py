"""The audio and video front-end options behind the automatic recipe's defaults (issue 19, avdefaults): a
recording-independent log-mel map, clip length and filterbank edge from the folder's headers, frame differences
for video, and the decoded-clip cache."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lkconv.data.readers.audio import write_wav
from lkconv.engine.config import TrainConfig
from lkconv.modalities.audio.adapter import AudioAdapter, floor_top_db, utterance_norm
from lkconv.modalities.audio.data import adapter_args_from
from lkconv.modalities.audio.folder_facts import audio_header, auto_clip_seconds, auto_high_freq, scan_audio_folder
from lkconv.modalities.video import data as video_data
from lkconv.modalities.video.adapter import VideoAdapter, motion_energy, with_temporal_diff


def _noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(round(seconds * sr)))).astype(np.float32)


# --- audio: the map --------------------------------------------------------------------------------------------

def test_top_db_floors_each_clip_below_its_own_peak():
    fb = torch.tensor([[[0.0, -30.0], [5.0, -1.0]], [[10.0, 9.0], [-20.0, 2.0]]])  # (B=2, T=2, F=2)
    out = floor_top_db(fb, 20.0)
    nats = 20.0 * math.log(10) / 10
    assert torch.allclose(out[0].min(), torch.tensor(5.0 - nats)) and torch.allclose(out[1].min(), torch.tensor(10 - nats))
    assert torch.equal(out[0, 1, 0], fb[0, 1, 0])  # the peak stays


def test_utterance_norm_removes_a_constant_channel_response_and_the_level():
    fb = torch.randn(2, 50, 8)
    response = torch.linspace(-3, 3, 8)  # a microphone's fixed response: a constant per bin in the log domain
    a, b = utterance_norm(fb), utterance_norm(3.0 * (fb + response))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert a.mean(dim=1).abs().max() < 1e-5 and torch.allclose(a.std(dim=(1, 2)), torch.ones(2), atol=1e-4)


def test_adapter_with_utterance_norm_is_gain_independent_and_high_freq_empties_no_bin():
    wave = torch.from_numpy(_noise(1.0, 16000))[None]
    ad = AudioAdapter(num_mel_bins=32, target_frames=98, norm="utterance", top_db=60.0, high_freq=4000.0).eval()
    torch.testing.assert_close(ad(wave), ad(4.0 * wave), atol=1e-3, rtol=1e-3)
    # a file recorded at 8 kHz, read at 16 kHz, has nothing above 4 kHz: a bank up to 4 kHz still fills every bin
    import lkconv.data.readers.audio as ra
    narrow = ra.resample(ra.resample(wave, 16000, 8000), 8000, 16000)[..., : wave.shape[-1]]
    full = AudioAdapter(num_mel_bins=32, target_frames=98, high_freq=0.0).features(narrow)
    capped = AudioAdapter(num_mel_bins=32, target_frames=98, high_freq=4000.0).features(narrow)
    assert full[..., -4:].mean() < capped[..., -4:].mean() - 5  # the top bins of the full bank are (nearly) empty
    assert ad.config()["norm"] == "utterance" and ad.config()["high_freq"] == 4000.0


def test_audio_adapter_rejects_bad_new_options():
    with pytest.raises(ValueError, match="norm"):
        AudioAdapter(norm="cmvn")
    with pytest.raises(ValueError, match="high_freq"):
        AudioAdapter(sample_rate=16000, high_freq=9000)
    with pytest.raises(ValueError, match="top_db"):
        AudioAdapter(top_db=-1)
    assert adapter_args_from({"norm": "utterance", "top_db": 60, "high_freq": 4000})["norm"] == "utterance"


# --- audio: folder facts ----------------------------------------------------------------------------------------

def test_header_scan_gives_durations_and_rates(tmp_path):
    for split, cls, i, seconds, sr in [("train", "a", 0, 0.6, 16000), ("train", "a", 1, 1.1, 22050),
                                       ("train", "b", 0, 1.4, 16000), ("val", "a", 0, 1.3, 8000)]:
        d = tmp_path / split / cls
        d.mkdir(parents=True, exist_ok=True)
        write_wav(d / f"{i}.wav", _noise(seconds, sr), sr)
    assert audio_header(tmp_path / "train" / "a" / "1.wav") == (int(round(1.1 * 22050)), 22050)
    (tmp_path / "train" / "b" / "junk.wav").write_bytes(b"nothing")
    assert audio_header(tmp_path / "train" / "b" / "junk.wav") is None
    facts = scan_audio_folder(tmp_path)
    assert sorted(round(s, 3) for s in facts.train_seconds) == [0.6, 1.1, 1.4]  # val durations are not used
    assert sorted(facts.rates) == [8000, 16000, 16000, 22050]  # val rates are


def test_clip_and_high_freq_rules():
    assert auto_clip_seconds([0.64, 1.0, 1.01, 1.2, 1.66]) == 1.5  # 90th percentile 1.48 -> 1.5
    assert auto_clip_seconds([0.1, 0.2]) == 0.5 and auto_clip_seconds([30.0]) == 10.0
    assert auto_clip_seconds([]) is None
    assert auto_high_freq([8000, 48000], 16000) == 4000.0 and auto_high_freq([16000, 44100], 16000) == 0.0
    assert auto_high_freq([], 16000) == 0.0


# --- video ------------------------------------------------------------------------------------------------------

def test_temporal_diff_channels_follow_each_frame():
    x = torch.arange(3 * 1 * 2 * 2, dtype=torch.float32).reshape(1, 3, 1, 2, 2) ** 2
    out = with_temporal_diff(x)
    assert out.shape == (1, 3, 2, 2, 2)
    assert torch.equal(out[:, :, :1], x) and torch.equal(out[0, 0, 1], x[0, 1, 0] - x[0, 0, 0])
    assert torch.equal(out[0, 2, 1], torch.zeros(2, 2))
    ad = VideoAdapter(num_frames=4, in_chans=3, layout="channels", temporal_diff=True)
    assert ad.out_chans == 24 and ad(torch.rand(2, 4, 3, 8, 8)).shape == (2, 24, 8, 8)
    assert VideoAdapter(num_frames=4, in_chans=3, layout="grid", temporal_diff=True)(torch.rand(1, 4, 3, 8, 8)).shape \
        == (1, 6, 16, 16)
    # a static clip has zero difference channels, whatever its content
    static = torch.rand(1, 1, 3, 8, 8).expand(1, 4, 3, 8, 8)
    assert ad(static).reshape(1, 4, 6, 8, 8)[:, :, 3:].abs().max() == 0


def _panning_clip(dx: int, dy: int, frames: int = 6, side: int = 24) -> torch.Tensor:
    """A smooth random texture moved by (dx, dy) px per frame (wrapping): (1, T, 1, side, side)."""
    g = torch.Generator().manual_seed(0)
    tex = torch.nn.functional.avg_pool2d(torch.rand(1, 1, side + 8, side + 8, generator=g), 5, 1, 2)[..., :side, :side]
    return torch.stack([tex.roll((t * dy, t * dx), dims=(-2, -1)) for t in range(frames)], dim=1)


@pytest.mark.parametrize("dx,dy", [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_motion_energy_tells_the_direction_of_a_pan(dx, dy):
    """D * dI/dx ~ -v_x (dI/dx)^2 (brightness constancy): its mean over a frame has the sign of -v_x; along the
    other axis it averages out (smaller by a factor of several)."""
    out = motion_energy(_panning_clip(dx, dy))
    assert out.shape == (1, 6, 2, 24, 24) and out[:, -1].abs().max() == 0  # the last frame has no next one
    mx, my = out[0, :-1, 0].mean().item(), out[0, :-1, 1].mean().item()
    along, across = (mx, my) if dx else (my, mx)
    assert along * -(dx or dy) > 0 and abs(along) > 3 * abs(across)


def test_motion_channels_in_the_adapter_and_its_config():
    x = _panning_clip(1, 0, frames=4, side=8)
    ad = VideoAdapter(num_frames=4, in_chans=1, layout="channels", temporal_diff=True, motion=True)
    assert ad.out_chans == 16 and ad.config()["motion"] is True
    out = ad(x).reshape(1, 4, 4, 8, 8)
    norm = (x - 0.5) / 0.5
    torch.testing.assert_close(out[:, :, :2], with_temporal_diff(norm).reshape(1, 4, 2, 8, 8))
    torch.testing.assert_close(out[:, :, 2:], motion_energy(norm))
    assert VideoAdapter(num_frames=4, in_chans=3, layout="grid", motion=True)(torch.rand(2, 4, 3, 8, 8)).shape == \
        (2, 9, 16, 16)
    assert VideoAdapter(**ad.config())(x).equal(ad(x))  # the run directory rebuilds the same adapter
    static = torch.rand(1, 1, 1, 8, 8).expand(1, 4, 1, 8, 8)
    assert ad(static).reshape(1, 4, 4, 8, 8)[:, :, 1:].abs().max() == 0
    with pytest.raises(ValueError, match="motion must be true or false"):
        VideoAdapter(num_frames=4, in_chans=1, motion="yes")
    cfg = TrainConfig(data="x", out="y", modality="video", modality_args={"layout": "grid", "motion": True})
    assert video_data.video_options(cfg)[1]["motion"] is True


def test_decoded_clips_are_cached_and_equal_to_decoding(monkeypatch):
    calls = []

    def fake_decode(path, num_frames, size):
        calls.append(path)
        return torch.full((num_frames, size, size, 3), len(str(path)), dtype=torch.uint8)

    monkeypatch.setattr(video_data, "decode_frames", fake_decode)
    files = [Path("a.mp4"), Path("bb.mp4")]
    cache = video_data.DecodedClips(files, 4, 8, n_used=2)
    first = cache(1)
    assert torch.equal(cache(1), first) and calls == [files[1]] and cache.enabled
    monkeypatch.setattr(video_data, "CACHE_BYTES", 10)
    big = video_data.DecodedClips(files, 4, 8, n_used=2)
    big(0), big(0)
    assert not big.enabled and calls == [files[1], files[0], files[0]]


def test_temporal_diff_is_a_video_option(tmp_path):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "r"), modality="video",
                      modality_args={"layout": "channels", "temporal_diff": True, "num_frames": 4})
    _, adapter = video_data.video_options(cfg)
    assert adapter["temporal_diff"] is True
    with pytest.raises(Exception, match="temporal_diff"):
        video_data.video_options(cfg.replace(modality_args={"temporal_diff": "yes"}))


def test_decoded_waves_are_cached_and_equal_to_decoding(tmp_path, monkeypatch):
    from lkconv.data.readers.audio import read_audio
    from lkconv.modalities.audio import data as audio_data

    write_wav(tmp_path / "a.wav", _noise(0.5, 22050), 22050)
    write_wav(tmp_path / "b.wav", _noise(0.5, 16000, seed=1), 16000)
    files = [tmp_path / "a.wav", tmp_path / "b.wav"]
    waves = audio_data.DecodedWaves(files, 16000)
    first = waves(0)
    torch.testing.assert_close(first, read_audio(files[0], mono=True, sample_rate=16000)[0][0])
    (tmp_path / "a.wav").write_bytes(b"gone")  # served from memory now
    assert waves(0) is first and waves.held == first.numel() * 4
    monkeypatch.setattr(audio_data, "CACHE_BYTES", 10)
    small = audio_data.DecodedWaves(files, 16000)
    small(1)
    assert small.held == 0 and not small.waves


def test_reverb_adds_a_decaying_tail_and_is_seeded():
    from lkconv.modalities.audio.augment import reverb, room_response

    h = room_response(np.random.default_rng(0), 16000, 0.3)
    assert h[0] == 1.0 and h.shape == (4800,)
    early, late = h[100:1600].square().mean(), h[3200:].square().mean()
    assert late < early / 100  # -60 dB at 0.3 s: two thirds of the way it is 40 dB down
    click = torch.zeros(8000)
    click[100] = 1.0
    wet = reverb(click, np.random.default_rng(1), 16000, 1.0)
    assert wet.shape == click.shape and wet[:100].abs().max() < 1e-4 and wet[200:2000].abs().sum() > 0.1
    torch.testing.assert_close(wet, reverb(click, np.random.default_rng(1), 16000, 1.0))
    assert reverb(click, np.random.default_rng(1), 16000, 0.0) is click
