"""Time-series modality: the map adapters, the .ts/.npz/.csv data builders, forecasting windows and baselines, the
built-in sets and tiny end-to-end runs."""

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lkconv.data.datasets import DataError
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_adapter
from lkconv.modalities.builtin import BUILTINS, builtin_names
from lkconv.modalities.timeseries.adapter import MAPPINGS, TimeSeriesAdapter, gramian_fields, masked_stats
from lkconv.modalities.timeseries.builtin import sktime_data_dir
from lkconv.modalities.timeseries.data import (
    build_data,
    fix_length,
    forecast_baselines,
    forecast_windows,
    infer_season,
    load_for_predict,
)

TINY_MODEL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [7]]}


def _cfg(tmp_path: Path, data, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(tmp_path / "run"), modality="timeseries", **kw)


# --- adapter ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mapping", MAPPINGS)
def test_mappings_shapes_and_config_roundtrip(mapping):
    a = TimeSeriesAdapter(in_chans=2, length=30, mapping=mapping, map_size=16).eval()
    out = a(torch.randn(3, 2, 30))
    expected = {"square": (3, 1, 16, 16), "fold": (3, 32, 8, 8), "gaf": (3, 6, 16, 16), "sequence": (3, 2, 30)}[mapping]
    assert out.shape == expected and a.out_chans == expected[1]
    b = build_adapter("timeseries", **a.config())
    assert b.config() == a.config()
    with pytest.raises(ValueError, match=r"expects \(B, 2, 30\)"):
        a(torch.randn(3, 1, 30))


def test_square_is_the_reference_token_layout():
    a = TimeSeriesAdapter(in_chans=1, length=10, mapping="square", embed_dim=3).eval()
    assert a.side == math.ceil(math.sqrt(30))
    x = torch.randn(2, 1, 10)
    z, _, _, _ = a.normalise(x)
    tokens = a.embed(z).transpose(1, 2).reshape(2, -1)  # (B, L·D), time-major
    out = a(x).reshape(2, -1)
    torch.testing.assert_close(out[:, :30], tokens)
    assert torch.equal(out[:, 30:], torch.zeros(2, a.side**2 - 30))


def test_gramian_fields_identities():
    z = torch.randn(2, 1, 12)
    g = gramian_fields(z)
    gasf, gadf, diff = g[:, 0], g[:, 1], g[:, 2]
    lo, hi = z.amin(-1, keepdim=True), z.amax(-1, keepdim=True)
    xt = ((z - lo) / (hi - lo) * 2 - 1)[:, 0]
    torch.testing.assert_close(torch.diagonal(gasf, dim1=-2, dim2=-1), 2 * xt**2 - 1, atol=1e-5, rtol=0)
    torch.testing.assert_close(gadf, -gadf.transpose(-1, -2))
    torch.testing.assert_close(diff, -diff.transpose(-1, -2))
    phi = torch.arccos(xt.clamp(-1, 1))
    torch.testing.assert_close(gasf, torch.cos(phi[:, :, None] + phi[:, None, :]), atol=1e-4, rtol=0)


def test_missing_values_fill_and_mask():
    x = torch.randn(2, 1, 20)
    x[0, 0, 5:9] = float("nan")
    mean, std = masked_stats(x, torch.isfinite(x))
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()
    torch.testing.assert_close(mean[0, 0, 0], torch.cat([x[0, 0, :5], x[0, 0, 9:]]).mean())
    for mapping in MAPPINGS:
        a = TimeSeriesAdapter(in_chans=1, length=20, mapping=mapping, map_size=16, mask_channel=True).eval()
        out = a(x)
        assert torch.isfinite(out).all()
    gaf = TimeSeriesAdapter(in_chans=1, length=20, map_size=20, mask_channel=True).eval()
    mask_img = gaf(x)[:, 3]
    assert mask_img[0, 6, 6] == 0 and mask_img[0, 0, 0] == 1 and (mask_img[1] == 1).all()
    empty = torch.full((1, 1, 20), float("nan"))
    assert torch.isfinite(gaf(empty)).all()


