"""The default training augmentations of issue 19: each keeps shape and dtype, is fixed by its seed, is the identity
when off and leaves the label alone; the automatic recipe's choice is recorded and user options override it."""

import numpy as np
import pytest
import torch

from lkconv.data.datasets import DataError, SampleDataset
from lkconv.engine.auto_recipe import AUGMENTATION, augmentation_defaults, modality_defaults
from lkconv.engine.config import TrainConfig
from lkconv.modalities.audio.augment import augment_wave, band_limit, random_gain, speed_perturb
from lkconv.modalities.image.augment import auto_flip, photometric
from lkconv.modalities.pointcloud.augment import point_dropout
from lkconv.modalities.timeseries.augment import augment_series, parse_series_aug, window_warp
from lkconv.modalities.video.augment import temporal_jitter


def rng(seed=0):
    return np.random.default_rng(seed)


# --- time series -----------------------------------------------------------------------------------------------------

def test_window_warp_keeps_shape_dtype_and_is_seeded():
    x = torch.sin(torch.linspace(0, 6, 100)).repeat(3, 1)
    a, b = window_warp(x, rng(1)), window_warp(x, rng(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert not torch.allclose(a, x)  # it warped something
    assert torch.allclose(a[:, 0], x[:, 0]) and torch.allclose(a[:, -1], x[:, -1])  # end points kept
    assert window_warp(x[:, :5], rng(1)) is not None and torch.equal(window_warp(x[:, :5], rng(1)), x[:, :5])


def test_series_aug_names_and_identity_when_off():
    assert parse_series_aug("slice+warp") == ("slice", "warp") and parse_series_aug(["warp"]) == ("warp",)
    assert parse_series_aug("none") == () and parse_series_aug(None) == ()
    with pytest.raises(ValueError, match="accepted"):
        parse_series_aug("mixup")
    x = torch.randn(2, 50)
    assert augment_series(x, rng(), ()) is x
    assert torch.equal(augment_series(x, rng(3), ("slice", "warp")), augment_series(x, rng(3), ("slice", "warp")))


# --- images ----------------------------------------------------------------------------------------------------------

def test_photometric_keeps_range_shape_and_is_seeded():
    img = torch.rand(3, 16, 16)
    a, b = photometric(img, rng(2), 0.3), photometric(img, rng(2), 0.3)
    assert a.shape == img.shape and a.dtype == img.dtype and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, img)
    assert photometric(img, rng(2), 0.0) is img


def test_flip_rule_keeps_digits_unflipped():
    assert auto_flip(1, 8)[0] is False and auto_flip(1, 28)[0] is False and auto_flip(3, 32)[0] is False
    on, why = auto_flip(3, 224)
    assert on is True and "224" in why


def _image_folder(root, side=8, channels=1):
    from PIL import Image

    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            arr = np.full((side, side) if channels == 1 else (side, side, 3), 50 + 20 * i + (100 if c == "b" else 0),
                          np.uint8)
            arr[:, : side // 2] = 0  # left half dark: a flip would show
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def test_image_flip_auto_in_the_data_layer(tmp_path):
    from lkconv.modalities.image.data import build_data

    root = _image_folder(tmp_path / "digits")
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "r"), modality="image", img_size=32,
                      modality_args={"flip": "auto", "color": 0.0, "aug": "pad_crop"})
    bundle = build_data(cfg)
    assert "flips off" in bundle.notes["flip"] and "flip off" in bundle.notes["aug"]
    for epoch in range(4):  # never mirrored: the dark half stays on the left
        bundle.train.set_epoch(epoch)
        for k in range(len(bundle.train)):
            x, y = bundle.train[k]
            assert x[:, :, :12].mean() < x[:, :, 20:].mean()
            assert int(y) == bundle.train.labels[bundle.train.indices[k]]
    with pytest.raises(DataError, match="flip"):
        build_data(cfg.replace(modality_args={"flip": "sometimes"}))


# --- audio -----------------------------------------------------------------------------------------------------------

