"""Files that pass the folder scan but fail to decode later (issue 14, item 4): skipped and counted once per epoch
under on_bad_file: skip (the next readable sample takes the place, so batches and resume stay exact), or a one-line
error naming the file under on_bad_file: error; never a traceback, also when the bad file sorts first."""

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lkconv.cli import main
from lkconv.data.datasets import DataBundle, DataError, SampleDataset, skipped_files_warning
from lkconv.data.readers.audio import write_wav
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_data

TINY = "{depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], kernel_sizes: [[3], [7], [7], [7]]}"


def _dataset(bad: set[int], on_bad_file: str = "skip") -> SampleDataset:
    def load(i):
        if i in bad:
            raise OSError(f"file {i} is truncated")
        return torch.full((2,), float(i))

    return SampleDataset(load, list(range(6)), [0, 1, 2, 3, 4, 5], seed=0, describe=lambda i: f"f{i}.png",
                         on_bad_file=on_bad_file)


def test_a_bad_sample_is_replaced_by_the_next_readable_one_and_counted():
    ds = _dataset({2, 3})
    x, y = ds[2]
    assert y.item() == 4 and x.tolist() == [4.0, 4.0]  # position 2 and 3 unreadable: 4 takes the place
    assert ds[5][1].item() == 5 and ds[3][1].item() == 4
    skipped = ds.take_skipped()
    assert sorted(name for name, _ in skipped) == ["f2.png", "f3.png"] and "truncated" in skipped[0][1]
    assert ds.take_skipped() == []  # counted once per call (per epoch)
    assert ds[2][1].item() == 4  # the same substitute again: what a resumed run sees
    bundle = DataBundle(ds, _dataset(set()), ["a"], "image", {}, (2,))
    line = skipped_files_warning(bundle)
    assert line.startswith("warning: skipped 2 unreadable file(s)") and "f2.png" in line


def test_a_bad_sample_under_on_bad_file_error_names_the_file():
    with pytest.raises(DataError, match=r"cannot read f2\.png: OSError: file 2 is truncated"):
        _dataset({2}, "error")[2]


def test_every_sample_unreadable_is_one_error():
    with pytest.raises(DataError, match="no readable sample: all 6 failed to decode"):
        _dataset(set(range(6)))[0]