def test_augmentation_only_in_training():
    a = TimeSeriesAdapter(in_chans=1, length=24, map_size=16, noise=0.1, scale=0.2)
    x = torch.randn(4, 1, 24)
    a.eval()
    assert torch.equal(a(x), a(x))
    a.train()
    assert not torch.equal(a(x), a.eval()(x))
    f = TimeSeriesAdapter(in_chans=1, length=24, map_size=16, noise=0.1, horizon=4)
    assert torch.equal(f.train()(x), f.eval()(x))  # forecasting: no augmentation


def test_forecast_postprocess_restores_units():
    a = TimeSeriesAdapter(in_chans=2, length=12, horizon=3, map_size=16)
    raw = torch.randn(5, 2, 12) * torch.tensor([10.0, 300.0])[None, :, None] + torch.tensor([5.0, 1000.0])[:, None]
    future = torch.randn(5, 2, 3) * 50 + 500
    mean = raw.mean(-1, keepdim=True)
    std = raw.std(-1, unbiased=False, keepdim=True)
    normalised = ((future - mean) / std).reshape(5, 6)
    torch.testing.assert_close(a.postprocess(normalised, raw), future.reshape(5, 6), rtol=1e-4, atol=1e-3)
    assert a.num_outputs == 6
    plain = TimeSeriesAdapter(in_chans=2, length=12, horizon=3, norm="none")
    assert torch.equal(plain.postprocess(normalised, raw), normalised)
    cls = TimeSeriesAdapter(in_chans=2, length=12)
    assert torch.equal(cls.postprocess(normalised, raw), normalised)


def test_bad_adapter_options():
    with pytest.raises(ValueError, match="mapping='image'.*square, fold, gaf"):
        TimeSeriesAdapter(mapping="image")
    with pytest.raises(ValueError, match="norm"):
        TimeSeriesAdapter(norm="batch")


# --- classification data ----------------------------------------------------------------------------------------

