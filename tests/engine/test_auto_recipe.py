"""The automatic recipe (issue 19): its choices on data descriptions, the baselines, and default runs on tiny data."""

import csv
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from lkconv.cli import build_parser, main
from lkconv.engine.auto_recipe import (SMALL_UNIREPLKNET, WIDE_SMALL_UNIREPLKNET, DataFacts, auto_batch_size,
                                       auto_epochs, choose_recipe, modality_defaults)
from lkconv.engine.baselines import majority_accuracy, nearest_neighbour_accuracy
from lkconv.engine.config import ConfigError, TrainConfig
from lkconv.modalities.timeseries.adapter import TimeSeriesAdapter


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="/nowhere", out="/tmp/x", **kw)


def _facts(n_train, modality="timeseries", raw_shape=(1, 100), classes=(10, 10)) -> DataFacts:
    return DataFacts(modality=modality, task="classify", n_train=n_train, n_val=10, class_counts=list(classes),
                     raw_shape=raw_shape)


@pytest.mark.parametrize("n", [1, 3, 7, 20, 36, 50, 67, 270, 1352, 60000])
def test_batch_size_never_exceeds_the_training_set(n):
    b = auto_batch_size(n, "timeseries")
    assert 1 <= b <= n and b & (b - 1) == 0 and b <= 64
    if n >= 32:
        assert b <= n / 4
    assert auto_batch_size(n, "video") <= 16
    assert auto_batch_size(n, "image", "detect") == min(16, auto_batch_size(n, "image"))  # dense: more steps


def test_large_sets_of_small_samples_get_batch_128():
    """16384+ samples of <= 3x32x32 values: batch 128 (the budget binds there); larger samples, smaller sets and the
    modality caps keep their batch."""
    assert auto_batch_size(60000, "image", sample_values=1 * 32 * 32) == 128
    assert auto_batch_size(60000, "image", sample_values=3 * 32 * 32) == 128
    assert auto_batch_size(60000, "image", sample_values=3 * 64 * 64) == 64
    assert auto_batch_size(16383, "image", sample_values=1024) == 64
    assert auto_batch_size(60000, "video", sample_values=1024) == 16
    assert auto_batch_size(60000, "image", "detect", sample_values=1024) == 16
    chosen, why = choose_recipe(TrainConfig(modality="image", data="x"), _facts(60000, "image", (1, 32, 32)))
    assert chosen["batch_size"] == 128 and chosen["lr"] == pytest.approx(2e-3 * 2)  # sqrt(128 / 32)
    assert any("large set of small samples" in w for w in why)
    small = choose_recipe(TrainConfig(modality="image", data="x"), _facts(1000, "image", (1, 32, 32)))[0]
    assert small["batch_size"] == 64 and small["model_args"] == SMALL_UNIREPLKNET


def test_large_image_sets_of_small_samples_get_the_small_model_twice_as_wide():
    chosen, why = choose_recipe(TrainConfig(modality="image", data="x"), _facts(60000, "image", (1, 28, 28)))
    assert chosen["model_args"] == WIDE_SMALL_UNIREPLKNET and WIDE_SMALL_UNIREPLKNET["dims"] == [32, 64, 128, 256]
    assert WIDE_SMALL_UNIREPLKNET["depths"] == SMALL_UNIREPLKNET["depths"]
    assert chosen["lr"] == pytest.approx(2e-3 * 2)  # the small model's lr rule
    assert any("dims 32-256" in w and "twice the width" in w for w in why)
    for facts in (_facts(16383, "image", (1, 28, 28)), _facts(60000, "image", (3, 64, 64)),
                  _facts(60000, "timeseries", (1, 100))):  # fewer, larger samples, or not images: the small model
        assert choose_recipe(TrainConfig(modality=facts.modality, data="x"), facts)[0]["model_args"] == \
            SMALL_UNIREPLKNET
    given = TrainConfig(modality="image", data="x", model_args=dict(WIDE_SMALL_UNIREPLKNET))
    lr = choose_recipe(given, _facts(100, "image", (1, 28, 28)))[0]["lr"]  # given: the small model's rule as well
    assert lr == round(2e-3 * math.sqrt(16 / 32), 6)


