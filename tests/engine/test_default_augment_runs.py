"""Tiny default runs (`lkconv train` with no recipe options) per file modality with the automatic recipe's
augmentation on, and one with --no-augment: they train, and config.yaml records the augmentation under resolved."""

import numpy as np
import pytest
import yaml

from lkconv.cli import main
from lkconv.data.readers.audio import write_wav


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _train(data, out, modality, *extra):
    assert main(["train", "--modality", modality, "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--no-progress", *extra]) == 0
    return yaml.safe_load((out / "config.yaml").read_text())


def _audio_folder(root):
    sr = 16000
    t = np.arange(int(0.3 * sr)) / sr
    for split in ("train", "val"):
        for c, f in (("low", 300.0), ("high", 2500.0)):
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                write_wav(root / split / c / f"{i}.wav", (0.5 * np.sin(2 * np.pi * f * (1 + 0.05 * i) * t))
                          .astype(np.float32), sr)
    return root


def test_default_audio_run_augments(tmp_path, capsys):
    cfg = _train(_audio_folder(tmp_path / "a"), tmp_path / "run", "audio",
                 "--modality-args", "{target_frames: 32, num_mel_bins: 32}")
    aug = cfg["resolved"]["augmentation"]
    # frequency mask 3/16 of the 32 bins given, time mask 20 frames (auto_recipe.audio_folder_defaults)
    assert aug["freq_mask"] == 6 and aug["time_mask"] == 20 and aug["noise"] == 0.1
    assert aug["band_limit"] == 0.0 and aug["data_wave_aug"] == "none"  # measured: no win (docs/defaults.md)
    assert "augmentation on" in capsys.readouterr().out


def _box_off(path, sx, sy, sz):
    v = [[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)]
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6],
         [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    path.write_text("\n".join(["OFF", f"{len(v)} {len(f)} 0"] + [" ".join(map(str, p)) for p in v]
                              + [f"3 {a} {b} {c}" for a, b, c in f]) + "\n")


def test_default_pointcloud_run_augments_and_no_augment_turns_it_off(tmp_path):
    root = tmp_path / "pc"
    for split in ("train", "val"):
        for c, dims in (("plate", (1, 1, 0.05)), ("rod", (1, 0.05, 0.05))):
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                _box_off(root / split / c / f"{i}.off", *[d * (1 + 0.1 * i) for d in dims])
    cfg = _train(root, tmp_path / "on", "pointcloud", "--modality-args", "{num_points: 64}")
    aug = cfg["resolved"]["augmentation"]
    assert aug["rotation"] == "so3" and aug["anisotropic"] is True and aug["dropout"] == 0.1
    assert cfg["modality_args"]["dropout"] == 0.1  # a valid --config for a new run as it is
    assert cfg["modality_args"]["align"] == "pca" and cfg["resolved"]["auto"]["modality_args"]["align"] == "pca"
    off = _train(root, tmp_path / "off", "pointcloud", "--modality-args", "{num_points: 64, jitter: 0.02}",
                 "--no-augment")["resolved"]["augmentation"]
    assert off["rotation"] == "none" and off["dropout"] == 0.0 and off["scale"] == [1.0, 1.0]
    assert off["jitter"] == 0.02  # the user's option wins over the switch
    assert _train(root, tmp_path / "given", "pointcloud", "--modality-args", "{num_points: 64, align: none}"
                  )["modality_args"]["align"] == "none"


def test_default_video_run_jitters_in_time(tmp_path):
    av = pytest.importorskip("av")
    if "mpeg4" not in av.codecs_available:
        pytest.skip("FFmpeg in this PyAV build has no mpeg4 encoder")
    root = tmp_path / "v"
    for split in ("train", "val"):
        for c in ("left", "right"):
            (root / split / c).mkdir(parents=True)
            for k in range(2):
                with av.open(str(root / split / c / f"{k}.mp4"), "w") as container:
                    stream = container.add_stream("mpeg4", rate=10)
                    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
                    for i in range(10):
                        image = np.zeros((32, 32, 3), np.uint8)
                        x0 = 2 + 2 * i if c == "right" else 22 - 2 * i
                        image[12:20, x0 : x0 + 8] = 230
                        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                            container.mux(packet)
                    for packet in stream.encode():
                        container.mux(packet)
    cfg = _train(root, tmp_path / "run", "video", "--img-size", "32", "--modality-args",
                 "{num_frames: 4, layout: channels}")
    aug = cfg["resolved"]["augmentation"]
    assert aug["temporal_jitter"] is True and aug["aug"] == "crop" and "temporal jitter" in aug["data_aug"]


def test_default_image_run_records_the_flip_rule(tmp_path):
    from PIL import Image

    root = tmp_path / "img"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray((rng.random((8, 8)) * 255 * (0.3 if c == "a" else 1)).astype(np.uint8)).save(
                root / c / f"{i}.png")
    cfg = _train(root, tmp_path / "run", "image")
    aug = cfg["resolved"]["augmentation"]
    assert aug["flip"] == "auto" and aug["color"] == 0.2 and "flips off" in aug["data_flip"]
    given = _train(root, tmp_path / "run2", "image", "--modality-args", "{flip: true}")["resolved"]["augmentation"]
    assert given["flip"] is True and "data_flip" not in given
