"""Shape bias on the texture/shape cue-conflict images (Geirhos et al., ICLR 2019).

Each cue-conflict image has the shape of one of 16 categories and the texture of another. An ImageNet-1k classifier's
1000-way softmax is mapped to the 16 categories by **averaging** the probabilities of each category's ImageNet classes
(the model-vs-human default; the mean does not favour categories with many classes such as dog or bird), and the
argmax is the decision. Images whose shape and texture categories are equal carry no conflict and are dropped. Of the
rest, a decision equal to the shape category is a shape decision, one equal to the texture category a texture decision,
and any other decision is ignored::

    shape_bias = shape decisions / (shape decisions + texture decisions)

The images are expected as ``<root>/<shape category>/<shape><n>-<texture><m>.png``, e.g. ``cat/cat3-elephant2.png``.
Reading PNGs needs Pillow (``pip install pillow``; it is also installed with ``lkconv[plot]``, as matplotlib needs it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lkconv.analysis.imagenet16 import CATEGORIES, CATEGORY_INDICES, NUM_IMAGENET_CLASSES

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CueConflictImage",
    "evaluate_shape_bias",
    "imagenet_to_16",
    "list_cue_conflict",
    "load_png",
    "parse_cue_conflict_name",
    "preprocess",
    "shape_bias_from_decisions",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_NAME_PART = re.compile(r"([a-z]+)(\d*)")


@dataclass(frozen=True)
class CueConflictImage:
    """One stimulus: its file, shape category and texture category."""

    path: Path
    shape: str
    texture: str


def _category(part: str, filename: str) -> str:
    match = _NAME_PART.fullmatch(part)
    if match is None or match.group(1) not in CATEGORY_INDICES:
        raise ValueError(f"cannot read a category from {part!r} in {filename!r}; accepted categories: {CATEGORIES}")
    return match.group(1)


def parse_cue_conflict_name(filename: str | Path) -> tuple[str, str]:
    """Reads the shape and texture categories from a stimulus file name.

    Args:
        filename: A name such as ``cat3-elephant2.png`` (a path is fine; only its name is read).

    Returns:
        ``(shape, texture)``, e.g. ``("cat", "elephant")``.

    Raises:
        ValueError: If the name is not ``<category><n>-<category><m>.<ext>`` with two of the 16 categories.
    """
    stem = Path(filename).stem
    parts = stem.split("-")
    if len(parts) != 2:
        raise ValueError(f"expected a file name like 'cat3-elephant2.png' (shape-texture), got {Path(filename).name!r}")
    return _category(parts[0], stem), _category(parts[1], stem)


def list_cue_conflict(root: str | Path) -> list[CueConflictImage]:
    """Lists the stimuli under ``<root>/<shape category>/*.png``, sorted by path.

    Folders whose name is not one of the 16 categories are ignored.

    Raises:
        ValueError: If there are no images, or a file's shape category differs from its folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"cue-conflict root {str(root)!r} is not a directory")
    images = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in CATEGORY_INDICES):
        for path in sorted(folder.glob("*.png")):
            shape, texture = parse_cue_conflict_name(path.name)
            if shape != folder.name:
                raise ValueError(f"{path} has shape category {shape!r} but lies in folder {folder.name!r}")
            images.append(CueConflictImage(path, shape, texture))
    if not images:
        raise ValueError(f"no images found as <root>/<category>/*.png under {str(root)!r}; categories: {CATEGORIES}")
    return images


def load_png(path: str | Path) -> torch.Tensor:
    """Reads an image file as an RGB float tensor (3, H, W) in [0, 1].

    Raises:
        ImportError: If Pillow is not installed.
        ValueError: If the file cannot be read as an image (named in the message).
    """
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("reading PNG images needs Pillow: pip install pillow (or pip install lkconv[plot])") from err
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as err:  # PIL.UnidentifiedImageError, truncated files, unreadable paths
        raise ValueError(f"cannot read {path} as an image ({err}); replace or remove the file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def preprocess(
    image: torch.Tensor,
    img_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Resizes an image (bilinear, antialiased) to ``img_size`` x ``img_size`` and normalises it.

    Args:
        image: (C, H, W) in [0, 1].
        img_size: Output side. The stimuli are square, so no crop is taken.
        mean: Per-channel mean.
        std: Per-channel standard deviation.

    Returns:
        The (C, img_size, img_size) model input.
    """
    if image.shape[-2:] != (img_size, img_size):
        image = F.interpolate(
            image[None], size=(img_size, img_size), mode="bilinear", antialias=True, align_corners=False
        )[0]
    mean_t = torch.tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype).view(-1, 1, 1)
    return (image - mean_t) / std_t


def _averaging_matrix() -> torch.Tensor:
    matrix = torch.zeros(NUM_IMAGENET_CLASSES, len(CATEGORIES), dtype=torch.float64)
    for column, name in enumerate(CATEGORIES):
        indices = CATEGORY_INDICES[name]
        matrix[list(indices), column] = 1.0 / len(indices)
    return matrix


def imagenet_to_16(probs: torch.Tensor) -> torch.Tensor:
    """Maps ImageNet-1k probabilities to the 16 categories by averaging each category's class probabilities.

    Args:
        probs: (B, 1000) softmax probabilities.

    Returns:
        (B, 16) averaged probabilities, columns in the order of ``imagenet16.CATEGORIES`` (alphabetical).
    """
    if probs.dim() != 2 or probs.shape[1] != NUM_IMAGENET_CLASSES:
        raise ValueError(f"expected (B, {NUM_IMAGENET_CLASSES}) ImageNet probabilities, got {tuple(probs.shape)}")
    matrix = _averaging_matrix().to(probs.device)
    return (probs.double() @ matrix).to(probs.dtype)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def shape_bias_from_decisions(
    decisions: Sequence[str],
    shapes: Sequence[str],
    textures: Sequence[str],
) -> dict[str, Any]:
    """Scores 16-class decisions against the shape and texture labels.

    Trials whose shape equals their texture are dropped here (so callers may pass them in).

    Args:
        decisions: The predicted category of each image.
        shapes: The shape category of each image.
        textures: The texture category of each image.

    Returns:
        A JSON-serialisable dict: ``shape_bias`` (``None`` when no decision matched shape or texture),
        ``texture_bias``, the counts ``num_images``, ``num_dropped`` (shape == texture), ``num_conflict``,
        ``shape_decisions``, ``texture_decisions``, ``other_decisions``, ``shape_accuracy`` and ``texture_accuracy``
        (shares of the conflict images), and ``per_shape_category``: the same counts and ``shape_bias`` for each shape
        category.
    """
    if not len(decisions) == len(shapes) == len(textures):
        raise ValueError(
            f"decisions, shapes and textures differ in length: {len(decisions)}, {len(shapes)}, {len(textures)}"
        )
    counts = {name: {"shape": 0, "texture": 0, "other": 0} for name in CATEGORIES}
    dropped = 0
    for decision, shape, texture in zip(decisions, shapes, textures, strict=True):
        if shape == texture:
            dropped += 1
            continue
        kind = "shape" if decision == shape else "texture" if decision == texture else "other"
        counts[shape][kind] += 1
    n_shape = sum(c["shape"] for c in counts.values())
    n_texture = sum(c["texture"] for c in counts.values())
    n_other = sum(c["other"] for c in counts.values())
    n_conflict = n_shape + n_texture + n_other
    shape_bias = _ratio(n_shape, n_shape + n_texture)
    per_category = {
        name: {**c, "shape_bias": _ratio(c["shape"], c["shape"] + c["texture"])}
        for name, c in counts.items()
        if sum(c.values())
    }
    return {
        "shape_bias": shape_bias,
        "texture_bias": None if shape_bias is None else 1.0 - shape_bias,
        "num_images": len(decisions),
        "num_dropped": dropped,
        "num_conflict": n_conflict,
        "shape_decisions": n_shape,
        "texture_decisions": n_texture,
        "other_decisions": n_other,
        "shape_accuracy": _ratio(n_shape, n_conflict),
        "texture_accuracy": _ratio(n_texture, n_conflict),
        "per_shape_category": per_category,
    }


@torch.no_grad()
def evaluate_shape_bias(
    model: nn.Module,
    root: str | Path,
    *,
    batch_size: int = 16,
    img_size: int = 224,
    device: str | torch.device = "cpu",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, Any]:
    """Measures the shape bias of an ImageNet-1k classifier on the cue-conflict images under ``root``.

    Images with equal shape and texture categories are dropped before inference. The model is moved to ``device`` and
    run in eval mode (its train/eval mode is restored afterwards).

    Args:
        model: A classifier returning (B, 1000) ImageNet logits from ``model(x)``.
        root: Folder laid out as ``<root>/<shape category>/<shape><n>-<texture><m>.png``.
        batch_size: Images per forward pass.
        img_size: Side the images are resized to (bilinear, antialiased).
        device: Device to run on.
        mean: Normalisation mean (ImageNet by default).
        std: Normalisation standard deviation (ImageNet by default).

    Returns:
        The dict of :func:`shape_bias_from_decisions`, where ``num_images`` counts all images found.

    Raises:
        ValueError: On a bad layout or file name, a non-positive ``batch_size``, or a model that does not return
            1000 logits.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = list_cue_conflict(root)
    conflict = [image for image in images if image.shape != image.texture]
    was_training = model.training
    model.to(device).eval()
    decisions: list[str] = []
    try:
        for start in range(0, len(conflict), batch_size):
            batch = conflict[start : start + batch_size]
            x = torch.stack([preprocess(load_png(image.path), img_size, mean, std) for image in batch]).to(device)
            logits = model(x)
            if logits.dim() != 2 or logits.shape[1] != NUM_IMAGENET_CLASSES:
                raise ValueError(
                    f"shape bias needs a classifier with {NUM_IMAGENET_CLASSES} ImageNet classes; the "
                    f"model returned logits of shape {tuple(logits.shape)}"
                )
            categories = imagenet_to_16(logits.float().softmax(dim=1)).argmax(dim=1).tolist()
            decisions += [CATEGORIES[c] for c in categories]
    finally:
        model.train(was_training)
    result = shape_bias_from_decisions(decisions, [i.shape for i in conflict], [i.texture for i in conflict])
    result["num_images"] = len(images)
    result["num_dropped"] = len(images) - len(conflict)
    return result
