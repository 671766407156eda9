"""Image folders (issue 14, items 5 and 6): the channel count is decided from the data (one colour file -> 3), said in
the data summary, overridden by ``modality_args.channels``; image ``modality_args`` are validated by name."""

from pathlib import Path

import numpy as np
import pytest

from lkconv.data.datasets import DataError
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_data


def _folder(root: Path, grey_first: bool = True, colour: bool = True) -> Path:
    """Two classes of 8 small PNGs; with ``grey_first`` a grey-level file sorts first in every class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
            img = Image.fromarray(pixels)
            if (grey_first and i == 0) or not colour:
                img = img.convert("L")
            img.save(root / cls / f"{i:02d}.png")
    return root


def _bundle(data: Path, tmp_path: Path, **modality_args):
    return build_data(TrainConfig(data=str(data), out=str(tmp_path / "run"), modality_args=modality_args))


def test_one_colour_file_makes_three_channels_even_when_a_grey_file_sorts_first(tmp_path):
    bundle = _bundle(_folder(tmp_path / "data"), tmp_path)  # was: 1 channel, from the first (grey) file
    assert bundle.adapter_args["in_chans"] == 3 and bundle.raw_shape[0] == 3
    assert bundle.preprocessing["channels"] == 3
    assert bundle.notes["channels"].startswith("3 channels:") and "colour" in bundle.notes["channels"]
    x, _ = bundle.train[0]
    assert x.shape[0] == 3


def test_an_all_grey_folder_trains_one_channel_and_says_so(tmp_path):
    bundle = _bundle(_folder(tmp_path / "data", colour=False), tmp_path)
    assert bundle.adapter_args["in_chans"] == 1
    assert bundle.notes["channels"] == "1 channel: all 16 readable files are grey-level"


def test_modality_args_channels_overrides_the_data(tmp_path):
    bundle = _bundle(_folder(tmp_path / "data"), tmp_path, channels=1)
    assert bundle.adapter_args["in_chans"] == 1 and bundle.train[0][0].shape[0] == 1
    assert "modality_args.channels" in bundle.notes["channels"]


@pytest.mark.parametrize(("args", "message"), [
    ({"chanels": 3}, r"unknown image option\(s\) \['chanels'\] for task 'classify'; accepted: aug, flip, color, channels"),  # was: ignored
    ({"channels": 2}, r"channels: 2 is not accepted; choose 1 \(grey\) or 3 \(colour\)"),  # was: stack ... size
    ({"channels": True}, r"channels: True is not accepted"),
    ({"aug": "flip"}, r"aug: 'flip' is not accepted; choose rrc, pad_crop or none"),
])
def test_bad_modality_args_are_refused_by_name(tmp_path, args, message):
    with pytest.raises(DataError, match=message):
        _bundle(_folder(tmp_path / "data"), tmp_path, **args)


def test_the_channel_sentence_is_in_the_training_summary(tmp_path, capsys):
    from lkconv.cli import main

    data = _folder(tmp_path / "data")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--img-size", "32",
                 "--model-args", "{depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], kernel_sizes: [[3], [7], [7], [7]]}",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "channels: 3 channels: 01.png is in colour" in out


def test_predict_names_what_is_wrong_and_what_is_accepted(tmp_path):
    from lkconv.modalities.image.data import load_for_predict

    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(DataError, match=r"^UnidentifiedImageError: .*; accepted: \.png, \.jpg, \.jpeg, \.bmp image"):
        load_for_predict(tmp_path / "text.png", {"channels": 3, "img_size": 32})
