"""Video data: ``PATH/{train,val}/<class>/*.{mp4,avi,mkv,webm,mov}`` (or ``PATH/<class>/…`` with a held-out split),
decoded with PyAV when a batch needs them (``pip install 'lkconv[video]'``), and the built-in set ``moving-fashion``.

A raw sample is float (T, C, H, W) in [0, 1]: ``num_frames`` frames spread uniformly over the clip, resized to
``img_size`` (files are decoded at ``img_size · 8/7`` and cropped: a random crop shared by all frames in training,
the centre in evaluation and prediction).

``moving-fashion``: Moving Fashion-MNIST — a real Fashion-MNIST object (train images for training, test images for
validation) travels across a 64×64 canvas for 16 frames in one of ``directions`` (8, or 4) directions at 1.5–3
px/frame, wrapping around the edges. The start position is uniform, so every single frame's object position is
uniform too: one frame says nothing about the label, the direction, which only the order of the frames tells.
Clips are generated on access from a seed (training clips are fresh every epoch; validation clips are fixed).

``modality_args`` (all optional): ``num_frames`` (16), ``channels`` (3 for files, 1 for ``moving-fashion``),
``layout`` (``reference``, ``grid`` or ``channels``: see :mod:`lkconv.modalities.video`), ``temporal_diff``
(false: frame differences as extra channels, :class:`~lkconv.modalities.video.adapter.VideoAdapter`), ``motion`` (false:
motion-energy channels, :func:`~lkconv.modalities.video.adapter.motion_energy`), ``aug`` (``crop`` or
``none``, files only), ``temporal_jitter`` (false; files only: :mod:`lkconv.modalities.video.augment`);
``moving-fashion`` only: ``directions`` (8 or 4), ``train_clips`` (4000), ``val_clips`` (1000). The run's
``img_size`` is the frame side (default 64 for ``moving-fashion``, 112 for files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.datasets import (DataBundle, DataError, SampleDataset, check_option_keys, split_class_folders,
                             unreadable_file)
from ...data.augment.video import crop_clip
from .adapter import VIDEO_LAYOUTS, VideoAdapter
from .augment import JITTER_CANDIDATES, temporal_jitter

__all__ = [
    "VIDEO_EXTENSIONS",
    "build_data",
    "load_for_predict",
    "read_clip",
    "video_options",
]

VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "webm", "mov")
ADAPTER_OPTIONS = ("layout", "temporal_diff", "motion")
DATA_OPTIONS = ("num_frames", "channels", "aug", "temporal_jitter")
BUILTIN_OPTIONS = ("directions", "train_clips", "val_clips")
_DECODE_MARGIN = 8 / 7  # decode a little larger than img_size, then crop


def video_options(cfg, *, builtin: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits and checks ``cfg.modality_args``: ``(data_options, adapter_args)``.

    Raises:
        DataError: for an unknown key or an impossible value, naming the key and what is accepted.
    """
    args = dict(cfg.modality_args)
    accepted = DATA_OPTIONS + ADAPTER_OPTIONS + (BUILTIN_OPTIONS if builtin else ())
    check_option_keys(args, accepted, "video")
    opts: dict[str, Any] = {"num_frames": args.get("num_frames", 16), "channels": args.get("channels", 1 if builtin
                                                                                                    else 3),
                            "aug": args.get("aug", "none" if builtin else "crop"),
                            "img_size": cfg.img_size or (64 if builtin else 112),
                            "temporal_jitter": args.get("temporal_jitter", False)}
    if not isinstance(opts["num_frames"], int) or opts["num_frames"] < 1:
        raise DataError(f"modality_args.num_frames: an integer >= 1 is needed, got {opts['num_frames']!r}")
    if opts["channels"] not in (1, 3):
        raise DataError(f"modality_args.channels: 1 (grey) or 3 (RGB), got {opts['channels']!r}")
    if opts["aug"] not in ("crop", "none"):
        raise DataError(f"modality_args.aug: {opts['aug']!r} is not accepted; choose crop or none")
    if not isinstance(opts["temporal_jitter"], bool):
        raise DataError(f"modality_args.temporal_jitter: true or false, got {opts['temporal_jitter']!r}")
    if builtin:
        opts["directions"] = args.get("directions", 8)
        opts["train_clips"] = args.get("train_clips", 4000)
        opts["val_clips"] = args.get("val_clips", 1000)
        if opts["directions"] not in (4, 8):
            raise DataError(f"modality_args.directions: 4 or 8, got {opts['directions']!r}")
        for key in ("train_clips", "val_clips"):
            if not isinstance(opts[key], int) or opts[key] < opts["directions"]:
                raise DataError(f"modality_args.{key}: an integer >= directions ({opts['directions']}) is needed, "
                                f"got {opts[key]!r}")
    layout = args.get("layout", "reference")
    if layout not in VIDEO_LAYOUTS:
        raise DataError(f"modality_args.layout: {layout!r} is not accepted; choose {', '.join(VIDEO_LAYOUTS)}")
    adapter = {"num_frames": opts["num_frames"], "in_chans": opts["channels"], "layout": layout}
    for key in ("temporal_diff", "motion"):
        if key in args:
            adapter[key] = args[key]
    try:
        VideoAdapter(**adapter)
    except (TypeError, ValueError) as e:
        raise DataError(f"modality_args: {e}") from e
    s = int(np.sqrt(opts["num_frames"]))
    if layout == "reference" and opts["img_size"] % s:
        raise DataError(f"img_size {opts['img_size']} must be divisible by √num_frames = {s} for layout 'reference'")
    return opts, adapter


