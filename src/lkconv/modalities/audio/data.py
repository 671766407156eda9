"""Audio data: ``PATH/{train,val}/<class>/*.{wav,flac,ogg}`` (or ``PATH/<class>/…`` with a held-out split), and the
built-in sets ``keywords`` (spoken words synthesised with espeak-ng, test voices never heard in training) and
``sonic-samples`` (the CC0 sample library of Sonic Pi, by instrument family).

Files are decoded when a batch needs them: mixed to mono, resampled to ``sample_rate`` and cut to the adapter's
clip length (a random crop, or a random placement of a shorter clip, in training; the centre in evaluation).

``modality_args`` (all optional): ``sample_rate`` (16000), ``clip_seconds`` (sets ``target_frames`` when that is
not given), and the adapter's options ``num_mel_bins``, ``target_frames``, ``frame_length_ms``, ``frame_shift_ms``,
``norm_mean``, ``norm_std``, ``freq_mask``, ``time_mask``, ``time_shift``, ``noise``, ``high_freq``, ``top_db``,
``norm`` (see
:class:`lkconv.modalities.audio.AudioAdapter`); waveform training augmentation (:mod:`lkconv.modalities.audio.augment`,
all 0 = off by default): ``speed`` (speed perturbation range), ``band_limit`` (probability of band-limiting a clip
to 8-12 kHz sampling), ``gain`` (random gain range in dB) and ``reverb`` (probability of convolving a clip with
a synthetic room response).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.cache import DecodedCache
from ...data.datasets import (DataBundle, DataError, SampleDataset, check_option_keys, split_class_folders,
                             unreadable_file)
from ...data.readers.audio import read_audio
from ...ops.fbank import num_frames
from ...data.augment.audio import fix_length
from .adapter import AudioAdapter
from .augment import augment_wave

__all__ = ["AUDIO_EXTENSIONS", "build_data", "load_for_predict", "audio_bundle", "adapter_args_from"]

log = logging.getLogger("lkconv.data")

AUDIO_EXTENSIONS = ("wav", "flac", "ogg")
ADAPTER_OPTIONS = ("num_mel_bins", "target_frames", "frame_length_ms", "frame_shift_ms", "norm_mean", "norm_std",
                 "freq_mask", "time_mask", "time_shift", "noise", "high_freq", "top_db", "norm")
DATA_OPTIONS = ("sample_rate", "clip_seconds", "speed", "band_limit", "gain", "reverb")
_MAGIC = {"wav": (b"RIFF", 0), "flac": (b"fLaC", 0), "ogg": (b"OggS", 0)}


def adapter_args_from(modality_args: dict[str, Any]) -> dict[str, Any]:
    """The audio adapter's arguments from a run's ``modality_args`` (unknown keys are an error naming them)."""
    check_option_keys(modality_args, DATA_OPTIONS + ADAPTER_OPTIONS, "audio")
    args = {k: modality_args[k] for k in ADAPTER_OPTIONS if k in modality_args}
    sr = modality_args.get("sample_rate", 16000)
    if not isinstance(sr, int) or sr < 1000:
        raise DataError(f"modality_args.sample_rate: an integer >= 1000 Hz is needed, got {sr!r}")
    args["sample_rate"] = sr
    clip = modality_args.get("clip_seconds")
    if clip is not None and "target_frames" not in args:
        if not isinstance(clip, (int, float)) or clip <= 0:
            raise DataError(f"modality_args.clip_seconds: a positive number is needed, got {clip!r}")
        size = int(sr * args.get("frame_length_ms", 25.0) * 0.001)
        shift = int(sr * args.get("frame_shift_ms", 10.0) * 0.001)
        args["target_frames"] = max(1, num_frames(int(round(clip * sr)), size, shift))
    try:
        AudioAdapter(**args)
    except (TypeError, ValueError) as e:
        raise DataError(f"modality_args: {e}") from e
    return args


def wave_aug_options(modality_args: dict[str, Any]) -> dict[str, float]:
    """The waveform augmentation options (``speed`` in [0, 0.5), ``band_limit`` and ``reverb`` probabilities in
    [0, 1], ``gain`` dB >= 0; all 0 by default), checked."""
    out = {}
    for key, hi in (("speed", 0.5), ("band_limit", 1.0), ("gain", 60.0), ("reverb", 1.0)):
        v = modality_args.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi or (key == "speed" and v == hi):
            raise DataError(f"modality_args.{key}: a number in [0, {hi:g}{')' if key == 'speed' else ']'} is needed "
                            f"(0: off), got {v!r}")
        out[key] = float(v)
    return out


def _validate_audio(path: Path) -> None:
    """A cheap check of the container's magic bytes (decoding happens when the file is used)."""
    ext = path.suffix.lower().lstrip(".")
    magic, offset = _MAGIC[ext]
    with open(path, "rb") as f:
        head = f.read(12)
    if head[offset : offset + len(magic)] != magic or (ext == "wav" and head[8:12] != b"WAVE"):
        raise ValueError(f"not a {ext.upper()} file (starts with {head[:4]!r})")