TS_HEADER = """
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def _write_ts(path: Path, cases: list[tuple[list[list[float]], str]]) -> Path:
    lines = [":".join(",".join("?" if np.isnan(v) else f"{v:.4f}" for v in ch) for ch in dims) + f":{label}"
             for dims, label in cases]
    path.write_text(textwrap.dedent(TS_HEADER).lstrip() + "\n".join(lines) + "\n")
    return path


def _toy_cases(n: int, seed: int, lengths=(8, 12)) -> list:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        length = int(rng.integers(*lengths, endpoint=True))
        label = "up" if i % 2 == 0 else "down"
        ramp = np.linspace(0, 1, length) * (1 if label == "up" else -1)
        a, b = ramp + 0.05 * rng.standard_normal(length), -ramp + 0.05 * rng.standard_normal(length)
        cases.append(([a.tolist(), b.tolist()], label))
    return cases


def test_ts_folder_unequal_lengths_and_missing(tmp_path):
    cases = _toy_cases(6, 0)
    cases[0][0][0][2] = float("nan")
    _write_ts(tmp_path / "Toy_TRAIN.ts", cases)
    _write_ts(tmp_path / "Toy_TEST.ts", _toy_cases(4, 1))
    b = build_data(_cfg(tmp_path, tmp_path))
    assert b.class_names == ["up", "down"] and len(b.train) == 6 and len(b.val) == 4
    assert b.raw_shape == (2, 12) and b.notes["equal_length"] is False and b.notes["unequal"] == "resample"
    x0, y0 = b.train[0]
    assert x0.shape == (2, 12) and int(y0) == 0 and torch.isnan(x0).sum() >= 1  # the missing value stays NaN
    assert b.adapter_args["mask_channel"] is True and b.adapter_args["in_chans"] == 2
    # resample stretches the observed span: the last value of a short case lands on the last step
    short = next(i for i, c in enumerate(cases) if len(c[0][0]) < 12)
    assert b.train[short][0][1, -1] == pytest.approx(cases[short][0][1][-1], abs=1e-3)

    padded = build_data(_cfg(tmp_path, tmp_path, modality_args={"unequal": "pad", "length": 10}))
    xs = padded.train[short][0]
    n = len(cases[short][0][0])
    assert xs.shape == (2, 10) and torch.isnan(xs[:, min(n, 10):]).all()
    assert padded.preprocessing == {"length": 10, "unequal": "pad", "channels": 2, "task": "classify"}

    ev = build_data(_cfg(tmp_path, tmp_path), eval_only=True, class_names=["up", "down"])
    assert ev.train is None and len(ev.val) == 4
    with pytest.raises(DataError, match="unequal"):
        build_data(_cfg(tmp_path, tmp_path, modality_args={"unequal": "stretch"}))
    with pytest.raises(DataError, match="unknown time-series option"):
        build_data(_cfg(tmp_path, tmp_path, modality_args={"lookbak": 3}))


def test_fix_length_modes():
    x = np.array([[0.0, 1.0, 2.0, np.nan]])
    np.testing.assert_allclose(fix_length(x, 3, 5, "resample"), [[0, 0.5, 1, 1.5, 2]])
    out = fix_length(x, 3, 5, "pad")
    np.testing.assert_allclose(out[:, :3], [[0, 1, 2]])
    assert np.isnan(out[:, 3:]).all()
    np.testing.assert_allclose(fix_length(x, 3, 2, "pad"), [[0, 1]])


def test_npz_single_file_held_out_split_and_predict(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 1, 16)).astype(np.float32)
    y = np.repeat([3, 7], 10)
    np.savez(tmp_path / "set.npz", X=X, y=y)
    b = build_data(_cfg(tmp_path, tmp_path / "set.npz", val_split=0.2))
    assert b.class_names == ["3", "7"] and len(b.train) == 16 and len(b.val) == 4
    assert sorted(int(b.val[k][1]) for k in range(4)) == [0, 0, 1, 1]
    np.save(tmp_path / "one.npy", X[0, 0])
    torch.testing.assert_close(load_for_predict(tmp_path / "one.npy", b.preprocessing), torch.from_numpy(X[0]))
    np.savez(tmp_path / "two_TRAIN.npz", X=X, y=y)
    np.savez(tmp_path / "two_TEST.npz", X=X[:4], y=y[:4])
    b2 = build_data(_cfg(tmp_path, tmp_path / "two_TRAIN.npz"))
    assert len(b2.train) == 20 and len(b2.val) == 4
    assert len(build_data(_cfg(tmp_path, tmp_path)).val) == 4  # a folder with one <Name>_TRAIN file
    np.savez(tmp_path / "bad_TEST.npz", X=X[:2], y=np.array([3, 9]))
    np.savez(tmp_path / "bad_TRAIN.npz", X=X, y=y)
    with pytest.raises(DataError, match=r"labels \['9'\]"):
        build_data(_cfg(tmp_path, tmp_path / "bad_TRAIN.npz"))
    with pytest.raises(DataError, match="exactly one"):
        build_data(_cfg(tmp_path, tmp_path))


# --- forecasting ------------------------------------------------------------------------------------------------

def test_windows_have_no_leakage(tmp_path):
    t = np.arange(60, dtype=np.float64)
    csv = tmp_path / "s.csv"
    csv.write_text("a,b\n" + "\n".join(f"{v},{1000 + 2 * v}" for v in t) + "\n")
    b = build_data(_cfg(tmp_path, csv, task="forecast", lookback=12, horizon=6, modality_args={"val_steps": 12}))
    cut = 60 - 12
    assert b.task == "forecast" and b.notes["num_outputs"] == 12 and b.raw_shape == (2, 12)
    assert len(b.train) == cut - 6 - 12 + 1 and len(b.val) == 12 - 6 + 1
    for k in range(len(b.train)):
        x, y = b.train[k]
        assert y.shape == (12,) and y[:6].max() < cut and x[0, -1] + 1 == y[0]  # targets before the cut
        torch.testing.assert_close(y[6:], 1000 + 2 * y[:6])  # series-major: series b after series a
    starts = [int(b.val[k][1][0]) for k in range(len(b.val))]
    assert starts == list(range(cut, 60 - 6 + 1))  # every validation target lies in the held-out part
    assert b.notes["baselines"]["naive"]["mae"] > 0


def test_windows_drop_missing_targets():
    v = np.arange(20, dtype=np.float64)[:, None]
    v[10] = np.nan
    x, y, kept = forecast_windows(v, 4, 2, range(4, 19))
    assert all(not (t <= 10 < t + 2) for t in kept) and len(kept) == 15 - 2
    assert np.isnan(x).any()  # inputs may hold the missing value; the adapter masks it
    with pytest.raises(ValueError, match="needs 4 steps"):
        forecast_windows(v, 4, 2, [2])


def test_baselines_on_known_series():
    trend = np.arange(40, dtype=np.float64)[:, None]
    base = forecast_baselines(trend, [20, 30], horizon=6, season=4)
    assert base["naive"]["mae"] == pytest.approx(np.mean(np.arange(1, 7)))
    assert base["seasonal_naive"]["mae"] == pytest.approx((4 * 4 + 2 * 8) / 6)
    assert base["seasonal_naive"]["mse"] == pytest.approx((4 * 16 + 2 * 64) / 6)
    assert base["seasonal_naive"]["season"] == 4
    periodic = np.tile([1.0, 5.0, 2.0, 7.0], 10)[:, None]
    assert forecast_baselines(periodic, [8, 13], 5, 4)["seasonal_naive"]["mae"] == 0


def test_infer_season():
    assert infer_season(["1949-01", "1949-02"]) == 12
    assert infer_season(["1970 Q1", "1970 Q2"]) == 4
    assert infer_season(None) == 1 and infer_season(["1", "2"]) == 1


def test_forecast_errors_are_clear(tmp_path):
    csv = tmp_path / "short.csv"
    csv.write_text("v\n" + "\n".join(str(i) for i in range(20)) + "\n")
    with pytest.raises(DataError, match="training and .* validation windows"):
        build_data(_cfg(tmp_path, csv, task="forecast", lookback=12, horizon=6))
    with pytest.raises(DataError, match="table file"):
        build_data(_cfg(tmp_path, tmp_path, task="forecast"))
    with pytest.raises(DataError, match="unknown time-series option.*'unequal'"):
        build_data(_cfg(tmp_path, csv, task="forecast", lookback=4, horizon=2, modality_args={"unequal": "pad"}))


# --- built-in sets ----------------------------------------------------------------------------------------------

def test_builtins_registered():
    names = set(builtin_names())
    assert {"gunpoint", "italypowerdemand", "arrowhead", "basicmotions", "japanesevowels", "airline"} <= names
    assert BUILTINS["airline"].task == "forecast" and BUILTINS["gunpoint"].task == "classify"


@pytest.mark.skipif(sktime_data_dir() is None or not (sktime_data_dir() / "GunPoint").is_dir(),
                    reason="sktime's data files are not installed")
def test_sktime_builtins(tmp_path):
    gp = BUILTINS["gunpoint"].build(_cfg(tmp_path, "builtin:gunpoint"))
    assert len(gp.train) == 50 and len(gp.val) == 150 and gp.raw_shape == (1, 150)
    jv = BUILTINS["japanesevowels"].build(_cfg(tmp_path, "builtin:japanesevowels"))
    assert jv.raw_shape == (12, 29) and jv.notes["equal_length"] is False and len(jv.class_names) == 9
    air = BUILTINS["airline"].build(_cfg(tmp_path, "builtin:airline", task="forecast", lookback=24, horizon=12,
                                         modality_args={"val_steps": 24}))
    assert air.notes["season"] == 12 and len(air.val) == 13 and air.notes["num_outputs"] == 12
    assert air.notes["baselines"]["seasonal_naive"]["mae"] < air.notes["baselines"]["naive"]["mae"]
    with pytest.raises(DataError, match="forecasting set"):
        BUILTINS["airline"].build(_cfg(tmp_path, "builtin:airline"))


# --- end to end -------------------------------------------------------------------------------------------------

def test_classification_learns_end_to_end(tmp_path, one_thread):
    from lkconv.engine.evaluate import evaluate_run
    from lkconv.engine.trainer import train

    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        t = np.linspace(0, 1, 40)
        freq = np.where(y == 0, 2.0, 5.0)[:, None] * rng.uniform(0.9, 1.1, (n, 1))
        x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3, (n, 1))) + 0.2 * rng.standard_normal((n, 40))
        return x[:, None].astype(np.float32), y

    for split, n in (("TRAIN", 32), ("TEST", 40)):
        X, y = make(n)
        np.savez(tmp_path / f"Waves_{split}.npz", X=X, y=y)
    cfg = _cfg(tmp_path, tmp_path, model="unireplknet_a", model_args=TINY_MODEL, epochs=8, batch_size=8, lr=3e-3,
               seed=0, progress=False, modality_args={"mapping": "gaf", "map_size": 32})
    run = train(cfg)
    metrics = evaluate_run(run)
    assert metrics["num_samples"] == 40 and metrics["accuracy"] >= 0.75  # chance is 0.5


def test_forecast_end_to_end_in_original_units(tmp_path, one_thread, capsys):
    from lkconv.engine.evaluate import evaluate_run
    from lkconv.engine.trainer import train

    t = np.arange(120)
    series = 500 + 3 * t + 60 * np.sin(2 * np.pi * t / 12)
    idx = [f"{1900 + i // 12}-{i % 12 + 1:02d}" for i in t]
    csv = tmp_path / "m.csv"
    csv.write_text("month,v\n" + "\n".join(f"{d},{v:.3f}" for d, v in zip(idx, series)) + "\n")
    cfg = _cfg(tmp_path, csv, task="forecast", lookback=24, horizon=6, model="unireplknet_a", model_args=TINY_MODEL,
               epochs=6, batch_size=8, lr=3e-3, seed=0, progress=False,
               modality_args={"mapping": "square", "map_size": 16, "val_steps": 18})
    run = train(cfg)
    metrics = evaluate_run(run)
    saved = json.loads((Path(run) / "metrics.json").read_text())
    assert saved["baselines"]["seasonal_naive"]["season"] == 12
    assert saved["baselines"]["seasonal_naive"]["mae"] == pytest.approx(36.0)  # a year of trend: 12 · 3
    assert np.isfinite(metrics["mae"]) and metrics["num_samples"] == 13 * 6
    # in the data's units, and already better than repeating last year (which misses a year of trend)
    assert metrics["mae"] < saved["baselines"]["seasonal_naive"]["mae"]
    _check_forecast_predict(run, tmp_path, idx, series, capsys)


def _check_forecast_predict(run, tmp_path, idx, series, capsys):
    """``predict`` on a forecasting run gives the horizon's raw values in the data's units (no softmax)."""
    from lkconv.cli import main
    from lkconv.engine.evaluate import predict_files
    from lkconv.engine.run_dir import load_run

    files = []
    for end in (100, 114):  # history up to step `end`; the forecast is for steps end .. end + 5
        f = tmp_path / f"history{end}.csv"
        f.write_text("month,v\n" + "\n".join(f"{d},{v:.3f}" for d, v in zip(idx[:end], series[:end])) + "\n")
        files.append(f)
    rows = predict_files(run, files)
    model = load_run(run)
    for f, row, end in zip(files, rows, (100, 114)):
        assert row["file"] == str(f) and "top" not in row and list(row["forecast"]) == ["v"]
        values = np.array(row["forecast"]["v"])
        assert values.shape == (6,)
        lookback = torch.tensor(np.round(series[end - 24 : end], 3), dtype=torch.float32)[None, None]
        np.testing.assert_allclose(values, model(lookback)[0].detach().numpy(), rtol=1e-5, atol=1e-4)
        truth = series[end : end + 6]
        assert np.abs(values - truth).mean() < 36.0  # the data's units (≈ 800), better than seasonal naive's 36
    capsys.readouterr()
    assert main(["predict", "--run", str(run), str(files[0])]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    name_file, series_name, numbers = line[0].split("\t")
    assert name_file == str(files[0]) and series_name == "v"
    np.testing.assert_allclose([float(v) for v in numbers.split()], rows[0]["forecast"]["v"], rtol=1e-5)


def test_an_object_array_in_an_npz_names_the_file_and_the_key(tmp_path):
    """Issue 14: numpy's "Object arrays cannot be loaded when allow_pickle=False" said neither file nor key."""
    np.savez(tmp_path / "set_TRAIN.npz", X=np.zeros((6, 8), np.float32), y=np.arange(6) % 2)
    np.savez(tmp_path / "set_TEST.npz", X=np.array([object()] * 3, dtype=object), y=np.arange(3) % 2)
    with pytest.raises(DataError, match=r"set_TEST\.npz: cannot read 'X' \(Object arrays .*\); accepted: numeric"):
        build_data(_cfg(tmp_path, tmp_path))
    np.savez(tmp_path / "set_TEST.npz", X=np.zeros((3, 8), np.float32), y=np.array([object()] * 3, dtype=object))
    with pytest.raises(DataError, match=r"set_TEST\.npz: cannot read 'y'"):
        build_data(_cfg(tmp_path, tmp_path))


