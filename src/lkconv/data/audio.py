"""Audio data: ``PATH/{train,val}/<class>/*.{wav,flac,ogg}`` (or ``PATH/<class>/…`` with a held-out split), and the
built-in sets ``keywords`` (spoken words synthesised with espeak-ng, test voices never heard in training) and
``sonic-samples`` (the CC0 sample library of Sonic Pi, by instrument family).

Files are decoded when a batch needs them: mixed to mono, resampled to ``sample_rate`` and cut to the adapter's
clip length (a random crop, or a random placement of a shorter clip, in training; the centre in evaluation).

``modality_args`` (all optional): ``sample_rate`` (16000), ``clip_seconds`` (sets ``target_frames`` when that is
not given), and the adapter's options ``num_mel_bins``, ``target_frames``, ``frame_length_ms``, ``frame_shift_ms``,
``norm_mean``, ``norm_std``, ``freq_mask``, ``time_mask``, ``time_shift``, ``noise`` (see
:class:`lkconv.modalities.audio.AudioAdapter`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modalities.audio import AudioAdapter
from ..ops.fbank import num_frames
from .builtin import BuiltinSet, data_home, register
from .datasets import DataBundle, DataError, SampleDataset, held_out_split, split_class_folders
from .readers.audio import read_audio, read_wav, resample, write_wav

__all__ = ["AUDIO_EXTENSIONS", "build_data", "load_for_predict", "fix_length", "audio_bundle", "adapter_args_from",
           "prepare_keywords", "KEYWORDS", "KEYWORD_ACCENTS"]

log = logging.getLogger("lkconv.data")

AUDIO_EXTENSIONS = ("wav", "flac", "ogg")
_ADAPTER_KEYS = ("num_mel_bins", "target_frames", "frame_length_ms", "frame_shift_ms", "norm_mean", "norm_std",
                 "freq_mask", "time_mask", "time_shift", "noise")
_DATA_KEYS = ("sample_rate", "clip_seconds")
_MAGIC = {"wav": (b"RIFF", 0), "flac": (b"fLaC", 0), "ogg": (b"OggS", 0)}


def adapter_args_from(modality_args: dict[str, Any]) -> dict[str, Any]:
    """The audio adapter's arguments from a run's ``modality_args`` (unknown keys are an error naming them)."""
    unknown = sorted(set(modality_args) - set(_ADAPTER_KEYS) - set(_DATA_KEYS))
    if unknown:
        raise DataError(f"modality_args: unknown audio option(s) {unknown}; accepted: "
                        f"{', '.join(_DATA_KEYS + _ADAPTER_KEYS)}")
    args = {k: modality_args[k] for k in _ADAPTER_KEYS if k in modality_args}
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


def fix_length(wave: torch.Tensor, n: int, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Crops or zero-pads a (N,) waveform to ``n`` samples: at a random offset with ``rng``, centred without."""
    length = wave.shape[-1]
    if length > n:
        start = int(rng.integers(0, length - n + 1)) if rng is not None else (length - n) // 2
        return wave[..., start : start + n]
    if length < n:
        left = int(rng.integers(0, n - length + 1)) if rng is not None else (n - length) // 2
        return torch.nn.functional.pad(wave, (left, n - length - left))
    return wave


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


def _loader(files: Sequence[Path], sample_rate: int) -> Callable[[int], torch.Tensor]:
    def load(i: int) -> torch.Tensor:
        wave, _ = read_audio(files[i], mono=True, sample_rate=sample_rate)
        return wave[0]

    return load