def _check_soundfile(files: Sequence[Path]) -> None:
    if any(p.suffix.lower() != ".wav" for p in files):
        try:
            import soundfile  # noqa: F401
        except ImportError as e:
            first = next(p for p in files if p.suffix.lower() != ".wav")
            raise DataError(f"{first}: FLAC/OGG files need the optional package soundfile: pip install "
                            "'lkconv[audio]'") from e


CACHE_BYTES = 1 << 30  # decoded, resampled waveforms kept in memory up to this size (per process)


class DecodedWaves(DecodedCache):
    """Mono waveforms at the run's rate, kept after their first decoding until :data:`CACHE_BYTES` are held.

    Why: decoding and resampling (e.g. 22.05 -> 16 kHz) took about a quarter of each epoch of a small speech set;
    the cached tensor is exactly what decoding gives, so augmentation and results do not change."""

    def __init__(self, files: Sequence[Path], sample_rate: int) -> None:
        self.files, self.sample_rate = files, sample_rate
        super().__init__(self._decode, CACHE_BYTES)
        self.waves = self.items

    def _decode(self, i: int) -> torch.Tensor:
        return read_audio(self.files[i], mono=True, sample_rate=self.sample_rate)[0][0]


def _loader(files: Sequence[Path], sample_rate: int) -> Callable[[int], torch.Tensor]:
    return DecodedWaves(files, sample_rate)


def audio_bundle(files: Sequence[Path], labels: Sequence[int], class_names: list[str], tr_idx: Sequence[int],
                 va_idx: Sequence[int], cfg, *, notes: dict[str, Any] | None = None) -> DataBundle:
    """The bundle for audio files with integer labels, training on ``tr_idx`` and validating on ``va_idx``."""
    args = adapter_args_from(dict(cfg.modality_args))
    wave_aug = wave_aug_options(dict(cfg.modality_args))
    n = AudioAdapter(**args).num_samples
    sr = args["sample_rate"]
    _check_soundfile([files[i] for i in list(tr_idx) + list(va_idx)])
    load = _loader(files, sr)

    def describe(i: int) -> str:
        return str(files[i])

    def train_tf(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = augment_wave(x, rng, sr, speed=wave_aug["speed"], band=wave_aug["band_limit"], gain=wave_aug["gain"],
                         reverb_prob=wave_aug["reverb"])
        return fix_length(x, n, rng)

    def eval_tf(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return fix_length(x, n)

    train = SampleDataset(load, list(labels), tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = SampleDataset(load, list(labels), va_idx, eval_tf, cfg.seed, describe)
    return DataBundle(train, val, list(class_names), "audio", args, (n,),
                      notes={"train_samples": len(tr_idx), "val_samples": len(va_idx), "sample_rate": sr,
                             "clip_samples": n,
                             "wave_aug": ", ".join(f"{k} {v:g}" for k, v in wave_aug.items() if v) or "none",
                             **(notes or {})},
                      preprocessing={"sample_rate": sr, "num_samples": n})


def _build_folders(root: Path, cfg, *, eval_only: bool = False, class_names: list[str] | None = None,
                   notes: dict[str, Any] | None = None) -> DataBundle:
    split = split_class_folders(root, AUDIO_EXTENSIONS, cfg, validate=_validate_audio, eval_only=eval_only,
                                class_names=class_names, what="clip")
    return audio_bundle(split.files, split.labels, split.class_names, split.train, split.val, cfg,
                        notes={"skipped_files": len(split.skipped), **(notes or {})})


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """Audio folders per the data contract (see the module docstring).

    With ``eval_only`` the bundle's ``val`` is the folder's val/ (or test/) split if it has one, else every file,
    labelled with ``class_names`` (the trained run's classes).
    """
    root = Path(cfg.data)
    if not root.is_dir():
        raise DataError(f"audio data must be a folder PATH/{{train,val}}/<class>/*.{{wav,flac,ogg}}, got {root}")
    return _build_folders(root, cfg, eval_only=eval_only, class_names=class_names)


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """One file as validation sees it: mono, resampled, centre-cropped/padded; (num_samples,)."""
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in AUDIO_EXTENSIONS:
        raise DataError(f"not an audio file (suffix {path.suffix!r}); accepted: "
                        f"{', '.join('.' + x for x in AUDIO_EXTENSIONS)} audio files")
    try:
        wave, _ = read_audio(path, mono=True, sample_rate=int(preprocessing["sample_rate"]))
    except Exception as e:  # noqa: BLE001 - any decoder error means the file is not audio this run can read
        raise unreadable_file(path, e, f"{', '.join('.' + x for x in AUDIO_EXTENSIONS)} audio files (PCM or float "
                              "WAV without soundfile)") from e
    return fix_length(wave[0], int(preprocessing["num_samples"]))
