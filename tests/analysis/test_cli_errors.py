"""The analysis commands as a newcomer meets them: clear `lkconv CMD: error:` lines, no silent nonsense (issue 14)."""

import json
from pathlib import Path

import pytest

from lkconv.cli import main


def make_run(root: Path, kernel_sizes=([3], [7], [7], [7])) -> Path:
    """A 32 px image run directory written without training (config.json + weights)."""
    from lkconv.engine.model import build_model as build_run_model
    from lkconv.engine.run_dir import RunDir

    cfg = {"model": "unireplknet_a", "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64],
                                                     "kernel_sizes": [list(k) for k in kernel_sizes],
                                                     "num_classes": 3, "in_chans": 3},
           "adapter": "image", "adapter_args": {"in_chans": 3}, "task": "classify", "class_names": ["a", "b", "c"],
           "modality": "image", "raw_shape": [3, 32, 32], "preprocessing": {"img_size": 32}}
    run = RunDir(root / "tiny_run")
    run.write_config({"model": "unireplknet_a"}, cfg)
    run.save_weights({k: v.contiguous() for k, v in build_run_model(cfg).state_dict().items()})
    return run.path


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path)


def error_of(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"lkconv {command}: error: "), err
    assert "Traceback" not in err
    return err


def test_erf_without_a_model_is_an_error(tmp_path, capsys):
    assert main(["erf", "--out", str(tmp_path / "erf")]) == 2
    err = error_of(capsys, "erf")
    assert "--model" in err and "--run" in err
    assert not (tmp_path / "erf" / "erf.json").exists()


