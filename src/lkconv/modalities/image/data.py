"""Image data: ``PATH/{train,val}/<class>/*.{png,jpg,jpeg,bmp}`` (or ``PATH/<class>/…`` with a held-out split),
and in-memory arrays (the built-in sets). Files are decoded when a batch needs them, not held in memory.

Training augmentation (``modality_args``): ``aug`` (``rrc`` random resized crop, ``pad_crop`` reflect-pad and crop,
``none``; default ``rrc`` from 64 px, else ``pad_crop``), ``flip`` (true, false or ``auto``, the rule of
:func:`lkconv.modalities.image.augment.auto_flip`; default true) and ``color`` (brightness/contrast/saturation
strength, default 0). The automatic recipe sets ``flip: auto`` and ``color`` for folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.augment.image import center_resize, random_pad_crop, random_resized_crop
from ...data.datasets import (DataBundle, DataError, SampleDataset, held_out_split, limit_splits, split_class_folders,
                             unreadable_file)
from ...data.cache import CACHE_BYTES, DecodedCache
from ...data.readers.image import data_channels, read_image, read_image_u8, validate_image
from ...models.input_size import MIN_INPUT_SIDE, check_input_side
from .augment import auto_flip, photometric

__all__ = ["IMAGE_EXTENSIONS", "build_data", "load_for_predict", "image_bundle_from_arrays"]

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp")


def _aug_options(args: dict[str, Any], channels: int, native: int) -> tuple[bool, float, str | None]:
    """``flip`` (true, false or ``auto``: :func:`~lkconv.modalities.image.augment.auto_flip`; default true, the
    tuned recipes' setting) and ``color`` (photometric strength, default 0) from ``modality_args``, checked; and the
    sentence of the flip rule when it decided."""
    flip, why = args.get("flip", True), None
    if flip == "auto":
        flip, why = auto_flip(channels, native)
    if not isinstance(flip, bool):
        raise DataError(f"modality_args.flip: {flip!r} is not accepted; choose true, false or auto")
    color = args.get("color", 0.0)
    if isinstance(color, bool) or not isinstance(color, (int, float)) or not 0 <= color < 1:
        raise DataError(f"modality_args.color: a strength in [0, 1) is needed (0: off), got {color!r}")
    return flip, float(color), why


def _transforms(size: int, native: int, aug: str | None, flip: bool = True, color: float = 0.0):
    aug = aug or ("rrc" if native >= 64 else "pad_crop")
    if aug not in ("rrc", "pad_crop", "none"):
        raise DataError(f"modality_args.aug: {aug!r} is not accepted; choose rrc, pad_crop or none")

    def train_tf(x, rng):
        if aug == "rrc":
            x = random_resized_crop(x, size, rng, flip=flip)
        elif aug == "pad_crop":
            x = random_pad_crop(x, size, rng, flip=flip)
        else:  # no geometric change at all (flips included)
            x = center_resize(x, size)
        return photometric(x, rng, color)

    def eval_tf(x, rng):
        return center_resize(x, size)

    return train_tf, eval_tf, aug


def _aug_note(aug: str, flip: bool, color: float) -> str:
    return f"{aug}, flip {'on' if flip and aug != 'none' else 'off'}" + (f", color {color:g}" if color else "")


def _default_size(native: int) -> int:
    return max(MIN_INPUT_SIDE, int(np.ceil(native / 32) * 32))


def _input_size(cfg, native: int, cap: int | None = None) -> int:
    """``cfg.img_size`` checked against the models' one rule, else a default from the data's native side."""
    if cfg.img_size is not None:
        return check_input_side(cfg.img_size)
    return min(_default_size(native), cap) if cap else _default_size(native)


def image_bundle_from_arrays(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray | None, test_y: np.ndarray | None,
    class_names: list[str], cfg, *, notes: dict[str, Any] | None = None,
) -> DataBundle:
    """Builds the bundle from uint8 arrays (N, H, W) or (N, H, W, C); a missing test split is held out."""
    def to_chw(a: np.ndarray) -> np.ndarray:
        return a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2)

    train_x = to_chw(train_x)
    channels, native = train_x.shape[1], min(train_x.shape[-2:])
    args = dict(cfg.modality_args)
    size = _input_size(cfg, native)
    flip, color, flip_why = _aug_options(args, channels, native)
    train_tf, eval_tf, aug = _transforms(size, native, args.pop("aug", None), flip, color)
    if test_x is None:
        tr_idx, va_idx = held_out_split(train_y.tolist(), cfg)
        val_x, val_y = train_x, train_y
    else:
        val_x, val_y = to_chw(test_x), test_y
        tr_idx, va_idx = limit_splits(range(len(train_y)), range(len(test_y)), train_y.tolist(), cfg,
                                      val_labels=val_y.tolist())

    def loader(arr):
        return lambda i: torch.from_numpy(np.ascontiguousarray(arr[i])).float().div_(255.0)

    train = SampleDataset(loader(train_x), train_y.tolist(), tr_idx, train_tf, cfg.seed)
    val = SampleDataset(loader(val_x), val_y.tolist(), va_idx, eval_tf, cfg.seed)
    return DataBundle(train, val, class_names, "image", {"in_chans": channels}, (channels, size, size),
                      notes={"train_samples": len(train), "val_samples": len(val), "aug": _aug_note(aug, flip, color),
                             **({"flip": flip_why} if flip_why else {}), **(notes or {})},
                      preprocessing={"img_size": size, "channels": channels})


CHANNEL_CHOICES = (1, 3)


def _channels(modality_args: dict, files: list[Path]) -> tuple[int, str]:
    """``modality_args.channels`` when given (1 or 3), else decided from the files (any colour file: 3); and the
    sentence the data summary prints about it."""
    given = modality_args.get("channels")
    if given is None:
        return data_channels(files)
    if isinstance(given, bool) or given not in CHANNEL_CHOICES:
        raise DataError(f"modality_args.channels: {given!r} is not accepted; choose 1 (grey) or 3 (colour), or leave "
                        "it out to decide from the files")
    return int(given), f"{int(given)} channel(s): modality_args.channels"


def _native_side(files: list[Path], indices: list[int], channels: int, on_bad_file: str) -> int:
    """The shorter side of the first decodable image (the default input size follows it)."""
    for i in indices:
        try:
            return min(read_image(files[i], channels).shape[-2:])
        except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
            if on_bad_file == "error":
                raise DataError(f"cannot read {files[i]}: {type(e).__name__}: {e} (on_bad_file: skip skips such "
                                "files with a counted warning)") from e
    raise DataError(f"none of the {len(indices)} images under the data folder can be decoded")


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """Image folders per the data contract (see module docstring).

    With ``eval_only`` the bundle's ``val`` is the folder's val/ (or test/) split if it has one, else every file,
    labelled with ``class_names`` (the trained run's classes).
    """
    split = split_class_folders(Path(cfg.data), IMAGE_EXTENSIONS, cfg, validate=validate_image, eval_only=eval_only,
                                class_names=class_names, what="image")
    all_files, all_labels, names, tr_idx, va_idx = split.files, split.labels, split.class_names, split.train, split.val
    channels, why = _channels(cfg.modality_args, [all_files[i] for i in tr_idx + va_idx])
    native = _native_side(all_files, tr_idx or va_idx, channels, cfg.on_bad_file)
    size = _input_size(cfg, native, 224)
    flip, color, flip_why = _aug_options(cfg.modality_args, channels, native)
    train_tf, eval_tf, aug = _transforms(size, native, cfg.modality_args.get("aug"), flip, color)

    # kept only when the whole folder fits (twice the estimate from the first image's shorter side, for the longer
    # side and mixed sizes): a large folder's first gigabyte would add memory and save little
    estimate = 2 * len(all_files) * channels * native * native
    decoded = DecodedCache(lambda i: read_image_u8(all_files[i], channels), None if estimate <= CACHE_BYTES else 0)

    def load(i):  # exactly read_image's result, from the decoded bytes kept in memory
        return decoded(i).float().div_(255.0)

    def describe(i):
        return str(all_files[i])

    train = SampleDataset(load, all_labels, tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = SampleDataset(load, all_labels, va_idx, eval_tf, cfg.seed, describe)
    return DataBundle(train, val, names, "image", {"in_chans": channels}, (channels, size, size),
                      notes={"train_samples": len(tr_idx), "val_samples": len(val), "skipped_files": len(split.skipped),
                             "aug": _aug_note(aug, flip, color), "channels": why,
                             **({"flip": flip_why} if flip_why else {})},
                      preprocessing={"img_size": size, "channels": channels})


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """One file as validation sees it; a file that does not decode is a :class:`DataError` saying what is accepted."""
    try:
        img = read_image(path, preprocessing["channels"])
    except Exception as e:  # noqa: BLE001 - any decoder error means the file is not an image this run can read
        raise unreadable_file(path, e, f"{', '.join('.' + x for x in IMAGE_EXTENSIONS)} image files") from e
    return center_resize(img, preprocessing["img_size"])
