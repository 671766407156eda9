"""Built-in video sets (``--data builtin:NAME``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...data.datasets import DataBundle, SampleDataset, limit_splits
from ..builtin import BuiltinSet, register
from ..image.builtin import FASHION_MNIST_DIR
from .data import video_options

__all__ = ["MOVING_FASHION_DIRECTIONS", "moving_fashion_clip"]


# --------------------------------------------------------------------------------------------- moving-fashion
# label k: motion direction at angle k·360°/D, counter-clockwise from "right" (image rows grow downwards)
MOVING_FASHION_DIRECTIONS = {
    8: ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"],
    4: ["right", "up", "left", "down"],
}
_CANVAS, _FRAMES = 64, 16
_MF_TRAIN_SEED, _MF_VAL_SEED = 11, 2_000_003


def moving_fashion_clip(image: np.ndarray, direction: int, directions: int, rng: np.random.Generator,
                        num_frames: int = _FRAMES, canvas: int = _CANVAS) -> np.ndarray:
    """One clip: ``image`` (28×28 uint8) moving on a wrapping ``canvas``² plane in direction ``direction`` of
    ``directions``, speed 1.5–3 px/frame, uniform random start, random brightness 0.7–1.

    Returns:
        float32 (num_frames, canvas, canvas) in [0, 1].
    """
    angle = 2 * np.pi * direction / directions
    speed = rng.uniform(1.5, 3.0)
    vel = np.array([-np.sin(angle), np.cos(angle)]) * speed  # (row, col) per frame; "up" is -row
    start = rng.uniform(0, canvas, size=2)
    base = np.zeros((canvas, canvas), np.float32)
    h, w = image.shape
    base[:h, :w] = image.astype(np.float32) / 255.0 * rng.uniform(0.7, 1.0)
    frames = np.empty((num_frames, canvas, canvas), np.float32)
    for t in range(num_frames):
        r, c = np.round(start + t * vel).astype(int) % canvas
        frames[t] = np.roll(base, (r, c), axis=(0, 1))
    return frames


def _fashion_images(split: str) -> np.ndarray:
    from ...data.readers.idx import read_idx

    return read_idx(FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz")


def _build_moving_fashion(cfg) -> DataBundle:
    opts, adapter_args = video_options(cfg, builtin=True)
    d, t, c, size = opts["directions"], opts["num_frames"], opts["channels"], opts["img_size"]
    images = {"train": _fashion_images("train"), "val": _fashion_images("t10k")}
    labels_tr = [i % d for i in range(opts["train_clips"])]
    labels_va = [i % d for i in range(opts["val_clips"])]
    tr_idx, va_idx = limit_splits(range(len(labels_tr)), range(len(labels_va)), labels_tr, cfg, val_labels=labels_va)

    def make(split: str):
        pool = images[split]

        def tf(i: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
            idx = int(i)
            img = pool[int(rng.integers(len(pool)))]
            clip = torch.from_numpy(moving_fashion_clip(img, idx % d, d, rng, num_frames=t))[:, None]
            if size != _CANVAS:
                clip = F.interpolate(clip, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            return clip.expand(-1, c, -1, -1).contiguous() if c != 1 else clip

        return tf

    def load(i: int) -> torch.Tensor:
        return torch.tensor(i)

    def describe(i: int) -> str:
        return f"moving-fashion clip {i}"

    train = SampleDataset(load, labels_tr, tr_idx, make("train"), _MF_TRAIN_SEED * 1_000_003 + cfg.seed, describe)
    val = SampleDataset(load, labels_va, va_idx, make("val"), _MF_VAL_SEED, describe)
    return DataBundle(train, val, list(MOVING_FASHION_DIRECTIONS[d]), "video", adapter_args, (t, c, size, size),
                      notes={"train_samples": len(train), "val_samples": len(val), "source": "moving-fashion"},
                      preprocessing={"img_size": size, "num_frames": t, "channels": c, "decode_size": size})


register(BuiltinSet(
    "moving-fashion", "video", "classify",
    "Moving Fashion-MNIST: a Fashion-MNIST object moving over 16 frames of 64x64; label = motion direction (8); a "
    "single frame cannot tell it",
    "4000 + 1000 clips, generated", "MIT (Fashion-MNIST)",
    "apt-get install dataset-fashion-mnist", lambda: (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    _build_moving_fashion,
))