def audio_bundle(files: Sequence[Path], labels: Sequence[int], class_names: list[str], tr_idx: Sequence[int],
                 va_idx: Sequence[int], cfg, *, notes: dict[str, Any] | None = None) -> DataBundle:
    """The bundle for audio files with integer labels, training on ``tr_idx`` and validating on ``va_idx``."""
    args = adapter_args_from(dict(cfg.modality_args))
    n = AudioAdapter(**args).num_samples
    sr = args["sample_rate"]
    _check_soundfile([files[i] for i in list(tr_idx) + list(va_idx)])
    load = _loader(files, sr)

    def describe(i: int) -> str:
        return str(files[i])

    def train_tf(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return fix_length(x, n, rng)

    def eval_tf(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return fix_length(x, n)

    train = SampleDataset(load, list(labels), tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = SampleDataset(load, list(labels), va_idx, eval_tf, cfg.seed, describe)
    return DataBundle(train, val, list(class_names), "audio", args, (n,),
                      notes={"train_samples": len(tr_idx), "val_samples": len(va_idx), "sample_rate": sr,
                             "clip_samples": n, **(notes or {})},
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
        raise DataError(f"{path}: not an audio file; accepted extensions: {', '.join(AUDIO_EXTENSIONS)}")
    try:
        wave, _ = read_audio(path, mono=True, sample_rate=int(preprocessing["sample_rate"]))
    except ValueError as e:
        raise DataError(str(e)) from e
    return fix_length(wave[0], int(preprocessing["num_samples"]))


# --- built-in: keywords ------------------------------------------------------------------------------------------

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KEYWORD_ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                   "en-us-nyc")
KEYWORDS_VERSION = 1
_KW_SEED = 20240611
_KW_RATE = 16000
_KW_TEST_FRACTION = 0.2
_KW_CLIPS_PER_WORD_AND_VOICE = 2


def _keywords_dir() -> Path:
    return data_home() / "keywords"


def _keywords_ready() -> bool:
    manifest = _keywords_dir() / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("version") == KEYWORDS_VERSION
    except (OSError, ValueError):
        return False


def _espeak_variants(exe: str) -> list[str]:
    """The voice variants espeak-ng lists (``!v/NAME``), sorted; the MBROLA ones are left out."""
    out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return sorted(n for n in set(names) if not n.startswith("mb-"))


def _trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold * max(np.abs(x).max(), 1e-9))
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def _synth_clip(exe: str, tmp: Path, staging: Path, accents: tuple[str, ...], job: tuple) -> None:
    """One keywords clip: espeak-ng at 22.05 kHz → 16 kHz, silence trimmed, random gain/onset/noise floor, 1 s."""
    split, word, voice, k, key = job
    rng = np.random.default_rng(key)
    accent = accents[int(rng.integers(len(accents)))]
    speed, pitch = int(rng.integers(130, 191)), int(rng.integers(20, 81))
    spoken = tmp / f"{split}_{word}_{voice}_{k}.wav"
    subprocess.run([exe, "-v", f"{accent}+{voice}", "-s", str(speed), "-p", str(pitch), "-w", str(spoken), word],
                   check=True, capture_output=True)
    x, rate = read_wav(spoken)
    spoken.unlink()
    y = resample(torch.from_numpy(x[0]), rate, _KW_RATE).numpy()
    y = _trim_silence(y)[:_KW_RATE]
    y = y / max(float(np.abs(y).max()), 1e-6) * rng.uniform(0.3, 0.95)
    clip = np.zeros(_KW_RATE, np.float32)
    onset = int(rng.integers(0, _KW_RATE - len(y) + 1))
    clip[onset : onset + len(y)] = y
    clip += rng.normal(0, 10 ** rng.uniform(-4, -2.5), _KW_RATE).astype(np.float32)
    write_wav(staging / split / word / f"{voice}_{accent}_{k}.wav", clip, _KW_RATE)


def prepare_keywords(out_dir: Path | None = None, *, words: Sequence[str] = KEYWORDS,
                     accents: Sequence[str] = KEYWORD_ACCENTS, variants: Sequence[str] | None = None,
                     clips_per_voice: int = _KW_CLIPS_PER_WORD_AND_VOICE, test_fraction: float = _KW_TEST_FRACTION,
                     seed: int = _KW_SEED) -> Path:
    """Synthesises the ``keywords`` set with espeak-ng into ``out_dir`` (default ``data_home()/keywords``).

    A *voice* is an espeak-ng variant (``f3``, ``m1``, ``Alicia``, …); ``test_fraction`` of the voices, chosen with
    ``seed``, are test voices, so the test split holds only unheard voices. For every word and voice,
    ``clips_per_voice`` clips are made with a random accent, speed (130–190 words/min), pitch (20–80), gain, onset
    within the 1 s clip and a faint noise floor; every clip is 16 kHz mono 16-bit, exactly 1 s. The result is
    deterministic for a given espeak-ng installation and ``seed``.

    Raises:
        DataError: if espeak-ng is not installed.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("builtin:keywords needs espeak-ng to synthesise its clips: apt-get install espeak-ng")
    out_dir = Path(out_dir) if out_dir is not None else _keywords_dir()
    voices = list(variants) if variants is not None else _espeak_variants(exe)
    if len(voices) < 2:
        raise DataError(f"espeak-ng lists {len(voices)} voice variant(s); keywords needs at least 2")
    order = np.random.default_rng(seed).permutation(len(voices))
    n_test = max(1, int(round(len(voices) * test_fraction)))
    test_voices = sorted(voices[i] for i in order[:n_test])
    train_voices = sorted(voices[i] for i in order[n_test:])
    jobs = []
    for split, split_voices in (("train", train_voices), ("test", test_voices)):
        for w_i, word in enumerate(words):
            for voice in split_voices:
                for k in range(clips_per_voice):
                    jobs.append((split, word, voice, k, (seed, w_i, voices.index(voice), k)))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keywords-", dir=out_dir.parent))
    try:
        for split, word in {(j[0], j[1]) for j in jobs}:
            (staging / split / word).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(partial(_synth_clip, exe, Path(tmp), staging, tuple(accents)), jobs))
        count = len(jobs)
        manifest = {"version": KEYWORDS_VERSION, "seed": seed, "words": list(words), "accents": list(accents),
                    "train_voices": train_voices, "test_voices": test_voices, "clips": count, "sample_rate": _KW_RATE,
                    "espeak_ng": subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("keywords: %d clips in %s", count, out_dir)
    return out_dir


def _build_keywords(cfg) -> DataBundle:
    if not _keywords_ready():
        prepare_keywords()
    root = _keywords_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    return _build_folders(root, cfg, notes={"source": "keywords (espeak-ng)",
                                            "test_voices": len(manifest["test_voices"]),
                                            "train_voices": len(manifest["train_voices"])})


register(BuiltinSet(
    "keywords", "audio", "classify",
    "10 spoken keywords synthesised with espeak-ng (8 English accents, ~100 voice variants); test voices unheard",
    "~1620 train + 400 test 1 s clips (64 MB)",
    "program output (tool GPL-3+)", "apt-get install espeak-ng",
    lambda: _keywords_ready() or shutil.which("espeak-ng") is not None, _build_keywords,
    prepare=lambda: None if _keywords_ready() else prepare_keywords(),
))


# --- built-in: sonic-samples -------------------------------------------------------------------------------------

SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
_SONIC_MIN_CLIPS = 8


def _sonic_files() -> tuple[list[Path], list[int], list[str]]:
    files = sorted(SONIC_PI_DIR.glob("*.flac"))
    families: dict[str, list[Path]] = {}
    for f in files:
        families.setdefault(f.name.split("_", 1)[0], []).append(f)
    names = sorted(k for k, v in families.items() if len(v) >= _SONIC_MIN_CLIPS)
    out_files, labels = [], []
    for c, name in enumerate(names):
        out_files += families[name]
        labels += [c] * len(families[name])
    return out_files, labels, names


def _build_sonic(cfg) -> DataBundle:
    files, labels, names = _sonic_files()
    if not files:
        raise DataError(f"builtin:sonic-samples: no families with >= {_SONIC_MIN_CLIPS} FLAC clips in {SONIC_PI_DIR}")
    tr_idx, va_idx = held_out_split(labels, cfg)
    return audio_bundle(files, labels, names, tr_idx, va_idx, cfg, notes={"source": "sonic-pi-samples"})


register(BuiltinSet(
    "sonic-samples", "audio", "classify",
    f"Sonic Pi's sample library by family (ambi, bass, bd, drum, elec, …; families with >= {_SONIC_MIN_CLIPS} clips)",
    "~150 FLAC clips (22 MB), held-out split", "CC0", "apt-get install sonic-pi-samples",
    lambda: SONIC_PI_DIR.is_dir() and any(SONIC_PI_DIR.glob("*.flac")), _build_sonic,
))