def test_the_budget_is_10_minutes_and_15_for_dense_tasks():
    """Issue 16 states the dense targets within ~15 minutes, and dense tasks train for the whole budget (300 epochs,
    which the trainer cuts); a given --budget (0 included) is kept."""
    facts = _facts(2000, "image", (3, 64, 64))
    for task, minutes, epochs in (("classify", 10.0, auto_epochs(2000 // 64)), ("segment", 15.0, 300),
                                  ("detect", 15.0, 300)):
        chosen, why = choose_recipe(TrainConfig(modality="image", task=task, data="x"), replace(facts, task=task))
        assert chosen["budget"] == minutes and chosen["epochs"] == epochs
        assert any(f"--budget {minutes:g} min" in w for w in why)
    for given in (0.0, 3.0):
        chosen, _ = choose_recipe(TrainConfig(modality="image", task="detect", data="x", budget=given),
                                  replace(facts, task="detect"))
        assert "budget" not in chosen
    with pytest.raises(ConfigError, match="budget: must be >= 0"):
        TrainConfig.from_dict({"modality": "image", "data": "x", "out": "y", "budget": -1})


def test_small_sets_get_many_epochs_and_large_sets_few():
    assert auto_epochs(2) == 300 and auto_epochs(21) == 72 and auto_epochs(937) == 20


def test_choices_for_a_small_multivariate_series_set():
    values, reasons = choose_recipe(_cfg(modality="timeseries"), _facts(40, raw_shape=(6, 100)))
    assert values["batch_size"] == 8 and values["model"] == "unireplknet_a"
    assert values["model_args"] == SMALL_UNIREPLKNET  # the small model, with the lr rule the series panel ran with
    assert values["epochs"] == 300 and values["lr"] == pytest.approx(1e-3 * (8 / 16) ** 0.5, rel=1e-3)
    assert values["adapter_args"] == {"mapping": "square", "norm": "dataset"}
    assert values["drop_path_rate"] == 0.0 and 0 < values["warmup_epochs"] <= 2
    assert any("batch_size 8" in r for r in reasons)


def test_univariate_series_keep_the_gaf_mapping():
    values, _ = choose_recipe(_cfg(modality="timeseries"), _facts(50))
    assert "adapter_args" not in values


def test_images_get_the_small_model_and_its_lr():
    values, _ = choose_recipe(_cfg(modality="image"), _facts(1352, "image", (1, 32, 32), [135] * 10))
    assert values["model_args"] == SMALL_UNIREPLKNET and values["batch_size"] == 64
    assert values["lr"] == pytest.approx(2e-3 * (64 / 32) ** 0.5, rel=1e-3) and values["drop_path_rate"] > 0


def test_the_rule_is_deterministic():
    facts = _facts(270, raw_shape=(12, 29))
    assert choose_recipe(_cfg(modality="timeseries"), facts) == choose_recipe(_cfg(modality="timeseries"), facts)


def test_user_values_win():
    cfg = _cfg(modality="timeseries", batch_size=32, epochs=7, lr=0.01, model="unireplknet_a", warmup_epochs=1.0,
               drop_path_rate=0.2, eval_every=3, layer_decay=1.0, budget=10.0, modality_args={"norm": "instance"})
    values, _ = choose_recipe(cfg, _facts(40, raw_shape=(6, 100)))
    assert values == {}
    changes, _ = modality_defaults(_cfg(modality="pointcloud", img_size=48, modality_args={"rotation": "z"}))
    assert "img_size" not in changes and changes["modality_args"]["rotation"] == "z"
    changes, _ = modality_defaults(_cfg(modality="pointcloud", img_size=48, modality_args={"rotation": "z"},
                                        augment=False))
    assert changes["modality_args"]["rotation"] == "z"


def test_point_clouds_default_to_random_poses():
    changes, reasons = modality_defaults(_cfg(modality="pointcloud"))
    assert changes["img_size"] == 32 and changes["modality_args"]["rotation"] == "so3" and reasons
    assert changes["modality_args"]["align"] == "pca"


def test_dataset_norm_uses_the_training_statistics():
    adapter = TimeSeriesAdapter(in_chans=2, length=8, mapping="square", norm="dataset", channel_mean=[1.0, -2.0],
                                channel_std=[2.0, 4.0])
    x = torch.tensor([[[3.0] * 8, [2.0] * 8]])
    z, _, _, _ = adapter.normalise(x)
    assert torch.allclose(z, torch.tensor([[[1.0] * 8, [1.0] * 8]]))
    assert adapter.config()["channel_std"] == [2.0, 4.0]
    with pytest.raises(ValueError, match="channel_mean"):
        TimeSeriesAdapter(in_chans=2, length=8, norm="dataset").normalise(x)


def test_baselines():
    assert majority_accuracy([0, 0, 1], [0, 1, 1, 1]) == 0.25
    train = [(torch.tensor([float(i % 2), 1.0 - i % 2, 0.5]), i % 2) for i in range(10)]
    val = [(torch.tensor([1.0, 0.0, 0.4]), 1), (torch.tensor([0.0, 1.0, 0.6]), 0)]
    assert nearest_neighbour_accuracy(train, val) == 1.0


def test_help_lists_every_option_with_description_and_default():
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    options = {a.dest: a for a in train._actions if a.dest not in ("help", "config")}
    assert set(options) == {f for f in TrainConfig.__dataclass_fields__}
    for dest, action in options.items():
        assert action.help and "default:" in action.help, dest
    assert "default: auto" in options["batch_size"].help and "default: auto" in options["budget"].help
    assert "auto: 10, 15 for segment and detect" in " ".join(options["budget"].help.split())


def _series_npz(folder, n_train=20, n_val=12, channels=3):
    rng = np.random.default_rng(0)
    for split, n in (("TRAIN", n_train), ("TEST", n_val)):
        y = np.arange(n) % 2
        x = rng.normal(size=(n, channels, 30)).astype("float32") + 3.0 * y[:, None, None]
        np.savez(folder / f"Toy_{split}.npz", X=x, y=y.astype(str))
    return folder / "Toy_TRAIN.npz"


def test_default_series_run_on_20_cases(tmp_path, capsys):
    """Before the automatic recipe: `batch_size 64 is larger than the training set (20 samples)`."""
    data = _series_npz(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--modality", "timeseries", "--data", str(data), "--out", str(out), "--budget", "0.1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "train 20 samples, val 12 samples, 2 classes" in printed and "recipe (* = chosen" in printed
    assert "majority class 50.00%" in printed and "1-NN on the raw input" in printed
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["batch_size"] == 8 and config["resolved"]["auto"]["batch_size"] == 8
    assert config["resolved"]["auto"]["adapter_args"] == {"mapping": "square", "norm": "dataset"}
    assert config["resolved"]["baselines"]["majority_accuracy"] == 0.5
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["baseline_majority_accuracy"]) == 0.5 and float(rows[-1]["val_accuracy"]) >= 0.9


def test_default_image_run_on_a_small_folder(image_folder, tmp_path, capsys):
    """~28 training images: the old fixed batch 64 stopped with an error; the small model is chosen."""
    out = tmp_path / "run"
    assert main(["train", "--modality", "image", "--data", str(image_folder), "--out", str(out), "--epochs", "2",
                 "--img-size", "32", "--no-progress"]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["batch_size"] == 8 and config["model_args"] == SMALL_UNIREPLKNET
    assert "result: val accuracy" in capsys.readouterr().out


def fake_clock(monkeypatch, tick: float) -> dict:
    """The trainer's ``time.perf_counter`` replaced by a clock that advances ``clock["tick"]`` on every call (and
    whatever a test adds to ``clock["t"]``)."""
    import time as real_time

    from lkconv.engine import trainer as tr

    clock = {"t": 0.0, "tick": tick}

    class FakeTime:
        @staticmethod
        def perf_counter():
            clock["t"] += clock["tick"]
            return clock["t"]

        def __getattr__(self, name):
            return getattr(real_time, name)

    monkeypatch.setattr(tr, "time", FakeTime())
    return clock


def test_budget_is_checked_again_after_the_first_epoch(tmp_path, monkeypatch, capsys):
    """The first look at the step time (after 8 steps) may see one-off costs (decoding into the video and audio
    caches): video-pan's first steps cut 100 epochs to 58 and the run then used 137 s of its 10 minutes. A second
    look early in the second epoch re-plans the epochs from the rate then. A fake clock makes epoch 0's steps 2.5x
    slower than the later ones (it advances on every call)."""
    from lkconv.engine import trainer as tr

    clock = fake_clock(monkeypatch, tick=0.05)
    train_epoch = tr.Trainer.train_epoch

    def timed_epoch(self, epoch):
        clock["tick"] = 0.05 if epoch == 0 else 0.02
        return train_epoch(self, epoch)

    monkeypatch.setattr(tr.Trainer, "train_epoch", timed_epoch)
    data = _series_npz(tmp_path, n_train=160, n_val=8, channels=1)
    out = tmp_path / "run"
    tr.train({"data": str(data), "out": str(out), "modality": "timeseries", "batch_size": 16, "budget": 0.15,
              "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [3], [3], [3]]},
              "modality_args": {"aug": "none"}, "progress": False})
    printed = capsys.readouterr().out
    first = int(printed.split("over the --budget of 0.15 min: ")[1].split(" epochs")[0])
    assert "time estimate after the first epoch" in printed
    config = yaml.safe_load((out / "config.yaml").read_text())
    planned = auto_epochs(160 // 16)
    assert first < config["epochs"] <= planned, (first, config["epochs"])
    assert f"({config['epochs']} epochs fit" not in printed  # the message names the new number, then the old one
    assert f"{config['epochs']} epochs fit the --budget of 0.15 min (was {first})" in printed
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == config["epochs"]


@pytest.mark.parametrize("dearness, spaced", [(1.5, True), (4.0, False)])
def test_a_run_whose_evaluation_grows_ends_within_its_budget(tmp_path, monkeypatch, capsys, dearness, spaced):
    """Detection's evaluation grows as the detector learns (16 s at the end against a few at the start): the
    default detect run took 959 s of its 15 minutes. A fake clock makes every evaluation from epoch 2 on cost
    ``dearness`` training epochs. The watch cuts the epochs left; at 1.5 it also evaluates less often, at 4 it
    cannot (a run keeps at least 5 evaluations, so the few epochs that fit are all evaluated). Either way the run's clock ends within the
    budget and the last epoch is evaluated."""
    from lkconv.engine import trainer as tr

    clock = fake_clock(monkeypatch, tick=0.02)
    evaluate = tr.evaluate_model
    per_epoch = {}

    def dear_evaluation(*args, **kwargs):
        out = evaluate(*args, **kwargs)
        if per_epoch["epoch"] >= 1:
            clock["t"] += dearness * per_epoch["s"]
        return out

    train_epoch = tr.Trainer.train_epoch

    def timed_epoch(self, epoch):
        row, timing = train_epoch(self, epoch)
        per_epoch.update(s=timing["epoch_seconds"], epoch=epoch)
        return row, timing

    monkeypatch.setattr(tr, "evaluate_model", dear_evaluation)
    monkeypatch.setattr(tr.Trainer, "train_epoch", timed_epoch)
    data = _series_npz(tmp_path, n_train=160, n_val=8, channels=1)
    out = tmp_path / "run"
    budget = 0.3
    tr.train({"data": str(data), "out": str(out), "modality": "timeseries", "batch_size": 16, "budget": budget,
              "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [3], [3], [3]]},
              "modality_args": {"aug": "none"}, "progress": False})
    printed = capsys.readouterr().out
    config = yaml.safe_load((out / "config.yaml").read_text())
    planned = int(re.search(r"epoch 2/(\d+)", printed).group(1))  # the plan after the early looks
    assert "s per evaluation; " in printed, printed
    assert config["epochs"] < planned, printed  # the first plan left ~10 % for evaluation, not 1.5 or 4 epochs' worth
    assert ("evaluating every" in printed and config["eval_every"] > 1) == spaced, printed
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == config["epochs"] and rows[-1]["val_accuracy"]  # the last epoch is evaluated
    assert sum(bool(r["val_accuracy"]) for r in rows) >= min(5, len(rows))
    assert clock["t"] <= budget * 60, clock["t"]
