"""Audio modality: the log-mel adapter, the folder data layer, the built-in sets and a tiny end-to-end run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lkconv.data.augment.audio import fix_length
from lkconv.data.datasets import DataError
from lkconv.data.readers.audio import write_wav
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_adapter
from lkconv.modalities.audio.adapter import AUDIOSET_MEAN, AUDIOSET_STD, AudioAdapter, clip_samples, mask_along
from lkconv.modalities.audio.builtin import prepare_keywords
from lkconv.modalities.audio.data import adapter_args_from, build_data, load_for_predict
from lkconv.modalities.builtin import BUILTINS, builtin_names
from lkconv.ops.fbank import kaldi_fbank

TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [7]]}


def _tone(freq: float, sr: int = 16000, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _cfg(tmp_path: Path, data: Path | str, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(tmp_path / "run"), modality="audio", **kw)


# --- adapter ----------------------------------------------------------------------------------------------------

def test_adapter_shape_and_reference_normalisation():
    a = AudioAdapter().eval()
    assert a.num_samples == clip_samples(128, 16000) == 127 * 160 + 400
    wave = torch.randn(2, a.num_samples) * 0.1 + 0.3
    out = a(wave)
    assert out.shape == (2, 1, 128, 128)
    ref = kaldi_fbank(wave - wave.mean(-1, keepdim=True), 16000, num_mel_bins=128, window="hanning", htk_compat=True)
    torch.testing.assert_close(out[:, 0], ((ref - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)).transpose(1, 2))
    assert a(wave[:, None]).shape == (2, 1, 128, 128)  # (B, 1, N) accepted


def test_adapter_pads_or_crops_frames_and_rejects_bad_input():
    a = AudioAdapter(num_mel_bins=32, target_frames=50).eval()
    assert a(torch.randn(1, 16000)).shape == (1, 1, 32, 50)  # 98 frames cropped
    short = a(torch.randn(1, 4000))  # 23 frames, zero-padded (in the un-normalised log domain)
    assert short.shape == (1, 1, 32, 50)
    torch.testing.assert_close(short[..., 30:], torch.full_like(short[..., 30:], -AUDIOSET_MEAN / (2 * AUDIOSET_STD)))
    with pytest.raises(ValueError, match="mono waveforms"):
        a(torch.randn(2, 2, 100))
    with pytest.raises(ValueError, match="norm_std"):
        AudioAdapter(norm_std=0)


def test_augmentation_only_in_training():
    a = AudioAdapter(num_mel_bins=64, target_frames=64)
    wave = torch.randn(4, a.num_samples)
    a.eval()
    e1, e2 = a(wave), a(wave)
    assert torch.equal(e1, e2)
    a.train()
    torch.manual_seed(1)
    t1 = a(wave)
    assert t1.shape == e1.shape and not torch.equal(t1, e1)
    assert build_adapter("audio", **a.config()).config() == a.config()


def test_time_shift_is_a_roll():
    a = AudioAdapter(num_mel_bins=16, target_frames=40, freq_mask=0, time_mask=0, noise=0, time_shift=3)
    wave = torch.randn(3, a.num_samples)
    ref = a.eval()(wave)
    out = a.train()(wave)
    for b in range(3):
        assert any(torch.equal(out[b], ref[b].roll(s, dims=-1)) for s in range(-3, 4))


def test_mask_along_zeroes_one_band_per_sample():
    torch.manual_seed(3)
    x = torch.ones(8, 1, 20, 30)
    y = mask_along(x, 2, 6)
    for b in range(8):
        rows = (y[b, 0, :, 0] == 0).nonzero().flatten()
        assert len(rows) <= 6
        if len(rows):
            assert rows.max() - rows.min() + 1 == len(rows)  # contiguous
        assert torch.equal(y[b, 0], y[b, 0, :, :1].expand(20, 30))  # whole rows
    assert torch.equal(mask_along(x, 3, 0), x)


# --- data layer -------------------------------------------------------------------------------------------------

def test_fix_length_random_and_centre():
    x = torch.arange(10.0)
    assert torch.equal(fix_length(x, 4), torch.tensor([3.0, 4, 5, 6]))
    assert torch.equal(fix_length(x, 14), torch.cat([torch.zeros(2), x, torch.zeros(2)]))
    rng = np.random.default_rng(0)
    crops = {tuple(fix_length(x, 4, rng).tolist()) for _ in range(30)}
    assert len(crops) > 1 and all(c[1] - c[0] == 1 for c in crops)
    padded = fix_length(x, 12, np.random.default_rng(1))
    assert padded.shape == (12,) and padded.sum() == x.sum()


def _write_folders(root: Path, per_class: int = 3) -> None:
    for split, n in (("train", per_class), ("val", 2)):
        for c, freq in (("low", 300.0), ("high", 3000.0)):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                write_wav(d / f"{i}.wav", _tone(freq, seed=i), 16000)
    write_wav(root / "train" / "low" / "stereo22k.wav", np.stack([_tone(300, 22050), _tone(300, 22050)]), 22050)
    (root / "train" / "high" / "broken.wav").write_bytes(b"not a wav file at all")


def test_folder_bundle_streams_resamples_and_skips_bad_files(tmp_path):
    _write_folders(tmp_path / "d")
    b = build_data(_cfg(tmp_path, tmp_path / "d", modality_args={"clip_seconds": 0.5, "num_mel_bins": 32}))
    assert b.class_names == ["high", "low"] and b.adapter == "audio"
    assert len(b.train) == 7 and len(b.val) == 4 and b.notes["skipped_files"] == 1
    n = b.preprocessing["num_samples"]
    assert b.raw_shape == (n,) and b.adapter_args["target_frames"] == 48 and n == clip_samples(48, 16000)
    for ds in (b.train, b.val):
        for k in range(len(ds)):
            x, y = ds[k]
            assert x.shape == (n,) and x.dtype == torch.float32 and int(y) in (0, 1)
    adapter = build_adapter(b.adapter, **b.adapter_args)
    assert adapter(torch.stack([b.val[0][0], b.val[1][0]])).shape == (2, 1, 32, 48)
    with pytest.raises(DataError, match="unreadable"):
        build_data(_cfg(tmp_path, tmp_path / "d", on_bad_file="error"))
    # eval on the val/ split only, with the run's classes
    ev = build_data(_cfg(tmp_path, tmp_path / "d"), eval_only=True, class_names=["high", "low"])
    assert ev.train is None and len(ev.val) == 4


def test_folder_without_split_holds_out_and_predict_loads_one_clip(tmp_path):
    root = tmp_path / "flat"
    for c, freq in (("a", 200.0), ("b", 2000.0)):
        (root / c).mkdir(parents=True)
        for i in range(5):
            write_wav(root / c / f"{i}.wav", _tone(freq, seed=i, seconds=2.0), 16000)
    b = build_data(_cfg(tmp_path, root, val_split=0.2))
    assert len(b.train) == 8 and len(b.val) == 2
    x = load_for_predict(root / "a" / "0.wav", b.preprocessing)
    assert x.shape == (b.preprocessing["num_samples"],)
    wave = torch.from_numpy(_tone(200.0, seed=0, seconds=2.0))
    torch.testing.assert_close(x, fix_length(wave, x.shape[0]), atol=1e-4, rtol=0)  # centre crop, as validation
    with pytest.raises(DataError, match="not an audio file"):
        load_for_predict(tmp_path / "x.txt", b.preprocessing)


def test_modality_args_are_checked():
    assert adapter_args_from({"sample_rate": 8000, "clip_seconds": 1.0}) == {"sample_rate": 8000, "target_frames": 98}
    with pytest.raises(DataError, match="unknown audio option.*mel_bins"):
        adapter_args_from({"mel_bins": 64})
    with pytest.raises(DataError, match="sample_rate"):
        adapter_args_from({"sample_rate": 100})


def test_flac_files_read_through_soundfile(tmp_path):
    sf = pytest.importorskip("soundfile")
    for split in ("train", "val"):
        for c in ("x", "y"):
            (tmp_path / "f" / split / c).mkdir(parents=True)
            sf.write(tmp_path / "f" / split / c / "0.flac", _tone(440.0 if c == "x" else 880.0, 44100), 44100)
    b = build_data(_cfg(tmp_path, tmp_path / "f", modality_args={"target_frames": 20}))
    assert b.train[0][0].shape == (clip_samples(20, 16000),)


# --- built-in sets ----------------------------------------------------------------------------------------------

def test_builtins_are_registered():
    assert {"keywords", "sonic-samples"} <= set(builtin_names())
    for name in ("keywords", "sonic-samples"):
        entry = BUILTINS[name]
        assert entry.modality == "audio" and entry.install.startswith("apt-get install") and entry.licence


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_keywords_generation_holds_out_voices(tmp_path):
    out = prepare_keywords(tmp_path / "kw", words=("yes", "no"), variants=["f1", "m1", "m3", "croak"],
                           clips_per_voice=1, test_fraction=0.25)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips"] == 8 and len(manifest["test_voices"]) == 1
    voices = {split: {p.name.split("_")[0] for p in (out / split).rglob("*.wav")} for split in ("train", "test")}
    assert voices["test"] == set(manifest["test_voices"]) and not voices["test"] & voices["train"]
    from lkconv.data.readers.audio import read_wav

    x, sr = read_wav(next((out / "test" / "yes").glob("*.wav")))
    assert sr == 16000 and x.shape == (1, 16000) and np.abs(x).max() > 0.1
    again = prepare_keywords(tmp_path / "kw2", words=("yes", "no"), variants=["f1", "m1", "m3", "croak"],
                             clips_per_voice=1, test_fraction=0.25)
    first = sorted(p.relative_to(out) for p in out.rglob("*.wav"))
    assert first == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    assert all((out / p).read_bytes() == (again / p).read_bytes() for p in first)  # deterministic


@pytest.mark.skipif(not BUILTINS["sonic-samples"].available(), reason="sonic-pi-samples not installed")
def test_sonic_samples_families(tmp_path):
    cfg = _cfg(tmp_path, "builtin:sonic-samples", max_train_samples=10, max_val_samples=3,
               modality_args={"target_frames": 16})
    b = BUILTINS["sonic-samples"].build(cfg)
    assert "tabla" in b.class_names and "guit" not in b.class_names  # 4 guitar clips: too few
    assert len(b.train) == 10 and len(b.val) == 3
    x, _ = b.val[0]
    assert x.shape == (clip_samples(16, 16000),)


# --- end to end -------------------------------------------------------------------------------------------------

def test_train_learns_tones_end_to_end(tmp_path, one_thread):
    from lkconv.engine.evaluate import evaluate_run, predict_files
    from lkconv.engine.trainer import train

    root = tmp_path / "tones"
    for split, n, base in (("train", 12, 0), ("val", 6, 100)):
        for c, freq in (("low", 250.0), ("mid", 1200.0), ("high", 4000.0)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                f = freq * (1 + 0.1 * np.random.default_rng(base + i).uniform(-1, 1))
                write_wav(root / split / c / f"{i}.wav", _tone(f, seed=base + i, seconds=0.4), 16000)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), modality="audio", model="unireplknet_a",
                      model_args=TINY_MODEL, epochs=6, batch_size=12, lr=3e-3, seed=0, progress=False,
                      modality_args={"num_mel_bins": 32, "target_frames": 32, "freq_mask": 4, "time_mask": 4})
    run = train(cfg)
    metrics = evaluate_run(run)
    assert metrics["num_samples"] == 18 and metrics["accuracy"] > 0.6  # chance is 1/3
    rows = predict_files(run, [root / "val" / "high" / "0.wav"])
    assert rows[0]["top"][0][0] in ("low", "mid", "high")


def test_predict_names_what_is_wrong_and_what_is_accepted(tmp_path):
    """Issue 14: a file predict cannot read is one sentence, without the path twice and with what is accepted."""
    pre = {"sample_rate": 16000, "num_samples": 800}
    no_data = tmp_path / "no_data.wav"
    no_data.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(DataError) as e:
        load_for_predict(no_data, pre)
    assert str(no_data) not in str(e.value).split("(")[0]  # predict's line names the file once, before this text
    assert str(e.value).endswith("accepted: .wav, .flac, .ogg audio files (PCM or float WAV without soundfile)")
    with pytest.raises(DataError, match=r"^not an audio file \(suffix '\.png'\); accepted: \.wav, \.flac, \.ogg"):
        load_for_predict(tmp_path / "x.png", pre)


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    """Issue 14 probe: a float WAV of NaNs was read, predicted as "high nan" and would have stopped training with a
    NaN loss that names no file."""
    from lkconv.data.readers.audio import read_audio

    path = write_wav(tmp_path / "nan.wav", np.where(np.arange(800) % 2, np.nan, 0.1).astype(np.float32), 16000,
                     bits=-32)
    with pytest.raises(ValueError, match=r"nan\.wav: 400 of 800 samples are NaN or infinite; accepted: finite"):
        read_audio(path)
    with pytest.raises(DataError, match=r"^400 of 800 samples are NaN or infinite; accepted: finite samples$"):
        load_for_predict(path, {"sample_rate": 16000, "num_samples": 800})
