"""Built-in segmentation set ``fashion-on-photos``: Fashion-MNIST items composited onto real photographs.

Real pixels on both sides, exact masks: each 64×64 image is a crop of one of scikit-learn's two bundled
photographs (``china.jpg``, ``flower.jpg``, CC BY 2.0; training crops come from the left two thirds of each photo,
validation crops from the right third, so no background pixel is shared), with one to three Fashion-MNIST items
(trouser, dress, sandal, bag; training items from its training split, validation items from its test split) scaled
by 1–1.5, tinted with a random colour and pasted where the item's grey level exceeds 20 %. The mask is exactly those
pixels (later items cover earlier ones); class 0 is the background. Generated in memory from the seed (< 2 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.datasets import DataBundle, DataError
from ..builtin import BuiltinSet, register
from .builtin import FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, _fashion_mnist_available

__all__ = ["SEGMENT_CLASSES", "make_fashion_on_photos", "photo_paths"]

ITEM_CLASSES = (1, 3, 5, 8)  # trouser, dress, sandal, bag: shapes that differ clearly
SEGMENT_CLASSES = ["background"] + [FASHION_MNIST_CLASSES[c] for c in ITEM_CLASSES]
SIZE = 64
N_TRAIN, N_VAL = 2000, 400
THRESHOLD = 0.2


def photo_paths() -> list[Path]:
    """scikit-learn's bundled photographs (installed with scikit-learn; nothing is downloaded)."""
    try:
        import sklearn
    except ImportError:
        return []
    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return [folder / n for n in ("china.jpg", "flower.jpg") if (folder / n).is_file()]


def _available() -> bool:
    return _fashion_mnist_available() and len(photo_paths()) == 2


def _photos() -> list[np.ndarray]:
    from PIL import Image

    out = []
    for p in photo_paths():
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    return out


def _items(split: str) -> tuple[np.ndarray, np.ndarray]:
    from ...data.readers.idx import read_idx

    x = read_idx(FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(FASHION_MNIST_DIR / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    keep = np.isin(y, ITEM_CLASSES)
    return x[keep], y[keep]


def _resize_item(item: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0


def make_fashion_on_photos(n: int, *, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` composited images (n, 64, 64, 3) uint8 and their masks (n, 64, 64) uint8 (class indices)."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    items, labels = _items("train" if split == "train" else "t10k")
    cls_index = {c: i + 1 for i, c in enumerate(ITEM_CLASSES)}
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    for k in range(n):
        photo = photos[k % len(photos)]
        h, w = photo.shape[:2]
        lo, hi = (0, 2 * w // 3) if split == "train" else (2 * w // 3, w)
        crop = int(rng.integers(SIZE, 2 * SIZE + 1))  # a 64..128 px region, brought to 64 px
        top = int(rng.integers(0, h - crop + 1))
        left = int(rng.integers(lo, max(lo + 1, hi - crop + 1)))
        region = photo[top : top + crop, left : left + crop]
        from PIL import Image

        bg = np.asarray(Image.fromarray((region * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR),
                        dtype=np.float32) / 255.0
        img, mask = bg.copy(), masks[k]
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(len(items)))
            side = int(rng.integers(28, 43))
            item = _resize_item(items[j], side)
            y0, x0 = int(rng.integers(0, SIZE - side + 1)), int(rng.integers(0, SIZE - side + 1))
            on = item > THRESHOLD
            tint = rng.uniform(0.3, 1.0, 3).astype(np.float32)
            patch = img[y0 : y0 + side, x0 : x0 + side]
            patch[on] = tint * (0.4 + 0.6 * item[on, None])
            mask[y0 : y0 + side, x0 : x0 + side][on] = cls_index[int(labels[j])]
        images[k] = (img.clip(0, 1) * 255).round().astype(np.uint8)
    return images, masks


def _build(cfg) -> DataBundle:
    from .segment import segment_bundle_from_arrays

    if cfg.task != "segment":
        raise DataError("builtin:fashion-on-photos is a segmentation set; use --task segment")
    tx, ty = make_fashion_on_photos(N_TRAIN, split="train", seed=0)
    vx, vy = make_fashion_on_photos(N_VAL, split="val", seed=1)
    return segment_bundle_from_arrays(tx, ty, vx, vy, SEGMENT_CLASSES, cfg, notes={"source": "fashion-on-photos"})


register(BuiltinSet(
    "fashion-on-photos", "image", "segment",
    "Fashion-MNIST items (trouser, dress, sandal, bag) composited onto crops of real photographs, exact masks, "
    "64x64, 5 classes with background",
    f"{N_TRAIN} train + {N_VAL} val, generated", "MIT (items) + CC BY 2.0 (scikit-learn's photos)",
    "apt-get install dataset-fashion-mnist; pip install scikit-learn", _available, _build,
))
