"""Segmentation data for the image modality (``--task segment``).

Folder contract::

    DATA/train/images/<name>.{png,jpg,jpeg,bmp}    DATA/train/masks/<name>.png
    DATA/val/images/<name>.…                       DATA/val/masks/<name>.png      (optional; else a seeded split)
    DATA/classes.txt                                (optional: one class name per line, in index order)

A mask pixel is the class index of the image pixel at the same place; 255 marks pixels to ignore. Without
``classes.txt`` the classes are ``class0 … classN`` with N the largest index in the training masks. An image
without a mask (or a mask without an image), an image and mask of different sizes, a mask that is not one channel,
or a class index outside the classes is named in a :class:`DataError`, or with ``on_bad_file: skip`` left out
and counted.

Samples travel as one (C + 1, H, W) tensor (image channels, then the mask) so that the joint augmentation of
:mod:`lkconv.data.augment.segment` moves both; :class:`PairDataset` splits them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.augment.segment import IGNORE_INDEX, eval_resize, photometric, random_scale_crop, split_pair
from ...data.datasets import DataBundle, DataError, SampleDataset, limit_splits, stratified_split
from ...data.readers.image import data_channels, read_image
from ...models.input_size import check_input_side

__all__ = ["build_segment_data", "segment_bundle_from_arrays", "load_for_predict", "read_mask", "PairDataset",
           "DEFAULT_SEGMENT_SIZE"]

log = logging.getLogger("lkconv.data")

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp")
DEFAULT_SEGMENT_SIZE = 256  # the longest default training crop for folders (time on a CPU)


class PairDataset(SampleDataset):
    """A :class:`SampleDataset` of (C + 1, H, W) image+mask tensors that yields ``(image, mask)``."""

    def __getitem__(self, k: int):
        _, pair = self._read(k)
        return split_pair(pair)

    def targets(self) -> list[Any]:  # no per-sample class: the stratified helpers see one group
        return [0] * len(self.indices)


def read_mask(path: str | Path) -> np.ndarray:
    """A class-index mask PNG as an (H, W) uint8 array (grey or palette PNGs; palette indices are the classes)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16", "1"):
            raise DataError(f"mask {path} is a {im.mode} image; a mask must be one channel of class indices "
                            "(a grey or palette PNG, 255 = ignore)")
        arr = np.asarray(im)
    if arr.max(initial=0) > 255:
        raise DataError(f"mask {path} has values above 255; class indices must be 0..254 (255 = ignore)")
    return arr.astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _scan_split(root: Path, on_bad_file: str, skipped: list[tuple[str, str]]) -> list[tuple[Path, Path]]:
    """Pairs (image, mask) of ``root/images`` and ``root/masks`` matched by stem; mismatches named or skipped."""
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DataError(f"segmentation data needs {img_dir}/<name>.{{png,jpg,...}} and {mask_dir}/<name>.png; "
                            f"{d} is missing")
    images = {p.stem: p for p in sorted(img_dir.iterdir())
              if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.is_file() and p.suffix.lower() == ".png"}
    problems = [(str(images[s]), "no mask " + str(mask_dir / f"{s}.png")) for s in sorted(set(images) - set(masks))]
    problems += [(str(masks[s]), f"no image {s}.* in {img_dir}") for s in sorted(set(masks) - set(images))]
    pairs = []
    for stem in sorted(set(images) & set(masks)):
        try:
            isz, msz = _image_size(images[stem]), _image_size(masks[stem])
        except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
            problems.append((str(images[stem]), f"unreadable: {type(e).__name__}: {e}"))
            continue
        if isz != msz:
            problems.append((str(masks[stem]), f"mask is {msz[1]}x{msz[0]}, image is {isz[1]}x{isz[0]}"))
            continue
        pairs.append((images[stem], masks[stem]))
    if problems:
        if on_bad_file == "error":
            lines = "\n  ".join(f"{f}: {why}" for f, why in problems[:10])
            more = f"\n  … ({len(problems)} in all)" if len(problems) > 10 else ""
            raise DataError(f"{root}: {len(problems)} image/mask pair problem(s):\n  {lines}{more}\n(on_bad_file: skip "
                            "leaves them out with a counted warning)")
        skipped.extend(problems)
    return pairs