def test_wave_augmentations_shape_dtype_seed_identity():
    sr = 16000
    t = torch.arange(sr) / sr
    wave = torch.sin(2 * np.pi * 300 * t) + torch.sin(2 * np.pi * 6000 * t)
    limited = band_limit(wave, rng(0), sr, prob=1.0)
    assert limited.shape == wave.shape and limited.dtype == wave.dtype
    spec_in, spec_out = torch.fft.rfft(wave).abs(), torch.fft.rfft(limited).abs()
    assert spec_out[6000] < 0.05 * spec_in[6000] and spec_out[300] > 0.8 * spec_in[300]  # 6 kHz gone, 300 Hz kept
    assert band_limit(wave, rng(0), sr, prob=0.0) is wave and band_limit(wave, rng(0), 8000, prob=1.0) is wave
    assert speed_perturb(wave, rng(0), 0.0) is wave and random_gain(wave, rng(0), 0.0) is wave
    fast = speed_perturb(wave, rng(0), 0.1)
    assert 0.89 * sr <= fast.shape[0] <= 1.12 * sr and fast.dtype == wave.dtype
    g = random_gain(wave, rng(0), 6.0)
    ratio = float(g.abs().max() / wave.abs().max())
    assert 10 ** (-6 / 20) - 1e-6 <= ratio <= 10 ** (6 / 20) + 1e-6
    a = augment_wave(wave, rng(5), sr, speed=0.1, band=0.5, gain=6.0)
    assert torch.equal(a, augment_wave(wave, rng(5), sr, speed=0.1, band=0.5, gain=6.0))


def test_audio_options_are_checked():
    from lkconv.modalities.audio.data import wave_aug_options

    assert wave_aug_options({}) == {"speed": 0.0, "band_limit": 0.0, "gain": 0.0, "reverb": 0.0}
    with pytest.raises(DataError, match="band_limit"):
        wave_aug_options({"band_limit": 2})


# --- point clouds ----------------------------------------------------------------------------------------------------

def test_point_dropout():
    pts = np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32)
    a, b = point_dropout(pts, rng(1), 0.5), point_dropout(pts, rng(1), 0.5)
    assert a.shape == pts.shape and a.dtype == pts.dtype and np.array_equal(a, b)
    rows = {r.tobytes() for r in pts}
    assert all(r.tobytes() in rows for r in a)  # only copies of real points (with their normals)
    assert len({r.tobytes() for r in a}) < len(rows)  # some were dropped
    assert point_dropout(pts, rng(1), 0.0) is pts
    with pytest.raises(ValueError):
        point_dropout(pts, rng(1), 1.0)


def test_pointcloud_folder_options(tmp_path):
    from lkconv.modalities.pointcloud.data import point_options

    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "r"), modality="pointcloud",
                      modality_args={"anisotropic": True, "dropout": 0.1})
    opts, _ = point_options(cfg)
    assert opts["anisotropic"] is True and opts["dropout"] == 0.1
    with pytest.raises(DataError, match="dropout"):
        point_options(cfg.replace(modality_args={"dropout": 1.5}))


# --- video -----------------------------------------------------------------------------------------------------------

