"""Tests of the cue-conflict shape-bias evaluation with fake classifiers and tiny generated PNGs."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lkconv.analysis.imagenet16 import CATEGORIES, CATEGORY_INDICES
from lkconv.analysis.shape_bias import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    evaluate_shape_bias,
    imagenet_to_16,
    list_cue_conflict,
    load_png,
    parse_cue_conflict_name,
    shape_bias_from_decisions,
)

try:
    import PIL  # noqa: F401

    HAVE_PIL = True
except ImportError:
    HAVE_PIL = False
needs_pil = pytest.mark.skipif(not HAVE_PIL, reason="reading PNGs needs Pillow")

STEP = 10  # pixel value step that encodes a category index in a colour channel


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """A minimal PNG writer: 8-bit RGB, no filtering, one IDAT chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].astype(np.uint8).tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _make_stimuli(root: Path, pairs: list[tuple[str, str]]) -> None:
    """Writes uniform 12x12 images whose red channel encodes the shape index and green the texture index."""
    for n, (shape, texture) in enumerate(pairs, start=1):
        rgb = np.zeros((12, 12, 3), dtype=np.uint8)
        rgb[..., 0] = STEP * CATEGORIES.index(shape)
        rgb[..., 1] = STEP * CATEGORIES.index(texture)
        (root / shape).mkdir(exist_ok=True)
        _write_png(root / shape / f"{shape}{n}-{texture}{n + 1}.png", rgb)


class _CueReader(nn.Module):
    """A fake ImageNet classifier that reads the encoded categories back and votes for shape, texture or a fixed one."""

    def __init__(self, follow: str) -> None:
        super().__init__()
        self.follow = follow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        codes = ((x * std + mean).mean(dim=(2, 3)) * 255 / STEP).round().long()
        logits = torch.zeros(x.shape[0], 1000)
        for row, (shape_idx, texture_idx, _) in enumerate(codes.tolist()):
            target = {"shape": shape_idx, "texture": texture_idx, "oven": CATEGORIES.index("oven")}[self.follow]
            logits[row, list(CATEGORY_INDICES[CATEGORIES[target]])] = 20.0
        return logits


PAIRS = [("cat", "elephant"), ("cat", "cat"), ("dog", "bird"), ("car", "clock"), ("truck", "knife"), ("bear", "bear")]


@needs_pil
@pytest.mark.parametrize(("follow", "expected"), [("shape", 1.0), ("texture", 0.0)])
def test_fake_models_give_extreme_bias(tmp_path: Path, follow: str, expected: float) -> None:
    _make_stimuli(tmp_path, PAIRS)
    result = evaluate_shape_bias(_CueReader(follow), tmp_path, batch_size=3, img_size=8)
    assert result["shape_bias"] == expected
    assert result["texture_bias"] == 1.0 - expected
    assert result["num_images"] == 6 and result["num_dropped"] == 2 and result["num_conflict"] == 4
    assert result["shape_decisions"] + result["texture_decisions"] == 4
    assert result["shape_accuracy"] == expected
    json.dumps(result)


@needs_pil
def test_same_category_images_are_dropped(tmp_path: Path) -> None:
    _make_stimuli(tmp_path, [("cat", "cat"), ("bear", "bear"), ("dog", "bird")])
    result = evaluate_shape_bias(_CueReader("texture"), tmp_path, img_size=12)
    # A texture follower would score the two same-category images as shape decisions if they were kept.
    assert result["shape_decisions"] == 0 and result["texture_decisions"] == 1 and result["num_dropped"] == 2
    assert set(result["per_shape_category"]) == {"dog"}


@needs_pil
def test_other_decisions_are_ignored(tmp_path: Path) -> None:
    _make_stimuli(tmp_path, [("cat", "elephant"), ("dog", "bird")])
    result = evaluate_shape_bias(_CueReader("oven"), tmp_path, img_size=12)
    assert result["other_decisions"] == 2 and result["shape_bias"] is None and result["shape_accuracy"] == 0.0


def test_aggregation_is_the_mean() -> None:
    probs = torch.zeros(1, 1000)
    probs[0, list(CATEGORY_INDICES["dog"])] = 0.005  # 109 classes: sum 0.545, mean 0.005
    probs[0, CATEGORY_INDICES["airplane"][0]] = 0.1  # 1 class: sum = mean = 0.1
    probs[0, 0] = 1.0 - probs.sum()  # tench belongs to no category
    averaged = imagenet_to_16(probs)[0]
    assert averaged[CATEGORIES.index("dog")].item() == pytest.approx(0.005)
    assert averaged[CATEGORIES.index("airplane")].item() == pytest.approx(0.1)
    assert CATEGORIES[int(averaged.argmax())] == "airplane"  # a sum would pick dog


def test_table_and_names() -> None:
    assert len(CATEGORIES) == 16 and sum(len(v) for v in CATEGORY_INDICES.values()) == 207
    all_indices = [i for v in CATEGORY_INDICES.values() for i in v]
    assert len(set(all_indices)) == 207 and min(all_indices) >= 0 and max(all_indices) < 1000
    assert parse_cue_conflict_name("cat3-elephant2.png") == ("cat", "elephant")
    assert parse_cue_conflict_name("some/dir/airplane10-airplane1.png") == ("airplane", "airplane")
    for bad in ("cat3.png", "cat3-zebra1.png", "cat-dog-bird.png"):
        with pytest.raises(ValueError, match="cat3-elephant2|accepted categories"):
            parse_cue_conflict_name(bad)


@needs_pil
def test_layout_checks_and_png_reader(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images"):
        list_cue_conflict(tmp_path)
    (tmp_path / "dog").mkdir()
    _write_png(tmp_path / "dog" / "cat1-dog2.png", np.full((4, 6, 3), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="folder 'dog'"):
        list_cue_conflict(tmp_path)
    image = load_png(tmp_path / "dog" / "cat1-dog2.png")
    assert image.shape == (3, 4, 6) and torch.all(image == 1.0)


def test_decision_scoring_directly() -> None:
    result = shape_bias_from_decisions(
        ["cat", "elephant", "dog", "cat"], ["cat", "cat", "dog", "cat"], ["elephant", "elephant", "dog", "knife"]
    )
    assert result["num_dropped"] == 1 and result["shape_decisions"] == 2 and result["texture_decisions"] == 1
    assert result["shape_bias"] == pytest.approx(2 / 3)
    cat = result["per_shape_category"]["cat"]
    assert cat == {"shape": 2, "texture": 1, "other": 0, "shape_bias": pytest.approx(2 / 3)}
