"""Built-in audio sets (``--data builtin:NAME``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...data.datasets import DataBundle, DataError, held_out_split
from ...data.readers.audio import read_wav, resample, write_wav
from ..builtin import BuiltinSet, data_home, register
from .data import _build_folders, audio_bundle

log = logging.getLogger("lkconv.data")

__all__ = ["prepare_keywords", "KEYWORDS", "KEYWORD_ACCENTS"]


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
