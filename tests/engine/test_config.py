import pytest
import yaml

from lkconv.engine.config import ConfigError, TrainConfig, load_config


def test_unknown_key_names_close_match():
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*did you mean epochs"):
        TrainConfig.from_dict({"data": "d", "out": "o", "epoch": 3})


@pytest.mark.parametrize("key,value,msg", [
    ("epochs", "3", "epochs expects int"), ("epochs", 0, "epochs: must be >= 1"), ("lr", -1.0, "lr: must be > 0"),
    ("modality", "text", "choose one of audio, image, pointcloud, timeseries, video"), ("label_smoothing", 1.0, r"label_smoothing: must be in \[0, 1\)"),
    ("amp", "yes", "amp expects bool"), ("model_args", [1], "model_args expects dict"),
    ("warmup_epochs", 5.0, "warmup_epochs: must be below epochs"),
])
def test_bad_values_are_rejected_with_the_key(key, value, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig.from_dict({"data": "d", "out": "o", "epochs": 5, key: value})


def test_required_and_combinations():
    with pytest.raises(ConfigError, match="data: required"):
        TrainConfig.from_dict({"out": "o"})
    with pytest.raises(ConfigError, match="forecast' needs modality 'timeseries'"):
        TrainConfig.from_dict({"data": "d", "out": "o", "task": "forecast"})


def test_yaml_then_command_line_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": "d", "out": "o", "epochs": 7, "lr": 0.01}))
    cfg = load_config(path, {"epochs": 2})
    assert cfg.epochs == 2 and cfg.lr == 0.01
    path.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