def _class_names(root: Path, masks: list[Path], given: list[str] | None) -> list[str]:
    if given is not None:
        return list(given)
    txt = root / "classes.txt"
    if txt.is_file():
        names = [line.strip() for line in txt.read_text().splitlines() if line.strip()]
        if not names:
            raise DataError(f"{txt} is empty; one class name per line, in index order")
        return names
    top = 0
    for m in masks:
        values = np.unique(read_mask(m))
        values = values[values != IGNORE_INDEX]
        top = max(top, int(values.max(initial=0)))
    return [f"class{i}" for i in range(top + 1)]


def _check_values(pairs: list[tuple[Path, Path]], n_classes: int, on_bad_file: str,
                  skipped: list[tuple[str, str]]) -> list[tuple[Path, Path]]:
    """Drops (or names, under ``error``) masks with class indices outside 0..n_classes-1 and 255."""
    kept = []
    for img, mask in pairs:
        values = np.unique(read_mask(mask))
        bad = [int(v) for v in values if v != IGNORE_INDEX and v >= n_classes]
        if bad:
            why = f"class values {bad[:5]} outside 0..{n_classes - 1} (and {IGNORE_INDEX} = ignore)"
            if on_bad_file == "error":
                raise DataError(f"mask {mask}: {why}; list the classes in classes.txt or fix the mask "
                                "(on_bad_file: skip leaves such pairs out with a counted warning)")
            skipped.append((str(mask), why))
            continue
        kept.append((img, mask))
    return kept


def _transforms(size: int, aug: str | None) -> tuple[Callable, Callable, str]:
    aug = aug or "scale_crop"
    if aug not in ("scale_crop", "none"):
        raise DataError(f"modality_args.aug: {aug!r} is not accepted for segmentation; choose scale_crop or none")

    def train_tf(pair, rng):
        if aug == "none":
            return eval_resize(pair, size)
        return photometric(random_scale_crop(pair, size, rng), rng)

    def eval_tf(pair, rng):
        return eval_resize(pair, size)

    return train_tf, eval_tf, aug


def _bundle(train: PairDataset | None, val: PairDataset, names: list[str], channels: int, size: int,
            notes: dict[str, Any]) -> DataBundle:
    return DataBundle(train, val, names, "image", {"in_chans": channels}, (channels, size, size), task="segment",
                      notes=notes, preprocessing={"img_size": size, "channels": channels, "task": "segment"})


def _split_indices(n: int, cfg) -> tuple[list[int], list[int]]:
    tr, va = stratified_split([0] * n, cfg.val_split, cfg.seed)
    return tr, va