@pytest.mark.parametrize(("name", "message"), [
    ("cube.npy", r"^array of shape \(2, 3, 4\) and dtype float32; accepted: numeric \(channels, length\)"),
    ("strings.npy", r"^array of shape \(3,\) and dtype <U1; accepted: numeric"),
    ("junk.npy", r"^ValueError: .*; accepted: \.ts or \.npz files of one case"),
    ("two.npy", r"^2 channel\(s\)/series; accepted: 1, as the run was trained on$"),
])
def test_predict_names_what_is_wrong_and_what_is_accepted(tmp_path, name, message):
    if name == "cube.npy":
        np.save(tmp_path / name, np.zeros((2, 3, 4), np.float32))
    elif name == "strings.npy":
        np.save(tmp_path / name, np.array(["a", "b", "c"]))
    elif name == "two.npy":
        np.save(tmp_path / name, np.zeros((2, 8), np.float32))
    else:
        (tmp_path / name).write_bytes(b"\x93NUMPY junk")
    with pytest.raises(DataError, match=message):
        load_for_predict(tmp_path / name, {"channels": 1, "length": 8, "unequal": "resample"})


def test_gaf_mean_downsampling_keeps_a_short_spike_that_linear_sampling_skips():
    from lkconv.modalities.timeseries.adapter import TimeSeriesAdapter, resample_mean

    x = torch.zeros(1, 1, 1460)
    x[..., 700:705] = 10.0  # a 5-step spike between two of linear sampling's 64 sampling instants
    # each of the 64 outputs averages its ~23 input steps: the spike's mass (50) spread over one segment
    assert resample_mean(x, 64).amax() == pytest.approx(50 / 23, rel=0.1)
    from lkconv.modalities.timeseries.adapter import resample_linear
    assert resample_linear(x, 64).amax() == 0
    assert torch.equal(resample_mean(x[..., :32], 64), resample_linear(x[..., :32], 64))  # lengthening: linear
    lin = TimeSeriesAdapter(length=1460, downsample="linear").eval()
    avg = TimeSeriesAdapter(length=1460, downsample="mean").eval()
    assert avg.config()["downsample"] == "mean"
    assert not torch.allclose(lin(x), avg(x))
    with pytest.raises(ValueError, match="downsample='max' is not accepted; choose one of linear, mean"):
        TimeSeriesAdapter(downsample="max")
