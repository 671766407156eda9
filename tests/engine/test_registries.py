"""The modality and task registries: a modality defined in this file alone trains, evaluates and predicts through the
public engine; every modality rejects unknown options; config choices come from the registries."""

from pathlib import Path

import numpy as np
import pytest
import torch

import lkconv
from lkconv.data.datasets import DataBundle, DataError, SampleDataset, split_class_folders
from lkconv.engine.config import ConfigError, TrainConfig
from lkconv.engine.evaluate import evaluate_run, predict_files, prediction_lines
from lkconv.engine.tasks import get_task, task_names
from lkconv.modalities import Modality, ModalityAdapter, build_data, get_modality, modality_names, register_modality
from lkconv.modalities import registry

from conftest import TINY_MODEL_ARGS, make_image_folder, tiny_config

SIDE = 8


class WaveAdapter(ModalityAdapter):
    """(B, 64) signals → (B, 1, 8, 8) maps, scaled by a fixed gain."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.out_chans = 1

    def config(self) -> dict:
        return {"gain": self.gain}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.gain).view(x.shape[0], 1, SIDE, SIDE)


def _read(path) -> torch.Tensor:
    return torch.from_numpy(np.load(path).astype(np.float32))


class WaveModality(Modality):
    """Class folders of ``.npy`` signals of 64 values; option ``gain``."""

    name = "wave"
    adapter = WaveAdapter

    def accepted_options(self, task, *, builtin=False):
        return ("gain",)

    def build_folder_data(self, cfg, *, eval_only=False, class_names=None) -> DataBundle:
        split = split_class_folders(Path(cfg.data), ("npy",), cfg, eval_only=eval_only, class_names=class_names)

        def load(i):
            return _read(split.files[i])

        train = SampleDataset(load, split.labels, split.train, None, cfg.seed) if split.train else None
        val = SampleDataset(load, split.labels, split.val, None, cfg.seed)
        return DataBundle(train, val, split.class_names, "wave", {"gain": cfg.modality_args.get("gain", 1.0)},
                          (SIDE * SIDE,))

    def load_for_predict(self, path, preprocessing):
        return _read(path)


@pytest.fixture()
def wave_registered(monkeypatch):
    """Registers the toy modality for one test only (the registry is restored afterwards)."""
    modality_names()  # load the built-in modalities first, so the copy holds them
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_modality(WaveModality)


def _wave_folder(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, SIDE * SIDE)
    for name, freq in (("slow", 2.0), ("fast", 9.0)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            signal = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6)) + rng.normal(0, 0.1, t.shape)
            np.save(root / name / f"{i}.npy", signal.astype(np.float32))
    return root


def test_a_modality_from_one_file_trains_evaluates_and_predicts(wave_registered, tmp_path):
    data = _wave_folder(tmp_path / "waves")
    out = lkconv.train({"data": str(data), "out": str(tmp_path / "run"), "modality": "wave", "epochs": 1,
                        "batch_size": 4, "model": "unireplknet_a", "model_args": TINY_MODEL_ARGS, "progress": False,
                        "modality_args": {"gain": 2.0}})
    model = lkconv.load_run(out)
    assert model.run_config["adapter"] == "wave" and model.adapter.gain == 2.0
    assert model.class_names == ["fast", "slow"]
    metrics = evaluate_run(out)
    assert metrics["num_samples"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0
    rows = predict_files(out, [data / "slow" / "0.npy"], top_k=2)
    assert {c for c, _ in rows[0]["top"]} == {"fast", "slow"}
    assert abs(sum(p for _, p in rows[0]["top"]) - 1.0) < 1e-5
    lines = prediction_lines(out, rows)
    assert len(lines) == 1 and lines[0].startswith(str(data / "slow" / "0.npy") + "\t")
    with pytest.raises(DataError, match=r"unknown wave option\(s\) \['gian'\]; accepted: gain"):
        build_data(TrainConfig.from_dict({"data": str(data), "out": "o", "modality": "wave",
                                          "modality_args": {"gian": 1}}))


def test_config_choices_come_from_the_registries(wave_registered):
    assert "wave" in modality_names() and get_modality("wave").tasks == ("classify",)
    TrainConfig.from_dict({"data": "d", "out": "o", "modality": "wave"})
    with pytest.raises(ConfigError, match="choose one of audio, image, pointcloud, timeseries, video, wave"):
        TrainConfig.from_dict({"data": "d", "out": "o", "modality": "text"})
    with pytest.raises(ConfigError, match="choose one of classify, detect, forecast, segment"):
        TrainConfig.from_dict({"data": "d", "out": "o", "task": "count"})
    with pytest.raises(ConfigError, match="forecast' needs modality 'timeseries', got modality 'wave'"):
        TrainConfig.from_dict({"data": "d", "out": "o", "modality": "wave", "task": "forecast"})
    assert task_names() == ["classify", "detect", "forecast", "segment"]


def test_image_rejects_unknown_options(tmp_path):
    folder = make_image_folder(tmp_path / "img", n_per_class=4)
    cfg = TrainConfig.from_dict(tiny_config(folder, tmp_path / "run", modality_args={"chanels": 3}))
    with pytest.raises(DataError, match=r"unknown image option\(s\) \['chanels'\] for task 'classify'; accepted: aug, flip, color, channels"):
        build_data(cfg)
    with pytest.raises(DataError, match=r"unknown image option\(s\) \['channels'\] for task 'classify'; accepted: aug, flip, color"):
        get_modality("image").check_options({"channels": 1}, "classify", builtin=True)


@pytest.mark.parametrize("name", ["image", "audio", "timeseries", "pointcloud", "video"])
def test_every_modality_rejects_unknown_options(name):
    modality = get_modality(name)
    for task in modality.tasks:
        with pytest.raises(DataError, match=r"unknown .* option\(s\) \['no_such_option'\]"):
            modality.check_options({"no_such_option": 1}, task)


def test_tasks_own_head_size_metric_direction_and_output():
    classify, forecast = get_task("classify"), get_task("forecast")
    assert (classify.best_metric, classify.higher_is_better) == ("val_accuracy", True)
    assert (forecast.best_metric, forecast.higher_is_better) == ("val_mae", False)
    assert classify.improved(0.6, 0.5) and not classify.improved(0.4, 0.5) and classify.improved(0.1, None)
    assert forecast.improved(0.4, 0.5) and not forecast.improved(0.6, 0.5)
    row = {"file": "f.csv", **forecast.decode(torch.arange(4.0), {"preprocessing": {"horizon": 2, "columns": ["a", "b"]}})}
    assert row["forecast"] == {"a": [0.0, 1.0], "b": [2.0, 3.0]}
    assert forecast.format_prediction(row) == ["f.csv\ta\t0 1", "f.csv\tb\t2 3"]
    row = {"file": "x.png", **classify.decode(torch.tensor([0.0, 2.0, 1.0]), {"class_names": ["a", "b", "c"]}, top_k=2)}
    assert [c for c, _ in row["top"]] == ["b", "c"]
    assert classify.format_prediction(row)[0].startswith("x.png\tb 0.")


def test_format_1_config_json_still_loads(tmp_path):
    """A ``config.json`` exactly as the format-1 writer left it (before the registries) rebuilds and loads."""
    import json

    from safetensors.torch import save_file

    from lkconv.engine.model import build_model

    config = {"format_version": 1, "model": "unireplknet_a",
              "model_args": {"num_classes": 3, "in_chans": 3, "drop_path_rate": 0.0, **TINY_MODEL_ARGS},
              "adapter": "image", "adapter_args": {"in_chans": 3, "mean": [0.485, 0.456, 0.406],
                                                   "std": [0.229, 0.224, 0.225]},
              "task": "classify", "class_names": ["a", "b", "c"], "modality": "image", "raw_shape": [3, 32, 32],
              "preprocessing": {"img_size": 32, "channels": 3}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(build_model(config).state_dict(), str(tmp_path / "model.safetensors"))
    model = lkconv.load_run(tmp_path)
    assert model.task == "classify" and model.class_names == ["a", "b", "c"]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