def test_temporal_jitter_keeps_order():
    t = 8
    clip = torch.arange(2 * t, dtype=torch.float32).view(2 * t, 1, 1, 1).expand(2 * t, 1, 4, 4).contiguous()
    a, b = temporal_jitter(clip, rng(0), t), temporal_jitter(clip, rng(0), t)
    assert a.shape == (t, 1, 4, 4) and a.dtype == clip.dtype and torch.equal(a, b)
    idx = a[:, 0, 0, 0].long()
    assert bool((idx // 2 == torch.arange(t)).all())  # one candidate of each segment, in order
    assert temporal_jitter(clip[:t], rng(0), t) is not None and torch.equal(temporal_jitter(clip[:t], rng(0), t),
                                                                            clip[:t])
    with pytest.raises(ValueError):
        temporal_jitter(clip[:5], rng(0), t)


# --- labels are never touched ----------------------------------------------------------------------------------------

def test_sample_dataset_labels_unchanged_by_augmentation():
    data = [torch.randn(2, 40) for _ in range(6)]
    labels = [0, 1, 2, 0, 1, 2]
    ds = SampleDataset(lambda i: data[i], labels, range(6), lambda x, r: augment_series(x, r, ("slice", "warp")), 7)
    for k in range(6):
        x, y = ds[k]
        assert x.shape == (2, 40) and int(y) == labels[k]
        assert torch.equal(x, ds[k][0])  # same seed, epoch, index: same sample


# --- the automatic recipe's choice -----------------------------------------------------------------------------------

def _cfg(**kw):
    return TrainConfig(data="/nowhere", out="/tmp/x", **kw)


@pytest.mark.parametrize("modality", sorted(AUGMENTATION))
def test_augmentation_on_by_default_for_every_modality(modality):
    added, why = augmentation_defaults(_cfg(modality=modality))
    assert added == AUGMENTATION[modality][0] and why.startswith("augmentation on")
    off, why_off = augmentation_defaults(_cfg(modality=modality, augment=False))
    assert off == AUGMENTATION[modality][1] and "off" in why_off
    changes, reasons = modality_defaults(_cfg(modality=modality))
    assert all(changes["modality_args"][k] == v for k, v in added.items() if k != "rotation")
    assert any(r.startswith("augmentation on") for r in reasons)


def test_user_options_override_the_augmentation():
    added, why = augmentation_defaults(_cfg(modality="timeseries", modality_args={"aug": "slice", "noise": 0.0}))
    assert added == {"scale": 0.1} and "given in modality_args: aug, noise" in why
    added, _ = augmentation_defaults(_cfg(modality="image", modality_args={"flip": True}, augment=False))
    assert "flip" not in added and added["color"] == 0.0
    assert augmentation_defaults(_cfg(modality="timeseries", task="forecast"))[0] == {}
    assert augmentation_defaults(TrainConfig(data="builtin:gunpoint", out="/tmp/x", modality="timeseries"))[0] == {}


def test_pca_alignment_removes_the_pose():
    from lkconv.data.augment.pointcloud import random_rotation
    from lkconv.modalities.pointcloud.pose import pca_align

    g = np.random.default_rng(0)
    p = (g.normal(size=(400, 3)) * [3.0, 1.5, 0.5]).astype(np.float32)
    p[:, 0] += p[:, 0] ** 2 / 6  # skewed: every axis' sign is defined
    nrm = np.tile(np.float32([[0, 0, 1]]), (400, 1))
    a = pca_align(np.concatenate([p, nrm], 1))
    r = random_rotation(g).astype(np.float32)
    b = pca_align(np.concatenate([p @ r.T, nrm @ r.T], 1))
    assert a.shape == (400, 6) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)  # the same cloud in any pose -> the same input
    assert np.linalg.norm(a[:, :3], axis=1).max() == pytest.approx(1.0, abs=1e-5)
    var = a[:, :3].var(0)
    assert var[0] > var[1] > var[2]
    np.testing.assert_allclose(np.linalg.norm(a[:, 3:], axis=1), 1.0, atol=1e-5)


def test_align_option_is_checked(tmp_path):
    from lkconv.modalities.pointcloud.data import point_options

    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "r"), modality="pointcloud",
                      modality_args={"align": "pca"})
    assert point_options(cfg)[0]["align"] == "pca"
    with pytest.raises(DataError, match="align"):
        point_options(cfg.replace(modality_args={"align": "icp"}))


# --- time series: aug auto (check_series_aug) ------------------------------------------------------------------------

def _periodic_set(n_per_class=20, length=1000, periods=(20, 21, 22, 23, 24), seed=0):
    """The class is the period of a fine oscillation (as in ACSF1's appliance cycles): stretching or warping the
    time axis moves it to another class's period."""
    g = np.random.default_rng(seed)
    t = np.arange(length)
    xs, ys = [], []
    for label, p in enumerate(periods):
        for _ in range(n_per_class):
            xs.append(np.sin(2 * np.pi * t / p) + 0.1 * g.standard_normal(length))
            ys.append(label)
    return torch.tensor(np.array(xs), dtype=torch.float32)[:, None], ys


