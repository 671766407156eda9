"""Tiny image data and a tiny UniRepLKNet so training tests take seconds."""

from pathlib import Path

import numpy as np
import pytest

TINY_MODEL_ARGS = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [7]]}


def make_image_folder(root: Path, n_per_class: int = 12, size: int = 16, seed: int = 0, split: bool = False) -> Path:
    """Three visually distinct classes (horizontal stripes, vertical stripes, a bright centre) with noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = {
        "horizontal": (yy // 2) % 2,
        "vertical": (xx // 2) % 2,
        "blob": ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(float),
    }
    for cls, pat in patterns.items():
        for i in range(n_per_class):
            sub = ("train" if i < n_per_class * 3 // 4 else "val") if split else ""
            folder = root / sub / cls if sub else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            img = np.clip(pat * 0.8 + rng.normal(0, 0.15, pat.shape) + 0.1, 0, 1)
            Image.fromarray((img * 255).astype(np.uint8), mode="L").convert("RGB").save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


def tiny_config(data: Path, out: Path, **kw) -> dict:
    cfg = {"data": str(data), "out": str(out), "modality": "image", "model": "unireplknet_a",
           "model_args": TINY_MODEL_ARGS, "epochs": 3, "batch_size": 8, "lr": 3e-3, "img_size": 32,
           "progress": False, "seed": 0}
    cfg.update(kw)
    return cfg
