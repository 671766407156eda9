"""What the automatic recipe reads from an audio folder before training: clip durations and sampling rates.

Why: a fixed 1 s clip centre-crops longer recordings (the real phrases of the speech panel last 1.3-1.5 s) and a
filterbank up to 8 kHz leaves the upper bins of files recorded at 8 kHz (telephone speech) empty, a spectrum the
model never saw in training. Both are facts of the user's files, read here from their headers (no decoding), so the
choice is deterministic for a folder and recorded in the run's ``config.yaml`` as plain numbers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["AudioFolderFacts", "audio_header", "scan_audio_folder", "auto_clip_seconds", "auto_high_freq",
           "CLIP_QUANTILE", "CLIP_STEP", "CLIP_RANGE", "MAX_SCAN"]

CLIP_QUANTILE = 0.9  # clip long enough for 90 % of the training files
CLIP_STEP = 0.25  # seconds; the clip is rounded up to a multiple of this
CLIP_RANGE = (0.5, 10.0)  # seconds
MAX_SCAN = 4000  # files whose headers are read (an even stride over the sorted list beyond that)
_EXTENSIONS = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class AudioFolderFacts:
    """Durations (s) of the training files and the sampling rates (Hz) of every file that could be read."""

    train_seconds: tuple[float, ...]
    rates: tuple[int, ...]


def audio_header(path: Path) -> tuple[int, int] | None:
    """``(frames, sample_rate)`` from a file's header (RIFF/WAVE natively, others with soundfile); None when the
    header cannot be read (the data layer reports such files when it decodes them)."""
    if path.suffix.lower() != ".wav":
        try:
            import soundfile

            info = soundfile.info(str(path))
            return int(info.frames), int(info.samplerate)
        except Exception:  # noqa: BLE001 - missing soundfile or an unreadable file: no facts from it
            return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            rate = block = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    _, _, rate, _, block = struct.unpack("<HHIIH", fmt[:14])
                elif cid == b"data":
                    if not rate or not block:
                        return None
                    return size // block, int(rate)
                else:
                    f.seek(size + (size & 1), 1)
    except (OSError, struct.error):
        return None


def _files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _EXTENSIONS and p.is_file())
    if len(files) > MAX_SCAN:
        files = files[:: math.ceil(len(files) / MAX_SCAN)]
    return files


def scan_audio_folder(root: str | Path) -> AudioFolderFacts:
    """Header facts of ``root``: training durations from ``root/train`` when it exists (else every file), rates from
    every file (training and validation: a validation file at 8 kHz is what the model will meet)."""
    root = Path(root)
    train_dir = root / "train"
    train = _files(train_dir) if train_dir.is_dir() else _files(root)
    seconds, rates = [], []
    for p in train:
        h = audio_header(p)
        if h and h[1] > 0:
            seconds.append(h[0] / h[1])
            rates.append(h[1])
    if train_dir.is_dir():
        for p in _files(root):
            if train_dir in p.parents:
                continue
            h = audio_header(p)
            if h and h[1] > 0:
                rates.append(h[1])
    return AudioFolderFacts(tuple(seconds), tuple(rates))


def auto_clip_seconds(seconds: tuple[float, ...] | list[float]) -> float | None:
    """The :data:`CLIP_QUANTILE` quantile of the durations rounded up to :data:`CLIP_STEP`, within
    :data:`CLIP_RANGE`; None without durations."""
    if not seconds:
        return None
    q = float(np.quantile(np.asarray(seconds, dtype=np.float64), CLIP_QUANTILE))
    clip = math.ceil(q / CLIP_STEP - 1e-9) * CLIP_STEP
    return float(min(max(clip, CLIP_RANGE[0]), CLIP_RANGE[1]))


def auto_high_freq(rates: tuple[int, ...] | list[int], sample_rate: int) -> float:
    """The Nyquist frequency of the lowest rate found when it is below the run's (0: the run's own Nyquist)."""
    low = min(rates, default=sample_rate)
    return float(low / 2) if low < sample_rate else 0.0
