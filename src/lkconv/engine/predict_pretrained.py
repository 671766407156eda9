"""``lkconv predict --model TAG``: class predictions of published weights, preprocessed as ``pretrained_cfg`` says.

The evaluation transform of a ``pretrained_cfg`` (timm's convention, the reference's numbers):

* ``crop_mode: center``: resize the shorter side to ``floor(size / crop_pct)`` (224 / 0.875 = 256), keeping the
  aspect ratio, then take the centre ``size`` x ``size`` crop;
* ``crop_mode: squash``: resize to ``size`` x ``size`` (the reference's evaluation at 384);
* then scale to [0, 1] and normalise with ``mean``/``std``. Resizing uses Pillow's filter named by ``interpolation``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["pretrained_transform", "predict_with_pretrained", "class_names_of"]


def _resize_filter(name: str):
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
    if name not in filters:
        raise ValueError(f"pretrained_cfg interpolation {name!r} is not accepted; choose one of {', '.join(filters)}")
    return filters[name]


def pretrained_transform(path: str | Path, cfg: dict[str, Any]) -> torch.Tensor:
    """The (C, size, size) normalised input of the image file ``path`` for a model with ``pretrained_cfg`` ``cfg``.

    One input channel reads the file as grey levels, three as RGB (any other count repeats the grey levels).
    """
    from ..data.readers.image import _pil

    image_mod = _pil()
    chans, size = int(cfg["input_size"][0]), int(cfg["input_size"][-1])
    resample = _resize_filter(cfg["interpolation"])
    with image_mod.open(path) as im:
        im = im.convert("RGB" if chans == 3 else "L")
        if cfg["crop_mode"] == "squash":
            im = im.resize((size, size), resample)
        elif cfg["crop_mode"] == "center":
            scale = int(math.floor(size / cfg["crop_pct"]))
            w, h = im.size
            if w <= h:
                new_w, new_h = scale, int(scale * h / w)
            else:
                new_w, new_h = int(scale * w / h), scale
            im = im.resize((new_w, new_h), resample)
            left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
            im = im.crop((left, top, left + size, top + size))
        else:
            raise ValueError(f"pretrained_cfg crop_mode {cfg['crop_mode']!r} is not accepted; choose center or squash")
        arr = np.asarray(im, dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).float().div_(255.0)
    x = x.permute(2, 0, 1) if x.dim() == 3 else x[None]
    if x.shape[0] != chans:
        x = x[:1].repeat(chans, 1, 1)
    mean = torch.tensor(cfg["mean"], dtype=x.dtype).view(-1, 1, 1)
    std = torch.tensor(cfg["std"], dtype=x.dtype).view(-1, 1, 1)
    return (x - mean) / std


def class_names_of(cfg: dict[str, Any]) -> list[str]:
    """Names of the model's outputs: ImageNet-1k's table, else ``"<label set> #i"`` / ``"class i"``."""
    from ..models.imagenet_classes import imagenet_class_names

    label_set = cfg.get("label_set")
    if label_set is None:  # a new head: its classes have no names here
        return [f"class {i}" for i in range(int(cfg["num_classes"]))]
    return imagenet_class_names(label_set, int(cfg["num_classes"]))


@torch.no_grad()
def predict_with_pretrained(model: nn.Module, files: list[str | Path], *, top_k: int = 5,
                            errors: list[tuple[str, str]] | None = None,
                            device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """One ``{"file", "top"}`` row per readable image, ``top`` holding ``top_k`` (class name, probability) pairs.

    A directory stands for the files under it. An unreadable file is appended to ``errors`` as ``(name, reason)``
    when a list is given, else raises ``ValueError`` naming it.
    """
    from .evaluate import expand_inputs

    cfg = model.pretrained_cfg
    names = class_names_of(cfg)
    model = model.eval().to(device)
    rows = []
    for f in expand_inputs(files):
        try:
            x = pretrained_transform(f, cfg)
        except Exception as e:  # noqa: BLE001 - any decoder error: the file is not a usable image
            if errors is None:
                raise ValueError(f"cannot read {f}: {type(e).__name__}: {e}") from e
            errors.append((str(f), f"{type(e).__name__}: {e}"))
            continue
        probs = torch.softmax(model(x[None].to(device)).float()[0].cpu(), dim=-1)
        p, idx = probs.topk(min(top_k, probs.numel()))
        rows.append({"file": str(f), "top": [(names[i], float(q)) for q, i in zip(p.tolist(), idx.tolist())]})
    return rows
