"""Errors a newcomer meets on the command line (issue 14, items 7, 9, 11, 12 and the numbers people write): each is
one ``lkconv CMD: error: ...`` line naming the file or option and what is accepted, exit 2, never a traceback."""

from pathlib import Path

import pytest

from lkconv.cli import build_parser, main

from conftest import tiny_config

TINY = "{depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], kernel_sizes: [[3], [7], [7], [7]]}"


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"lkconv {command}: error: "), err
    return last


@pytest.fixture(scope="module")
def tiny_run(image_folder, tmp_path_factory) -> Path:
    from lkconv.engine.trainer import train

    return train(tiny_config(image_folder, tmp_path_factory.mktemp("run") / "run", epochs=1))


# --- numbers: the command line reads what the YAML config reads ----------------------------------------------------

def _train_args(*argv: str):
    return build_parser().parse_args(["train", "--data", "d", "--out", "o", *argv])


def test_integer_options_take_integer_valued_floats_as_yaml_does():
    args = _train_args("--epochs", "1e3", "--batch-size", "16", "--lr", "1e-3", "--eval-every", "2.0",
                       "--max-train-samples", "12345678901234567890")
    assert args.epochs == 1000 and isinstance(args.epochs, int)
    assert args.batch_size == 16 and args.eval_every == 2 and args.lr == pytest.approx(1e-3)
    assert args.max_train_samples == 12345678901234567890  # long digit strings stay exact


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "2.5"], "argument --epochs: expected a whole number such as 100 or 1e3, got '2.5'"),
    (["--batch-size", "many"], "argument --batch-size: expected a whole number such as 100 or 1e3, got 'many'"),
    (["--lr", "fast"], "argument --lr: expected a number such as 0.001 or 1e-3, got 'fast'"),
    (["--lr", "nan"], "argument --lr: expected a number such as 0.001 or 1e-3, got 'nan'"),
])
def test_bad_numbers_name_the_option_and_what_is_accepted(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        _train_args(*argv)
    assert e.value.code == 2
    assert message in error_line(capsys, "train")


# --- item 9: malformed --model-args / --modality-args YAML ---------------------------------------------------------

@pytest.mark.parametrize("option", ["--model-args", "--modality-args"])
@pytest.mark.parametrize("text", ["{depths: [1,", "[1, 2]"])
def test_malformed_mapping_options_are_an_error_line(option, text, capsys):
    with pytest.raises(SystemExit) as e:
        _train_args(option, text)
    assert e.value.code == 2
    line = error_line(capsys, "train")
    assert f"argument {option}:" in line and "{key: value}" in line


# --- item 12: one rule for the smallest input side -----------------------------------------------------------------

def test_img_size_below_32_is_refused_by_train_as_by_info(image_folder, tmp_path, capsys):
    from lkconv.models.input_size import MIN_INPUT_SIDE, check_input_side

    assert MIN_INPUT_SIDE == 32 and check_input_side(32) == 32
    with pytest.raises(ValueError, match=r"img_size: must be >= 32 \(the networks downsample by 32\), got 7"):
        check_input_side(7)
    with pytest.raises(SystemExit):
        main(["info", "unireplknet_a", "--img-size", "7"])
    info = error_line(capsys, "info")
    assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--img-size", "7",
                 "--model-args", TINY, "--epochs", "1"]) == 2  # trained before
    train = error_line(capsys, "train")
    for line in (info, train):
        assert "must be >= 32 (the networks downsample by 32)" in line
    assert not (tmp_path / "run" / "last.pt").exists()


# --- item 11: a training batch of 1 --------------------------------------------------------------------------------

def test_batch_of_one_says_what_to_change(image_folder, tmp_path, capsys):
    argv = ["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--model-args", TINY,
            "--img-size", "32", "--epochs", "1", "--batch-size", "1", "--max-train-samples", "4", "--no-progress"]
    assert main(argv) == 2  # was: "Expected more than 1 value per channel when training" traceback
    line = error_line(capsys, "train")
    assert "batch of 1 sample(s)" in line and "--batch-size 2 or more" in line


# --- item 7: predict on a bad file and on a directory --------------------------------------------------------------

def test_predict_prints_every_good_file_and_names_the_bad_ones(tiny_run, image_folder, tmp_path, capsys):
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    good = [image_folder / "blob" / "0.png", image_folder / "vertical" / "1.png"]
    (folder / "a.png").write_bytes(good[0].read_bytes())
    (folder / "sub" / "b.png").write_bytes(good[1].read_bytes())
    (folder / "not_an_image.png").write_text("hello")
    (folder / ".hidden.png").write_text("hidden files are left out")
    capsys.readouterr()
    assert main(["predict", "--run", str(tiny_run), str(folder)]) == 2  # was: IsADirectoryError traceback
    captured = capsys.readouterr()
    predicted = [line.split("\t")[0] for line in captured.out.splitlines()]
    assert predicted == [str(folder / "a.png"), str(folder / "sub" / "b.png")]  # the good files, all printed
    err = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and ".hidden" not in captured.err
    assert err[0].startswith(f"lkconv predict: error: cannot read {folder / 'not_an_image.png'}: ")
    assert "accepted" in err[0] and ".png" in err[0]
    assert err[-1] == "lkconv predict: 1 of 3 file(s) could not be read"


def test_predict_of_only_good_files_exits_0(tiny_run, image_folder, capsys):
    assert main(["predict", "--run", str(tiny_run), str(image_folder / "blob" / "0.png")]) == 0
    assert capsys.readouterr().err == ""


def test_predict_names_a_missing_file_and_still_predicts_the_others(tiny_run, image_folder, tmp_path, capsys):
    missing = tmp_path / "missing.png"
    assert main(["predict", "--run", str(tiny_run), str(image_folder / "blob" / "0.png"), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(str(image_folder / "blob" / "0.png"))
    assert f"lkconv predict: error: cannot read {missing}: not found" in captured.err



def test_damaged_run_configs_are_named_not_tracebacks(tiny_run, image_folder, tmp_path, capsys):
    """Issue 14 probe: a cut config.yaml on --resume was a yaml ParserError traceback; a cut config.json a bare
    "Unterminated string" line naming no file."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    good_yaml = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text("data: [unclosed\n")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    line = error_line(capsys, "train")
    assert f"{run / 'config.yaml'} is not valid YAML" in line and "restore it" in line
    (run / "config.yaml").write_text(good_yaml)
    (run / "config.json").write_text((run / "config.json").read_text()[:100])
    assert main(["predict", "--run", str(run), str(image_folder / "blob" / "0.png")]) == 2
    line = error_line(capsys, "predict")
    assert f"{run / 'config.json'} is not valid JSON" in line and f"lkconv train --out {run} --resume" in line


@pytest.mark.parametrize("argv", [["train", "--epochs", "2.5"], ["predict", "x.png"], ["nonsense"]])
def test_option_errors_are_one_line_without_the_usage_block(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lkconv") and "error: " in err  # was: ~25 lines
    assert err.strip().endswith("--help)")