def build_segment_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The segmentation folder contract (module docstring) as a :class:`DataBundle` with ``task="segment"``."""
    root = Path(cfg.data)
    skipped: list[tuple[str, str]] = []
    has_split = (root / "train").is_dir()
    if eval_only:
        split_root = root / "val" if (root / "val").is_dir() else (root / "train" if has_split else root)
        train_pairs, val_pairs = [], _scan_split(split_root, cfg.on_bad_file, skipped)
    elif has_split:
        train_pairs = _scan_split(root / "train", cfg.on_bad_file, skipped)
        val_pairs = _scan_split(root / "val", cfg.on_bad_file, skipped) if (root / "val").is_dir() else None
    else:
        train_pairs, val_pairs = _scan_split(root, cfg.on_bad_file, skipped), None
    names = _class_names(root, [m for _, m in (train_pairs or val_pairs)], class_names)
    train_pairs = _check_values(train_pairs, len(names), cfg.on_bad_file, skipped)
    if val_pairs is not None:
        val_pairs = _check_values(val_pairs, len(names), cfg.on_bad_file, skipped)
    pairs = train_pairs + (val_pairs or [])
    if val_pairs is None:
        tr_idx, va_idx = _split_indices(len(train_pairs), cfg)
    else:
        tr_idx, va_idx = list(range(len(train_pairs))), list(range(len(train_pairs), len(pairs)))
    tr_idx, va_idx = limit_splits(tr_idx, va_idx, [0] * len(pairs), cfg)
    if (not tr_idx and not eval_only) or not va_idx:
        raise DataError(f"{root}: need at least one training and one validation image/mask pair (have {len(tr_idx)}, "
                        f"{len(va_idx)}); add pairs or a val/ folder")
    if skipped:
        log.warning("skipped %d image/mask pair(s) under %s (first: %s: %s)", len(skipped), root, *skipped[0])
    given = cfg.modality_args.get("channels")
    channels = int(given) if given in (1, 3) else data_channels([p[0] for p in pairs])[0]
    if cfg.img_size is not None:
        size = check_input_side(cfg.img_size)
    else:
        h, w = _image_size(pairs[(tr_idx or va_idx)[0]][0])
        size = max(32, min(DEFAULT_SEGMENT_SIZE, int(np.ceil(min(h, w) / 32) * 32)))
    train_tf, eval_tf, aug = _transforms(size, cfg.modality_args.get("aug"))

    def load(i: int) -> torch.Tensor:
        img, mask = pairs[i]
        x = read_image(img, channels)
        m = torch.from_numpy(read_mask(mask)).float()[None]
        if x.shape[-2:] != m.shape[-2:]:
            raise DataError(f"{mask} and {img} differ in size")
        return torch.cat([x, m])

    def describe(i: int) -> str:
        return str(pairs[i][0])

    train = PairDataset(load, [0] * len(pairs), tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = PairDataset(load, [0] * len(pairs), va_idx, eval_tf, cfg.seed, describe)
    notes = {"train_samples": len(tr_idx), "val_samples": len(va_idx), "skipped_files": len(skipped), "aug": aug,
             "classes": len(names)}
    return _bundle(train, val, names, channels, size, notes)


def segment_bundle_from_arrays(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                               class_names: list[str], cfg, *, notes: dict[str, Any] | None = None,
                               scale: tuple[float, float] = (0.75, 1.5)) -> DataBundle:
    """A segmentation bundle from uint8 arrays: images (N, H, W, C) or (N, H, W), masks (N, H, W)."""
    def to_chw(a: np.ndarray) -> np.ndarray:
        return a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2)

    train_x, val_x = to_chw(train_x), to_chw(val_x)
    channels, native = train_x.shape[1], int(min(train_x.shape[-2:]))
    size = check_input_side(cfg.img_size) if cfg.img_size is not None else max(32, native)
    aug = cfg.modality_args.get("aug") or "scale_crop"
    if aug not in ("scale_crop", "none"):
        raise DataError(f"modality_args.aug: {aug!r} is not accepted for segmentation; choose scale_crop or none")

    def train_tf(pair, rng):
        if aug == "none":
            return eval_resize(pair, size)
        return photometric(random_scale_crop(pair, size, rng, scale=scale), rng)

    def eval_tf(pair, rng):
        return eval_resize(pair, size)

    def loader(xs: np.ndarray, ys: np.ndarray):
        return lambda i: torch.cat([torch.from_numpy(np.ascontiguousarray(xs[i])).float().div_(255.0),
                                    torch.from_numpy(np.ascontiguousarray(ys[i])).float()[None]])

    tr_idx, va_idx = limit_splits(range(len(train_x)), range(len(val_x)), [0] * max(len(train_x), len(val_x)), cfg)
    train = PairDataset(loader(train_x, train_y), [0] * len(train_x), tr_idx, train_tf, cfg.seed)
    val = PairDataset(loader(val_x, val_y), [0] * len(val_x), va_idx, eval_tf, cfg.seed)
    return _bundle(train, val, class_names, channels, size,
                   {"train_samples": len(tr_idx), "val_samples": len(va_idx), "aug": aug, **(notes or {})})


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """The whole image at the training scale (shorter side = ``img_size``, aspect kept); the task maps the
    prediction back to the file's own size."""
    img = read_image(path, preprocessing["channels"])
    h, w = img.shape[-2:]
    s = preprocessing["img_size"] / min(h, w)
    from ...data.augment.image import resize_image

    return resize_image(img, (max(32, int(round(h * s))), max(32, int(round(w * s)))))
