"""The automatic recipe's audio and video folder rules (issue 19, avdefaults): what it reads from the files and what
it chooses; every given option wins."""

import numpy as np

from lkconv.data.readers.audio import write_wav
from lkconv.engine.auto_recipe import (AUDIO_TOP_DB, SMALL_UNIREPLKNET, VIDEO_IMG_SIZE, DataFacts, choose_recipe,
                                       modality_defaults)
from lkconv.engine.config import TrainConfig


def _speech_folder(root, rates=(16000, 16000, 8000)):
    rng = np.random.default_rng(0)
    for split, cls, i, seconds in [("train", "a", 0, 0.7), ("train", "a", 1, 1.2), ("train", "b", 0, 1.0),
                                   ("val", "a", 0, 1.4)]:
        d = root / split / cls
        d.mkdir(parents=True, exist_ok=True)
        sr = rates[-1] if split == "val" else rates[i]
        write_wav(d / f"{i}.wav", (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)


def test_audio_folder_rule_reads_durations_and_rates(tmp_path):
    _speech_folder(tmp_path)
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="audio")
    changes, reasons = modality_defaults(cfg)
    m = changes["modality_args"]
    assert m["clip_seconds"] == 1.25  # 90th percentile of 0.7, 1.0, 1.2 s = 1.16 -> 1.25
    assert m["high_freq"] == 4000.0 and m["num_mel_bins"] == 32  # an 8 kHz file in val/
    assert m["norm"] == "utterance" and m["top_db"] == AUDIO_TOP_DB
    assert m["freq_mask"] == 6 and m["time_mask"] == 20
    assert any("4000 Hz" in r for r in reasons) and any("1.25 s" in r for r in reasons)
    assert modality_defaults(cfg) == (changes, reasons)  # deterministic


def test_audio_folder_rule_keeps_given_options_and_16k_banks(tmp_path):
    _speech_folder(tmp_path, rates=(16000, 22050, 44100))
    given = {"clip_seconds": 2.0, "norm": "global", "freq_mask": 30, "time_mask": 5}
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="audio", modality_args=given)
    m = modality_defaults(cfg)[0]["modality_args"]
    assert {k: m[k] for k in given} == given and "top_db" not in m
    assert "high_freq" not in m and "num_mel_bins" not in m  # no file below 16 kHz: the full bank, 128 bins
    off = modality_defaults(TrainConfig(data=str(tmp_path), out=str(tmp_path / "r"), modality="audio",
                                        augment=False))[0]["modality_args"]
    assert off["freq_mask"] == 0 and off["time_mask"] == 0 and off["norm"] == "utterance"


def test_video_folder_rule_grid_with_differences_at_32_px():
    cfg = TrainConfig(data="/nowhere", out="/tmp/x", modality="video")
    changes, reasons = modality_defaults(cfg)
    assert changes["img_size"] == VIDEO_IMG_SIZE == 32
    assert changes["modality_args"]["layout"] == "grid" and changes["modality_args"]["temporal_diff"] is True
    assert changes["modality_args"]["motion"] is True
    assert changes["modality_args"]["channels"] == 1
    given = modality_defaults(cfg.replace(img_size=48, modality_args={"layout": "channels"}))[0]
    assert "img_size" not in given and given["modality_args"]["layout"] == "channels"
    assert given["modality_args"]["temporal_diff"] is True
    builtin = modality_defaults(cfg.replace(data="builtin:moving-fashion"))[0]
    assert "img_size" not in builtin and "layout" not in builtin.get("modality_args", {})


def test_audio_and_video_get_the_small_model():
    for modality, shape in (("audio", (24000,)), ("video", (16, 3, 32, 32))):
        facts = DataFacts(modality=modality, task="classify", n_train=960, n_val=16, class_counts=[120] * 8,
                          raw_shape=shape)
        values, _ = choose_recipe(TrainConfig(data="/nowhere", out="/tmp/x", modality=modality), facts)
        assert values["model_args"] == SMALL_UNIREPLKNET