def _shape_set(n_per_class=20, length=150, seed=0):
    """The class is a shape (bump, dip, step) that slicing and warping keep."""
    g = np.random.default_rng(seed)
    t = np.linspace(-1, 1, length)
    shapes = [np.exp(-(t / 0.2) ** 2), -np.exp(-(t / 0.2) ** 2), (t > 0).astype(float)]
    xs, ys = [], []
    for label, s in enumerate(shapes):
        for _ in range(n_per_class):
            shift = g.uniform(-0.1, 0.1)
            xs.append(np.interp(t, t + shift, s) + 0.05 * g.standard_normal(length))
            ys.append(label)
    return torch.tensor(np.array(xs), dtype=torch.float32)[:, None], ys


def test_aug_check_drops_what_erases_the_class_and_keeps_the_rest():
    from lkconv.modalities.timeseries.augment import KEEP_SHARE, check_series_aug

    x, y = _periodic_set()
    c = check_series_aug(x, y)
    assert c.clean > 0.9 and c.chance == pytest.approx(0.2)
    assert c.kept == () and all(v["share"] < KEEP_SHARE for v in c.kinds.values()), c.summary()
    assert "dropped" in c.summary()
    x, y = _shape_set()
    c = check_series_aug(x, y)
    assert c.kept == ("slice", "warp"), c.summary()
    assert check_series_aug(x, y, seed=3).kinds == check_series_aug(x, y, seed=3).kinds  # seeded
    noise = torch.randn(40, 1, 50)  # clean 1-NN at chance: no evidence, nothing dropped
    assert check_series_aug(noise, [i % 2 for i in range(40)]).kept in (("slice", "warp"), ("slice",), ("warp",))
    assert parse_series_aug("auto") == ("slice", "warp")


def _write_univariate_ts(path, x, y):
    head = "@problemName P\n@timeStamps false\n@univariate true\n@equalLength true\n@classLabel true " + \
        " ".join(f"c{k}" for k in sorted(set(y))) + "\n@data\n"
    path.write_text(head + "".join(",".join(f"{v:.4f}" for v in row[0].tolist()) + f":c{label}\n"
                                   for row, label in zip(x, y)))


def test_aug_auto_in_the_data_layer_and_the_recorded_recipe(tmp_path):
    from lkconv.engine.recipe import resolve_run

    x, y = _periodic_set()
    _write_univariate_ts(tmp_path / "P_TRAIN.ts", x, y)
    _write_univariate_ts(tmp_path / "P_TEST.ts", x[::4], y[::4])
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="timeseries")
    r = resolve_run(cfg)
    assert r.cfg.modality_args["aug"] == "auto"
    assert r.data.notes["aug"] == "none" and "dropped" in r.data.notes["aug_check"]
    assert r.augmentation["data_aug"] == "none" and "dropped" in r.augmentation["data_aug_check"]
    x0 = r.data.train[0][0]
    assert torch.equal(r.data.train[0][0], x0)  # no slicing/warping left: the sample is the file's series
    given = resolve_run(cfg.replace(modality_args={"aug": "slice+warp"}))  # the user's choice is not checked
    assert given.data.notes["aug"] == "slice+warp" and "aug_check" not in given.data.notes


def test_image_folders_keep_decoded_bytes(tmp_path, monkeypatch):
    """Folder images are decoded once and kept as uint8 when the folder fits the cache: the samples equal a fresh
    decode, the files are not read again, and a folder too large for the budget is decoded every time."""
    from lkconv.data.readers.image import read_image
    from lkconv.modalities import build_data
    from lkconv.modalities.image import data as image_data

    root = _image_folder(tmp_path / "imgs", side=8)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), modality="image", modality_args={"aug": "none"},
                      img_size=32)
    calls = []
    real = image_data.read_image_u8
    monkeypatch.setattr(image_data, "read_image_u8", lambda p, c: calls.append(p) or real(p, c))
    b = build_data(cfg)
    first = [b.val[i][0] for i in range(len(b.val))]
    n = len(calls)
    assert [torch.equal(b.val[i][0], first[i]) for i in range(len(b.val))] == [True] * len(b.val)
    assert len(calls) == n  # served from memory
    path = calls[0]
    assert torch.equal(real(path, 1).float().div_(255.0), read_image(path, 1))  # the cached bytes are the decode
    monkeypatch.setattr(image_data, "CACHE_BYTES", 10)
    calls.clear()
    small = build_data(cfg)
    small.val[0], small.val[0]
    assert len(calls) == 2  # too large for the budget: decoded every time