def test_erf_refuses_options_that_would_be_ignored(tmp_path, capsys):
    assert main(["erf", "--model", "unireplknet_a", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--data" in error_of(capsys, "erf")
    assert main(["erf", "--model", "unireplknet_a", "inception_next_atto", "--checkpoint", "w.pth",
                 "--out", str(tmp_path)]) == 2
    assert "--checkpoint" in error_of(capsys, "erf")

@pytest.mark.parametrize(("argv", "message"), [
    (["erf", "--model", "unireplknet_a", "--num-inputs", "0"], "argument --num-inputs: must be >= 1, got 0"),
    (["erf", "--model", "unireplknet_a", "--input-size", "0"], "argument --input-size: must be >= 32"),
    (["erf", "--model", "unireplknet_a", "--input-size", "x"], "argument --input-size: expected an integer"),
    (["profile", "--model", "unireplknet_a", "--repeats", "0"], "argument --repeats: must be >= 1, got 0"),
    (["profile", "--model", "unireplknet_a", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["profile", "--model", "unireplknet_a", "--img-size", "0"], "argument --img-size: must be >= 32"),
    (["shape-bias", "--model", "unireplknet_a", "--checkpoint", "w.pth", "--data", ".", "--img-size", "0"],
     "argument --img-size: must be >= 32"),
    (["filters", "--model", "unireplknet_a", "--min-kernel-size", "0"], "argument --min-kernel-size: must be >= 1"),
])
def test_out_of_range_numbers_are_refused_by_name(argv, message, capsys):
    """Before: --input-size 0 measured at 224 px silently, --repeats 0 said 'no median for empty data', --batch-size 0
    printed a profile of nothing, --img-size 0 gave PyTorch's kernel-size message."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"lkconv {argv[0]}: error: {message}" in capsys.readouterr().err


def test_checkpoint_with_another_head_says_which_num_classes(tmp_path, capsys):
    import lkconv
    from safetensors.torch import save_file

    model = lkconv.create_model("unireplknet_a", num_classes=10)
    path = tmp_path / "ten.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    out = str(tmp_path / "f")
    assert main(["filters", "--model", "unireplknet_a", "--checkpoint", str(path), "--out", out]) == 2
    assert "--num-classes 10" in error_of(capsys, "filters")
    assert main(["filters", "--model", "unireplknet_a", "--checkpoint", str(path), "--num-classes", "10",
                 "--min-kernel-size", "5", "--out", out]) == 0


def test_shape_bias_names_an_unreadable_image(tmp_path, capsys):
    import lkconv
    from safetensors.torch import save_file

    path = tmp_path / "a.safetensors"
    save_file({k: v.contiguous() for k, v in lkconv.create_model("unireplknet_a").state_dict().items()}, str(path))
    (tmp_path / "cc" / "cat").mkdir(parents=True)
    (tmp_path / "cc" / "cat" / "cat1-dog1.png").write_text("not a png")
    assert main(["shape-bias", "--model", "unireplknet_a", "--checkpoint", str(path), "--data", str(tmp_path / "cc"),
                 "--img-size", "32"]) == 2
    assert "cat1-dog1.png as an image" in error_of(capsys, "shape-bias")


def test_erf_of_a_run_uses_the_runs_input_size(run_dir, tmp_path, capsys):
    assert main(["erf", "--run", str(run_dir), "--num-inputs", "1", "--out", str(tmp_path / "erf")]) == 0
    result = json.loads((tmp_path / "erf" / "erf.json").read_text())["tiny_run"]
    assert (result["height"], result["width"]) == (32, 32)
    assert "32x32 input" in capsys.readouterr().out
    assert main(["erf", "--run", str(run_dir), "--input-size", "64", "--num-inputs", "1",
                 "--out", str(tmp_path / "erf")]) == 0  # an explicit size still wins
    assert json.loads((tmp_path / "erf" / "erf.json").read_text())["tiny_run"]["height"] == 64


def test_filters_headers_are_whole(tmp_path, capsys):
    assert main(["filters", "--model", "unireplknet_a", "--min-kernel-size", "5", "--out", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:2] == ["layer", "k"]
    assert {"effective_radius", "effective_radius_ratio", "spectral_entropy", "degenerate_share"} <= set(header)


def test_filters_without_matching_kernels_is_an_error(tmp_path, capsys):
    assert main(["filters", "--model", "unireplknet_a", "--min-kernel-size", "99", "--out", str(tmp_path)]) == 2
    assert ">= 99" in error_of(capsys, "filters")


def test_filters_refuses_checkpoint_with_run(run_dir, tmp_path, capsys):
    assert main(["filters", "--run", str(run_dir), "--checkpoint", "w.pth", "--out", str(tmp_path)]) == 2
    assert "--checkpoint" in error_of(capsys, "filters")


def test_profile_explains_the_gap_between_latency_and_layers(tmp_path, capsys):
    assert main(["profile", "--model", "unireplknet_a", "--img-size", "32", "--repeats", "1",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sum of layers" not in out and "outside them" in out and "residual adds" in out
    data = json.loads((tmp_path / "profile.json").read_text())
    assert data["outside_layers_s"] == pytest.approx(
        max(data["profiled_latency_s"] - data["sum_layer_latency_s"], 0.0))
    assert data["profiled_latency_s"] >= data["sum_layer_latency_s"] * 0.999


def test_data_list_columns_line_up(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    header = lines[0]
    starts = [header.index(col) for col in ("modality", "task", "installed", "licence", "size")]
    for line in lines[1:]:
        for start in starts:  # every column starts where its header does, after a space
            assert line[start - 1] == " " and line[start] != " ", (line, start)


def test_version(capsys):
    import lkconv

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lkconv {lkconv.__version__}"


def test_erf_of_a_sequence_model(tmp_path, capsys):
    """Before: noise images of 3 x 224 x 224 met a (B, 1, L) model: 'expected input (B, 1, L) ...'."""
    assert main(["erf", "--model", "sgconvnet_tiny", "--input-size", "64", "--num-inputs", "1",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "erf.json").read_text())["sgconvnet_tiny"]
    assert (result["height"], result["width"]) == (1, 64)
    assert "1x64 input" in capsys.readouterr().out


def test_erf_keeps_both_of_two_sources_with_one_name(run_dir, tmp_path, capsys):
    """Before: two runs named alike (runs/a/x, runs/b/x) printed two lines but erf.json kept only the last."""
    assert main(["erf", "--run", str(run_dir), str(run_dir), "--num-inputs", "1", "--out", str(tmp_path)]) == 0
    assert set(json.loads((tmp_path / "erf.json").read_text())) == {"tiny_run", "tiny_run-2"}
    assert (tmp_path / "erf_tiny_run-2.png").is_file() and (tmp_path / "erf_comparison.png").is_file()


def test_profile_of_a_sequence_model(tmp_path, capsys):
    """Before: a 3 x 224 x 224 image met a (B, 1, L) model: 'expected input (B, 3, L) ...'."""
    assert main(["profile", "--model", "sgconvnet_tiny", "--img-size", "64", "--repeats", "1",
                 "--out", str(tmp_path)]) == 0
    assert "sgconvnet_tiny input [1, 1, 64]" in capsys.readouterr().out
    assert json.loads((tmp_path / "profile.json").read_text())["input_shape"] == [1, 1, 64]


def test_filters_of_a_model_with_only_small_kernels_draws_them(tmp_path, capsys):
    """Before: filters.json was written, then the picture of kernels >= 5 found none: exit 2."""
    run = make_run(tmp_path, kernel_sizes=([3], [3], [3], [3]))
    assert main(["filters", "--run", str(run), "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "kernels.png").is_file()
    assert len(json.loads((tmp_path / "f" / "filters.json").read_text())) == 4


def test_a_runs_weights_given_as_checkpoint_point_to_run(run_dir, tmp_path, capsys):
    assert main(["filters", "--model", "unireplknet_a", "--checkpoint", str(run_dir / "model.safetensors"),
                 "--out", str(tmp_path)]) == 2
    assert f"give --run {run_dir.resolve()}" in error_of(capsys, "filters")


def test_shape_bias_says_why_it_is_undefined(tmp_path, capsys, monkeypatch):
    import torch

    import lkconv
    from lkconv.analysis import shape_bias
    from safetensors.torch import save_file

    path = tmp_path / "a.safetensors"
    save_file({k: v.contiguous() for k, v in lkconv.create_model("unireplknet_a").state_dict().items()}, str(path))
    (tmp_path / "cc" / "cat").mkdir(parents=True)
    (tmp_path / "cc" / "cat" / "cat1-dog1.png").write_bytes(b"")
    monkeypatch.setattr(shape_bias, "load_png", lambda p: torch.rand(3, 32, 32))
    monkeypatch.setattr(shape_bias, "imagenet_to_16", lambda p: torch.eye(16)[[0]])  # 'airplane': neither cue
    assert main(["shape-bias", "--model", "unireplknet_a", "--checkpoint", str(path), "--data", str(tmp_path / "cc"),
                 "--img-size", "32"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["shape_bias"] is None
    assert "shape bias undefined: none of the 1 cue-conflict decisions" in captured.err
