"""Fine-tuning from published weights (issue 15): the recipe's fine-tuning defaults, config checks, and
``lkconv train --pretrained TAG`` on tiny image folders (colour, and grey through the 1-channel stem)."""

from pathlib import Path

import pytest
import torch
import yaml

from conftest import make_image_folder
from lkconv.cli import main
from lkconv.engine.auto_recipe import FINETUNE_LAYER_DECAY, DataFacts, auto_lr, choose_recipe
from lkconv.engine.config import ConfigError, TrainConfig
from lkconv.engine.run_dir import load_run
from lkconv.models import create_model


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="/nowhere", out="/tmp/x", **kw)


def _facts(channels: int = 3, n_train: int = 600) -> DataFacts:
    return DataFacts(modality="image", task="classify", n_train=n_train, n_val=50, class_counts=[n_train // 3] * 3,
                     raw_shape=(channels, 64, 64))


def test_fine_tuning_defaults():
    scratch, _ = choose_recipe(_cfg(), _facts())
    tuned, reasons = choose_recipe(_cfg(pretrained="unireplknet_a.in1k"), _facts())
    assert tuned["model"] == "unireplknet_a" and "model_args" not in tuned  # never the small model
    assert tuned["lr"] == pytest.approx(0.25 * auto_lr(tuned["batch_size"], False), rel=1e-4)
    assert tuned["lr"] < scratch["lr"] and tuned["warmup_epochs"] <= 1.0 < scratch["warmup_epochs"]
    assert tuned["layer_decay"] == FINETUNE_LAYER_DECAY < 1.0 == scratch["layer_decay"]
    assert any("fine-tuning unireplknet_a.in1k" in r for r in reasons)
    grey, _ = choose_recipe(_cfg(pretrained="unireplknet_a.in1k"), _facts(channels=1))
    assert grey["adapter_args"] == {"mean": [0.449], "std": [0.226]}  # ImageNet's averaged
    given, _ = choose_recipe(_cfg(pretrained="unireplknet_a.in1k", lr=0.01, layer_decay=1.0, warmup_epochs=3.0),
                             _facts())
    assert "lr" not in given and "layer_decay" not in given and "warmup_epochs" not in given


def test_config_checks_the_tag():
    with pytest.raises(ConfigError, match="pretrained: unknown pretrained tag 'unireplknet_a.in22k'"):
        _cfg(pretrained="unireplknet_a.in22k").validate()
    with pytest.raises(ConfigError, match="model: 'unireplknet_t' differs from the architecture"):
        _cfg(pretrained="unireplknet_a.in1k", model="unireplknet_t").validate()
    with pytest.raises(ConfigError, match="pretrained_file: given without pretrained"):
        _cfg(pretrained_file="x.pth").validate()
    _cfg(pretrained="unireplknet_a", model="unireplknet_a").validate()  # the architecture's default tag


@pytest.fixture(scope="module")
def standin_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    model = create_model("unireplknet_a")
    path = tmp_path_factory.mktemp("weights") / "unireplknet_a_in1k_224_acc77.03.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


@pytest.mark.parametrize("channels", [3, 1])
def test_train_pretrained_starts_from_the_weights(tmp_path, standin_file, channels, one_thread):
    path, sd = standin_file
    data = make_image_folder(tmp_path / "data", n_per_class=4, size=32)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--pretrained", "unireplknet_a.in1k",
            "--pretrained-file", str(path), "--epochs", "1", "--batch-size", "8", "--lr", "1e-9", "--img-size", "32",
            "--no-progress", "--val-split", "0.25"]
    if channels == 1:
        args += ["--modality-args", "{channels: 1}"]
    assert main(args) == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["pretrained"] == "unireplknet_a.in1k" and recorded["model"] == "unireplknet_a"
    cfg = recorded["resolved"]["pretrained_cfg"]
    assert cfg["tag"] == "unireplknet_a.in1k" and cfg["file"] == str(path) and cfg["input_size"][0] == channels
    assert cfg["num_classes"] == 3 and cfg["label_set"] is None  # a new head for the folder's classes
    model = load_run(out)
    assert model.run_config["pretrained_cfg"] == cfg
    params = dict(model.backbone.named_parameters())
    assert params["head.weight"].shape == (3, 320)
    stem = sd["downsample_layers.0.0.weight"]
    want = stem if channels == 3 else stem.sum(1, keepdim=True)
    torch.testing.assert_close(params["downsample_layers.0.0.weight"].detach(), want, rtol=0, atol=1e-6)
    for name, p in params.items():  # lr 1e-9: every backbone weight is still the published one
        if not name.startswith(("head.", "downsample_layers.0.0.")):
            torch.testing.assert_close(p.detach(), sd[name], rtol=0, atol=1e-6)
    if channels == 1:
        assert model.adapter.config()["mean"] == pytest.approx([0.449])


def test_train_pretrained_time_series_adapts_the_stem_to_the_adapter(tmp_path, standin_file, one_thread):
    """Other modalities reach the weights through their adapter's channel count (here a Gramian-field map)."""
    import numpy as np

    from lkconv.models.pretrained import adapt_input_conv

    path, sd = standin_file
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", X=rng.standard_normal((16, 1, 24)).astype(np.float32), y=np.arange(16) % 2)
    out = tmp_path / "run"
    assert main(["train", "--modality", "timeseries", "--data", str(tmp_path / "set.npz"), "--out", str(out),
                 "--pretrained", "unireplknet_a.in1k", "--pretrained-file", str(path), "--epochs", "1",
                 "--batch-size", "8", "--lr", "1e-9", "--no-progress", "--modality-args",
                 "{mapping: gaf, map_size: 32}"]) == 0
    model = load_run(out)
    chans = model.adapter.out_chans
    assert model.run_config["pretrained_cfg"]["input_size"][0] == chans
    torch.testing.assert_close(model.backbone.downsample_layers[0][0].weight.detach(),
                               adapt_input_conv(sd["downsample_layers.0.0.weight"], chans), rtol=0, atol=1e-6)


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_dense_tasks_start_from_the_pretrained_backbone(tmp_path, standin_file, task, one_thread):
    """--pretrained gives a segmentation or detection run the published backbone (its head starts from scratch)."""
    path, sd = standin_file
    if task == "segment":
        from test_segment_task import _folder

        data = _folder(tmp_path / "data")
    else:
        from test_detect_task import _write_split

        _write_split(tmp_path / "data" / "train", 8, 0)
        _write_split(tmp_path / "data" / "val", 4, 1)
        data = tmp_path / "data"
    out = tmp_path / "run"
    assert main(["train", "--task", task, "--data", str(data), "--out", str(out), "--pretrained", "unireplknet_a.in1k",
                 "--pretrained-file", str(path), "--epochs", "1", "--batch-size", "4", "--lr", "1e-9",
                 "--img-size", "64", "--no-progress"]) == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["resolved"]["pretrained_cfg"]["tag"] == "unireplknet_a.in1k"
    weights = {k.split("downsample_layers.", 1)[1]: v for k, v in load_run(out).backbone.state_dict().items()
               if "downsample_layers." in k and k.endswith("weight")}
    assert len(weights) >= 8
    for key, value in weights.items():  # lr 1e-9: the trained backbone is still the file's
        torch.testing.assert_close(value, sd["downsample_layers." + key], atol=1e-5, rtol=0)
