"""End to end: train → run directory → eval / predict / load_run; exact resume; crashes; bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lkconv
from lkconv.cli import main
from lkconv.data import DataError
from lkconv.engine.run_dir import RunDir, RunError
from lkconv.engine.tasks.classify import ClassifyTask
from lkconv.engine.trainer import TrainingDiverged, train

from conftest import make_image_folder, tiny_config


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference_run(image_folder, tmp_path_factory) -> Path:
    return train(tiny_config(image_folder, tmp_path_factory.mktemp("ref") / "run"))


def test_run_directory_contents_and_learning(reference_run, image_folder):
    names = {p.name for p in reference_run.iterdir()}
    assert {"config.yaml", "config.json", "model.safetensors", "best.safetensors", "last.pt", "metrics.csv"} <= names
    assert "curves.png" in names  # matplotlib is installed in the test environment
    rows = read_metrics(reference_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_accuracy"]) > 0.6  # 3 classes: chance is 1/3
    state = torch.load(reference_run / "last.pt", weights_only=True)  # plain tensors and containers only
    assert state["epoch"] == 2 and set(state["rng"]) == {"torch", "numpy", "python"}
    cfg = json.loads((reference_run / "config.json").read_text())
    assert cfg["class_names"] == ["blob", "horizontal", "vertical"] and cfg["model"] == "unireplknet_a"


def test_load_run_rebuilds_from_two_files(reference_run, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((reference_run / name).read_bytes())
    model = lkconv.load_run(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    ref = lkconv.load_run(reference_run)
    torch.testing.assert_close(model(x), ref(x))
    assert model.class_names == ["blob", "horizontal", "vertical"]


def test_eval_and_predict_commands(reference_run, image_folder, capsys):
    assert main(["eval", "--run", str(reference_run)]) == 0
    metrics = json.loads((reference_run / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "loss", "num_samples"} and metrics["num_samples"] > 0
    files = sorted((image_folder / "vertical").glob("*.png"))[:2]
    capsys.readouterr()
    assert main(["predict", "--run", str(reference_run), *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(files[0]))
    cls, prob = lines[0].split("\t")[1].split()
    assert cls in ("blob", "horizontal", "vertical") and 0 < float(prob) <= 1


def test_eval_on_another_folder_with_split(reference_run, tmp_path):
    other = make_image_folder(tmp_path / "other", n_per_class=8, seed=5, split=True)
    from lkconv.engine.evaluate import evaluate_run

    metrics = evaluate_run(reference_run, str(other))
    assert metrics["num_samples"] == 6  # the val/ split: 2 per class


def test_resume_after_interruption_is_exact(reference_run, image_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_plot = RunDir.plot_curves

    def crash_after_first_epoch(self, history):
        real_plot(self, history)
        if len(history) == 1:
            raise KeyboardInterrupt  # stands in for any interruption after a completed save

    monkeypatch.setattr(RunDir, "plot_curves", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(image_folder, out))
    monkeypatch.setattr(RunDir, "plot_curves", real_plot)
    with pytest.raises(RunError, match="already holds a run"):
        train(tiny_config(image_folder, out))
    train(tiny_config(image_folder, out, resume=True))
    assert_same_run(out, reference_run)


def assert_same_run(run: Path, ref: Path) -> None:
    got, want = read_metrics(run), read_metrics(ref)
    assert [r["train_loss"] for r in got] == [r["train_loss"] for r in want]  # identical to the last digit
    a, b = load_file(str(run / "model.safetensors")), load_file(str(ref / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_during_a_save_leaves_a_resumable_run(reference_run, image_folder, tmp_path):
    """A training process killed with SIGKILL while it writes a checkpoint: resume continues exactly."""
    import yaml

    out = tmp_path / "run"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(image_folder, out)))
    env = {**os.environ, "LKCONV_TEST_SAVE_DELAY": "1.5", "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "lkconv", "train", "--config", str(cfg_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_mid_save = False
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            # the second epoch's last.pt is being written: a temp file exists beside a complete last.pt
            if (out / "last.pt").exists() and any(p.name.startswith(".last.pt.") for p in out.iterdir()):
                proc.send_signal(signal.SIGKILL)
                killed_mid_save = True
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_mid_save, f"training ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 0  # the previous save is intact
    train(tiny_config(image_folder, out, resume=True))
    assert_same_run(out, reference_run)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(image_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_loss = ClassifyTask.loss
    calls = {"n": 0}

    def loss_then_nan(self, *args):
        calls["n"] += 1
        value = real_loss(self, *args)
        return value * float("nan") if calls["n"] > 4 else value  # epoch 1 has 4 steps (27 samples / 8)

    monkeypatch.setattr(ClassifyTask, "loss", loss_then_nan)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2"):
        train(tiny_config(image_folder, out))
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_incompatible_resume_is_refused(reference_run, image_folder, tmp_path):
    out = tmp_path / "run"
    (out).mkdir()
    for name in ("last.pt", "config.json", "config.yaml"):
        (out / name).write_bytes((reference_run / name).read_bytes())
    with pytest.raises(RunError, match="another model or data"):
        train(tiny_config(image_folder, out, resume=True, model_args={**tiny_config(image_folder, out)["model_args"],
                                                                       "dims": [8, 16, 32, 72]}))
    fewer = make_image_folder(tmp_path / "two", n_per_class=8)
    import shutil
    shutil.rmtree(fewer / "blob")
    with pytest.raises(RunError, match="class_names"):
        train(tiny_config(fewer, out, resume=True))
    with pytest.raises(RunError, match="nothing to resume"):
        train(tiny_config(image_folder, tmp_path / "empty", resume=True))


def test_bad_data_is_reported(tmp_path, image_folder):
    with pytest.raises(DataError, match="data path not found"):
        train(tiny_config(tmp_path / "nope", tmp_path / "r1"))
    empty_class = make_image_folder(tmp_path / "e", n_per_class=6)
    (empty_class / "nothing").mkdir()
    with pytest.raises(DataError, match="nothing has no files"):
        train(tiny_config(empty_class, tmp_path / "r2"))
    corrupt = make_image_folder(tmp_path / "c", n_per_class=8)
    (corrupt / "blob" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        train(tiny_config(corrupt, tmp_path / "r3", on_bad_file="error", epochs=1))
    run = train(tiny_config(corrupt, tmp_path / "r4", epochs=1))  # default: skip with a counted warning
    assert (run / "model.safetensors").is_file()
    with pytest.raises(RunError, match="larger than the training set"):
        train(tiny_config(image_folder, tmp_path / "r5", batch_size=64))


def test_cli_train_with_config_file_and_override(image_folder, tmp_path):
    import yaml

    cfg = tiny_config(image_folder, tmp_path / "run", epochs=3)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--epochs", "1", "--no-progress"]) == 0
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["batch_size"] == 8 and "resolved" in resolved


def test_cli_rejects_bad_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--out", "y", "--epochs", "three"])
    assert main(["train", "--data", "x", "--out", "y", "--label-smoothing", "2"]) == 2
    assert "label_smoothing" in capsys.readouterr().err


def test_trainer_calls_post_step_after_each_optimizer_step(image_folder, tmp_path, monkeypatch):
    from lkconv.models.unireplknet import UniRepLKNet

    calls = []
    monkeypatch.setattr(UniRepLKNet, "post_step", lambda self: calls.append(1), raising=False)
    train(tiny_config(image_folder, tmp_path / "run", epochs=1))
    assert len(calls) == 27 // 8  # one per optimizer step (drop_last batches)


def test_tensorboard_logs_every_epoch(image_folder, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_config(image_folder, tmp_path / "run", epochs=2, tensorboard=True))
    logs = tmp_path / "run" / "tensorboard"
    acc = EventAccumulator(str(logs))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= tags
    rows = read_metrics(tmp_path / "run")
    events = acc.Scalars("val_accuracy")
    assert [e.step for e in events] == [1, 2]
    assert [round(e.value, 6) for e in events] == [round(float(r["val_accuracy"]), 6) for r in rows]