def decode_frames(path: str | Path, num_frames: int, size: int) -> torch.Tensor:
    """``num_frames`` uniformly spread frames resized to ``size``×``size``: uint8 (T, H, W, 3)."""
    from ...data.readers.video import read_video

    return torch.from_numpy(read_video(path, num_frames=num_frames, size=(size, size)))


def frames_to_clip(frames: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, C, H, W) in [0, 1] (grey is the mean of R, G and B)."""
    clip = frames.permute(0, 3, 1, 2).float().div_(255.0)
    return clip.mean(1, keepdim=True) if channels == 1 else clip


def read_clip(path: str | Path, num_frames: int, size: int, channels: int) -> torch.Tensor:
    """Decodes ``num_frames`` uniformly spread frames resized to ``size``×``size``: float (T, C, size, size) in [0, 1]
    (grey is the mean of R, G and B)."""
    return frames_to_clip(decode_frames(path, num_frames, size), channels)


CACHE_BYTES = 1 << 30  # decoded uint8 frames of a whole split kept in memory up to this size (per process)


class DecodedClips:
    """The decoded uint8 frames of a split's files, kept after their first use when the whole split fits in
    :data:`CACHE_BYTES` (else decoded every time).

    Why: decoding is most of a small video run's time (15 of 25 s per epoch of 240 clips at 64 px), and a set of a
    few hundred clips fits in a few hundred MB; the cached frames are the decoder's bytes, so every epoch sees
    exactly what decoding would give (augmentation runs on them afterwards)."""

    def __init__(self, files: list[Path], num_frames: int, size: int, n_used: int) -> None:
        self.files, self.num_frames, self.size = files, num_frames, size
        self.enabled = n_used * num_frames * size * size * 3 <= CACHE_BYTES
        self.frames: dict[int, torch.Tensor] = {}

    def __call__(self, i: int) -> torch.Tensor:
        got = self.frames.get(i)
        if got is None:
            got = decode_frames(self.files[i], self.num_frames, self.size)
            if self.enabled:
                self.frames[i] = got
        return got


def _validate(path: Path) -> None:
    from ...data.readers.video import probe_video

    if probe_video(path).num_frames < 1:
        raise ValueError("no frames")


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """Video folders per the data contract (see module docstring).

    With ``eval_only`` the bundle's ``val`` is the folder's val/ (or test/) split if it has one, else every file,
    labelled with ``class_names`` (the trained run's classes).
    """
    opts, adapter_args = video_options(cfg)
    split = split_class_folders(Path(cfg.data), VIDEO_EXTENSIONS, cfg, validate=_validate, eval_only=eval_only,
                                class_names=class_names, what="clip")
    all_files, all_labels, names, tr_idx, va_idx = split.files, split.labels, split.class_names, split.train, split.val
    size, t, c = opts["img_size"], opts["num_frames"], opts["channels"]
    decode = round(size * _DECODE_MARGIN) if opts["aug"] == "crop" else size

    jitter = opts["temporal_jitter"]
    val_frames = DecodedClips(all_files, t, decode, len(va_idx))
    train_frames = DecodedClips(all_files, JITTER_CANDIDATES * t, decode, len(tr_idx)) if jitter else \
        DecodedClips(all_files, t, decode, len(tr_idx))

    def load(i: int) -> torch.Tensor:
        return frames_to_clip(val_frames(i), c)

    def load_train(i: int) -> torch.Tensor:  # two candidate frames per segment for temporal jitter
        return frames_to_clip(train_frames(i), c)

    def train_tf(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return crop_clip(temporal_jitter(clip, rng, t), size, rng)

    def eval_tf(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return crop_clip(clip, size, None)

    def describe(i: int) -> str:
        return str(all_files[i])

    train = SampleDataset(load_train, all_labels, tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = SampleDataset(load, all_labels, va_idx, eval_tf, cfg.seed, describe)
    return DataBundle(train, val, names, "video", adapter_args, (t, c, size, size),
                      notes={"train_samples": len(tr_idx), "val_samples": len(val), "skipped_files": len(split.skipped),
                             "aug": opts["aug"] + (", temporal jitter" if jitter else "")},
                      preprocessing={"img_size": size, "num_frames": t, "channels": c, "decode_size": decode})


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """One file as validation sees it: (T, C, img_size, img_size) float in [0, 1].

    Only the extensions a training folder is scanned for are read: FFmpeg would open an image as a one-frame clip."""
    accepted = f"{', '.join('.' + x for x in VIDEO_EXTENSIONS)} video files"
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in VIDEO_EXTENSIONS:
        raise DataError(f"not a video file (suffix {path.suffix!r}); accepted: {accepted}")
    size = int(preprocessing["img_size"])
    try:
        clip = read_clip(path, int(preprocessing["num_frames"]), int(preprocessing.get("decode_size", size)),
                         int(preprocessing["channels"]))
    except Exception as e:  # noqa: BLE001 - any decoder error means the file is not a clip this run can read
        raise unreadable_file(path, e, accepted) from e
    return crop_clip(clip, size, None)
