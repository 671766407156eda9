"""Unreadable checkpoints: pickled code is refused in lkconv's words, truncated files are named (issue 14, #8 and #13)."""

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lkconv
from lkconv.models._checkpoint import CheckpointReadError, read_safetensors_file, read_torch_file

TORCH_ADVICE = ("weights_only` set to `False", "Re-running", "add_safe_globals", "file an issue")


class Evil:
    def __reduce__(self):
        return (print, ("this must not run",))


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickled_refusal_drops_torchs_advice(tmp_path, writer):
    path = tmp_path / "evil.pth"
    if writer == "pickle":
        with open(path, "wb") as f:
            pickle.dump({"model": Evil()}, f)
    else:
        torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointReadError) as err:
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_a"), path)
    msg = str(err.value)
    assert str(path) in msg and "lkconv never unpickles code" in msg
    assert not any(a in msg for a in TORCH_ADVICE), msg
    assert err.value.__cause__ is None  # the advice must not come back through the chained exception either


def test_truncated_torch_file_is_named(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"a": torch.randn(1000)}, path)
    with pytest.raises(CheckpointReadError, match=r"w\.pt: the file is truncated or damaged.*other\.pt may be fine"):
        read_torch_file(truncate(path), hint="other.pt may be fine")
    path.write_bytes(b"")
    with pytest.raises(CheckpointReadError, match="truncated or damaged"):
        read_torch_file(path)


def test_truncated_safetensors_is_named(tmp_path):
    path = tmp_path / "model.safetensors"
    model = lkconv.create_model("unireplknet_a", num_classes=4)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    truncate(path)
    with pytest.raises(CheckpointReadError, match=r"model\.safetensors: the file is truncated or damaged"):
        read_safetensors_file(path)
    with pytest.raises(ValueError, match=r"model\.safetensors"):  # through the public loader too
        lkconv.load_checkpoint(model, path)
    with pytest.raises(FileNotFoundError):
        read_safetensors_file(tmp_path / "none.safetensors")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run directory written without training: config.json + model/best weights + a last.pt."""
    from lkconv.engine.model import build_model as build_run_model
    from lkconv.engine.run_dir import RunDir

    cfg = {"model": "unireplknet_a", "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64],
                                                     "kernel_sizes": [[3], [7], [7], [7]], "num_classes": 3,
                                                     "in_chans": 3},
           "adapter": "image", "adapter_args": {"in_chans": 3}, "task": "classify", "class_names": ["a", "b", "c"],
           "modality": "image", "raw_shape": [3, 32, 32], "preprocessing": {"img_size": 32}}
    run = RunDir(tmp_path / "run")
    run.write_config({"model": "unireplknet_a", "data": str(tmp_path / "data"), "out": str(tmp_path / "run")}, cfg)
    sd = {k: v.contiguous() for k, v in build_run_model(cfg).state_dict().items()}
    run.save_weights(sd)
    run.save_weights(sd, "best.safetensors")
    run.save_training_state({"epoch": 1, "model": sd})
    return run.path


def test_truncated_run_weights_name_the_file_and_the_intact_ones(run_dir, capsys):
    from lkconv.cli import main
    from lkconv.engine.run_dir import load_run

    assert load_run(run_dir) is not None
    truncate(run_dir / "model.safetensors")
    with pytest.raises(CheckpointReadError) as err:
        load_run(run_dir)
    msg = str(err.value)
    assert str(run_dir / "model.safetensors") in msg and "--weights best" in msg and "--weights last.pt" in msg
    assert load_run(run_dir, weights="best") is not None
    ref = load_run(run_dir, weights="best").state_dict()
    from_last = load_run(run_dir, weights="last.pt").state_dict()  # the hint's other way out works too
    assert all(torch.equal(from_last[k], v) for k, v in ref.items())
    for argv in (["predict", "--run", str(run_dir), str(run_dir / "config.json")], ["eval", "--run", str(run_dir)],
                 ["export", "--run", str(run_dir), "--out", str(run_dir / "m.onnx")]):
        assert main(argv) == 2
        err_line = capsys.readouterr().err
        assert err_line.startswith(f"lkconv {argv[0]}: error: cannot read") and "--weights best" in err_line
        assert "Traceback" not in err_line


@pytest.mark.parametrize("damage", ["poisoned", "truncated"])
def test_bad_last_pt_is_refused_naming_the_file(run_dir, damage):
    from lkconv.engine.run_dir import RunDir

    path = run_dir / "last.pt"
    if damage == "poisoned":
        torch.save({"epoch": 1, "rng": Evil()}, path)
    else:
        truncate(path)
    with pytest.raises(CheckpointReadError) as err:
        RunDir(run_dir).load_training_state()
    msg = str(err.value)
    assert str(path) in msg
    if damage == "poisoned":
        assert "lkconv never unpickles code" in msg and not any(a in msg for a in TORCH_ADVICE)
    else:
        assert "truncated" in msg and "model.safetensors" in msg


def test_poisoned_last_pt_on_resume_is_an_error_line(run_dir, tmp_path, capsys):
    from lkconv.cli import main

    torch.save({"epoch": 1, "rng": Evil()}, run_dir / "last.pt")
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    rc = main(["train", "--data", str(data), "--out", str(run_dir), "--resume", "--model", "unireplknet_a"])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and str(run_dir / "last.pt") in err and "never unpickles code" in err
    assert "this must not run" not in capsys.readouterr().out
