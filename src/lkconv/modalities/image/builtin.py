"""Built-in image sets (``--data builtin:NAME``): Fashion-MNIST from the Debian package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.datasets import DataBundle
from ...data.readers.idx import read_idx
from ..builtin import BuiltinSet, register
from .data import image_bundle_from_arrays

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle boot"]


def _fashion_mnist_available() -> bool:
    return (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()


def _build_fashion_mnist(cfg) -> DataBundle:
    def read(split: str) -> tuple[np.ndarray, np.ndarray]:
        return (read_idx(FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz"),
                read_idx(FASHION_MNIST_DIR / f"{split}-labels-idx1-ubyte.gz").astype(np.int64))

    tx, ty = read("train")
    vx, vy = read("t10k")
    return image_bundle_from_arrays(tx, ty, vx, vy, FASHION_MNIST_CLASSES, cfg, notes={"source": "fashion-mnist"})


register(BuiltinSet(
    "fashion-mnist", "image", "classify", "Zalando Fashion-MNIST: 28x28 grey clothing images, 10 classes",
    "60 000 train + 10 000 test", "MIT", "apt-get install dataset-fashion-mnist", _fashion_mnist_available,
    _build_fashion_mnist,
))