def _truncated_jpeg(path: Path, seed: int = 1) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 40, 3)).astype(np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # header intact: passes the scan


def _image_folder(root: Path, n: int = 10) -> Path:
    """Two classes told apart by colour (red-ish, blue-ish), 20x20 PNGs with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, colour in (("blob", (200, 40, 40)), ("horizontal", (40, 40, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder_with_truncated_jpegs(tmp_path_factory):
    root = _image_folder(tmp_path_factory.mktemp("badjpeg") / "data")
    for cls in ("blob", "horizontal"):
        _truncated_jpeg(root / cls / "00_truncated.jpg")  # sorts first in its class
    return root


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--model-args", TINY, "--img-size", "32",
                 "--batch-size", "8", "--lr", "3e-3", "--no-progress", "--max-val-samples", "8", *extra])


def test_training_skips_truncated_jpegs_with_one_warning_per_epoch(folder_with_truncated_jpegs, tmp_path, capsys):
    assert _train(folder_with_truncated_jpegs, tmp_path / "run", "--epochs", "2") == 0
    out = capsys.readouterr().out.splitlines()
    warnings = [line for line in out if line.startswith("warning: skipped")]
    assert warnings and all("00_truncated.jpg" in w and "truncated" in w for w in warnings)
    for w in warnings:  # each warning directly before an epoch line, not in the middle of one
        assert out[out.index(w) + 1].startswith(("epoch ", "warning: "))


def test_training_under_on_bad_file_error_stops_naming_the_file(folder_with_truncated_jpegs, tmp_path, capsys):
    assert _train(folder_with_truncated_jpegs, tmp_path / "run", "--epochs", "1", "--on-bad-file", "error") == 2
    err = capsys.readouterr().err
    assert "00_truncated.jpg" in err and "Traceback" not in err and err.startswith("lkconv train: error: ")


def test_resume_is_exact_with_skipped_files(folder_with_truncated_jpegs, tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    from lkconv.engine.trainer import Trainer

    assert _train(folder_with_truncated_jpegs, tmp_path / "full", "--epochs", "2") == 0
    end_epoch = Trainer.end_epoch

    def interrupted_after_the_first(self, epoch, row, timing):
        end_epoch(self, epoch, row, timing)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Trainer, "end_epoch", interrupted_after_the_first)
        assert _train(folder_with_truncated_jpegs, tmp_path / "part", "--epochs", "2") == 130
    assert "holds epoch 1/2" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "part"), "--resume"]) == 0
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "part" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _wav_without_data_chunk(path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("on_bad_file", ["skip", "error"])
def test_wav_with_riff_header_but_no_data_chunk(tmp_path, on_bad_file):
    t = np.arange(8000) / 16000
    for cls, freq in (("low", 200), ("high", 2000)):
        (tmp_path / cls).mkdir()
        for i in range(4):
            write_wav(tmp_path / cls / f"{i}.wav", (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    _wav_without_data_chunk(tmp_path / "low" / "0_empty.wav")  # sorts first
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="audio", on_bad_file=on_bad_file,
                      val_split=0.25)
    bundle = build_data(cfg)
    bad = [k for k, i in enumerate(bundle.train.indices) if "0_empty" in bundle.train.describe(i)]
    bad += [k for k, i in enumerate(bundle.val.indices) if "0_empty" in bundle.val.describe(i)]
    ds = bundle.train if any("0_empty" in bundle.train.describe(i) for i in bundle.train.indices) else bundle.val
    k = next(k for k, i in enumerate(ds.indices) if "0_empty" in ds.describe(i))
    assert bad
    if on_bad_file == "error":
        with pytest.raises(DataError, match="0_empty.wav"):
            ds[k]
    else:
        x, _ = ds[k]
        assert x.shape == ds[(k + 1) % len(ds)][0].shape
        assert "0_empty.wav" in skipped_files_warning(bundle)


def test_unreadable_file_says_it_once_with_what_is_accepted(tmp_path):
    from lkconv.data.datasets import unreadable_file

    path = tmp_path / "x.ts"
    assert str(unreadable_file(path, ValueError(f"{path}: no data"), "ts files")) == "no data; accepted: ts files"
    assert str(unreadable_file(path, ValueError(f"{path}:3: 'zz' is not a number"), "ts")).startswith("line 3: 'zz'")
    assert str(unreadable_file(path, OSError("truncated"), "ts")) == "OSError: truncated; accepted: ts"
    assert str(unreadable_file(path, DataError("bad; accepted: a"), "b")) == "bad; accepted: a"  # its own list stays


def test_skipped_files_in_loader_workers_are_counted_in_the_main_process():
    from torch.utils.data import DataLoader

    ds = _dataset({2, 3})
    batches = [[0, 1, 2], [3, 4, 5]]
    assert sum(len(x) for x, _ in DataLoader(ds, batch_sampler=batches, num_workers=2)) == 6
    skipped = ds.take_skipped()  # was: nothing (each worker kept its own count)
    assert sorted(name for name, _ in skipped) == ["f2.png", "f3.png"]
    assert "file 2 is truncated" in skipped[0][1]  # the reason, read again in the main process
    assert ds.take_skipped() == []


def test_the_epoch_warning_counts_the_same_with_and_without_workers(folder_with_truncated_jpegs, tmp_path, capsys):
    counts = {}
    for workers in ("0", "2"):
        assert _train(folder_with_truncated_jpegs, tmp_path / workers, "--epochs", "1", "--num-workers", workers) == 0
        out = capsys.readouterr().out.splitlines()
        counts[workers] = [line.split(" unreadable")[0] for line in out if line.startswith("warning: skipped")]
    assert counts["0"] == counts["2"] and counts["0"] and counts["0"][0].startswith("warning: skipped ")


def test_a_class_whose_files_are_all_unreadable_is_an_error(tmp_path):
    """Issue 14 probe: the class trained with no sample at all ("class balance 0-7 ... largest/smallest 1.00")."""
    root = _image_folder(tmp_path / "data", n=4)
    for f in (root / "blob").iterdir():
        f.write_text("not an image")
    with pytest.raises(DataError, match=r"class folder .*blob: none of its 4 file\(s\) can be read \(first: .*00\.png: "
                                        r"UnidentifiedImageError.*accepted: readable \*\.\{bmp,jpeg,jpg,png\} files"):
        build_data(TrainConfig(data=str(root), out=str(tmp_path / "run")))


def test_one_class_folder_is_not_a_classification_data_set(tmp_path):
    """Issue 14 probe: one class folder trained a 1-class model to a meaningless 100 %."""
    root = _image_folder(tmp_path / "data", n=4)
    import shutil

    shutil.rmtree(root / "horizontal")
    with pytest.raises(DataError, match=r"has one class folder \(blob\); a classifier needs at least two"):
        build_data(TrainConfig(data=str(root), out=str(tmp_path / "run")))
    bundle = build_data(TrainConfig(data=str(root), out=str(tmp_path / "run")), eval_only=True,
                        class_names=["blob", "horizontal"])  # evaluating on one class stays possible
    assert len(bundle.val) == 4


def test_a_file_given_as_the_data_folder_says_so(tmp_path):
    root = _image_folder(tmp_path / "data", n=2)
    with pytest.raises(DataError, match=r"00\.png is a file; the data is a folder of class folders, PATH/<class>/"):
        build_data(TrainConfig(data=str(root / "blob" / "00.png"), out=str(tmp_path / "run")))


def test_eval_says_which_files_it_could_not_decode(folder_with_truncated_jpegs, tmp_path, capsys):
    """Issue 14 probe: eval replaced a truncated JPEG by the next sample without a word (the metrics counted a
    duplicate)."""
    import json

    assert main(["train", "--data", str(folder_with_truncated_jpegs), "--out", str(tmp_path / "run"), "--model-args",
                 TINY, "--img-size", "32", "--epochs", "1", "--no-progress"]) == 0  # every file evaluated
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run"), "--data", str(folder_with_truncated_jpegs)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["warning"].startswith("warning: skipped 2 unreadable file(s)")
    assert "00_truncated.jpg" in metrics["warning"] and "00_truncated.jpg" in capsys.readouterr().out
