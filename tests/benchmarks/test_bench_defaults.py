"""bench_defaults: the panel's folders follow lkconv's folder contracts, and its baselines and result collection
read what they should (tiny cases only: no training)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_defaults as bd  # noqa: E402


def test_shape_folder_is_a_class_folder_of_meshes_lkconv_reads(tmp_path):
    bd.make_shapes(train_per_class=2, val_per_class=1)(tmp_path)
    classes = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert classes == sorted(bd.primitive_meshes()) and len(classes) == 6
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == classes
    files = sorted((tmp_path / "train" / "box").glob("*.off"))
    assert len(files) == 2
    v, f = bd._read_off(files[0])
    assert v.shape == (8, 3) and f.shape == (12, 3)
    # a random pose with anisotropic scaling: the box's edges are no longer along the axes
    assert not np.allclose(np.abs(v), np.abs(v[0]), atol=1e-3)
    assert files[0].read_text().startswith("OFF\n8 12 0\n")
    feats = bd._shape_features(tmp_path)
    assert feats[0].shape == (12, 32) and len(feats[3]) == 6


def test_ucr_folder_copies_train_and_test_and_baselines_read_them(tmp_path):
    if "GunPoint" not in bd.ucr_names():
        pytest.skip("sktime's bundled GunPoint is not installed")
    bd._ucr_make("GunPoint")(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GunPoint_TEST.ts", "GunPoint_TRAIN.ts"]
    xtr, ytr, xva, yva = bd._ucr_features("GunPoint")(tmp_path)
    assert xtr.shape == (50, 150) and xva.shape == (150, 150)
    # the UCR archive's 1-NN Euclidean error on GunPoint is 0.087
    assert bd.nn1_accuracy(xtr, ytr, xva, yva) == pytest.approx(0.913, abs=0.002)


def test_read_ts_keeps_channels_unequal_lengths_and_missing_values(tmp_path):
    p = tmp_path / "x_TRAIN.ts"
    p.write_text("# c\n@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,?:2,3:b\n")
    cases, labels = bd.read_ts(p)
    assert labels == ["a", "b"] and cases[0].shape == (2, 3) and cases[1].shape == (2, 2)
    assert np.isnan(cases[1][0, 1])
    assert bd.ts_is_classification(p)


def test_baselines_and_metrics_collection(tmp_path):
    xtr = np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 1.0]])
    assert bd.nn1_accuracy(xtr, ["a", "b", "a"], np.array([[1.0, 0.0], [9.0, 9.0]]), ["a", "a"], chunk=1) == 0.5
    assert bd.majority_accuracy(["a", "b", "a"], ["a", "b", "b", "b"]) == 0.25
    (tmp_path / "metrics.csv").write_text(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy\n1,1.0,0.5,,\n2,0.5,0.8,0.7,0.75\n"
        "3,0.4,0.9,0.6,0.7\n")
    assert bd.read_metrics(tmp_path) == (0.75, 0.7, 0.9, 3)
    assert bd.read_metrics(tmp_path / "missing") == (None, None, None, 0)
    row = {"name": "s", "modality": "image", "rc": 0, "best_val_acc": 0.75, "last_val_acc": 0.7,
           "published": {"dtw": 0.5, "confirmed": []}}
    text = bd.table([row])
    assert "| s | image | 75.0 / 70.0 |" in text and "50.0?" in text
    failed = bd.table([{"name": "f", "modality": "image", "rc": 2, "error": "lkconv train: error: too big"}])
    assert "failed (rc 2): `lkconv train: error: too big`" in failed
    assert "timeout before the first evaluation" in bd.table([{"name": "t", "modality": "video", "rc": -9}])


def test_dtw_finds_the_warped_neighbour():
    t = np.linspace(0, 1, 40)
    bump = lambda c: np.exp(-((t - c) / 0.05) ** 2)[None]  # noqa: E731
    train = [bump(0.3), -bump(0.5)]
    # shifted bumps: Euclidean 1-NN picks by overlap, DTW by shape
    assert bd.nn1_dtw_accuracy(train, ["up", "down"], [bump(0.7), -bump(0.8)], ["up", "down"]) == 1.0
    assert bd.nn1_dtw_accuracy(train, ["up", "down"], [bump(0.7)], ["up"], max_cells=10) is None


def test_resample_keeps_a_tone_and_changes_the_rate():
    sr = 48000
    t = np.arange(sr) / sr
    y = bd.resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr, 8000)
    assert len(y) == 8000
    peak = np.argmax(np.abs(np.fft.rfft(y)))  # 1 s of signal: bin k is k Hz
    assert peak == 440


def test_merge_writes_one_table_in_panel_order(tmp_path):
    import json

    rows = [{"name": "digits", "modality": "image", "rc": 0, "best_val_acc": 0.998, "last_val_acc": 0.993,
             "last_train_acc": 0.999, "epochs_done": 72, "wall_s": 389.0, "peak_rss_mb": 448.0, "majority": 0.101,
             "nn1": 0.984, "options": ""},
             {"name": "zz-not-in-panel", "modality": "image", "rc": None, "options": ""}]
    (tmp_path / "a.json").write_text(json.dumps(rows[1:]))
    (tmp_path / "b.json").write_text(json.dumps(rows[:1]))
    assert bd.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "t.md")]) == 0
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert lines[2].startswith("| digits | image | 99.8 / 99.3 | 99.9 | 72 | 389 | 448 | 10.1 | 98.4 |")
    assert lines[3].startswith("| zz-not-in-panel | image | not run |") and len(lines) == 4
