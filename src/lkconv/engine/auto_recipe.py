"""The automatic recipe: what ``lkconv train --modality M --data FOLDER --out RUN`` chooses when given no options.

Every :class:`~lkconv.engine.config.TrainConfig` field left ``None`` ("auto") is chosen here from the data; every
value the user gives is kept. The rule is deterministic for a data set and configuration (the one exception,
``--budget``, is applied by the trainer after measuring the first steps and is recorded). The evidence behind each
number is in ``docs/defaults_evidence.md`` (issue 19's panel).

Before the data is read (:func:`modality_defaults`; only keys the user did not give):

* augmentation on for every modality's classification folders (:data:`AUGMENTATION`, :func:`augmentation_defaults`;
  ``augment: false`` turns each of its keys off, any key given in ``modality_args`` wins): time series — window
  slicing and warping (``aug: auto``: each kept unless it erases the class on the training series, as a
  nearest neighbour sees it — :func:`lkconv.modalities.timeseries.augment.check_series_aug`), jitter, amplitude
  scaling; images — crops, photometric changes, flips only where the rule of
  :func:`lkconv.modalities.image.augment.auto_flip` says they keep the class; audio — SpecAugment, time shift,
  noise (speed, band-limiting and gain exist but stay off: no win on the real-speech panel); point clouds — SO(3) pose, anisotropic scale, jitter,
  point dropout; video — shared crops, temporal jitter;
* point clouds: ``rotation: so3`` (users' shapes come in arbitrary poses: 16.7 % -> 74 % on the SO(3) panel),
  ``align: pca`` (each cloud in its principal-axis frame, :mod:`lkconv.modalities.pointcloud.pose`: shapes-so3
  78.3 -> 99.2 %) and ``img_size`` 32;
* video files (:func:`video_folder_defaults`): ``img_size`` 32, ``layout: grid``, ``temporal_diff: true``,
  ``motion: true`` (112 px at batch 64 peaked at 15.7 GB RSS; the reference layout stayed at chance on the
  motion-direction panel; motion energy 90.0 -> 97.5 % there);
* audio files (:func:`audio_folder_defaults`): clip length and filterbank edge from the files' headers, per-clip
  normalisation of the log-mel map over a 60 dB floor.

After the data is read (:func:`choose_recipe`, from :class:`DataFacts`):

* ``batch_size``: the largest power of two <= n_train / 4, clamped to [8, 64] and never above n_train; at most 16
  for video and 32 for point clouds and audio (memory). A fixed 64 stopped every set under 64 samples. Sets of
  16384+ samples of at most 3x32x32 values: up to 128 (:data:`LARGE_SET_BATCH`; the budget binds there, and batch
  128 does an epoch of small images in ~0.7x the time of 64).
* ``model``: ``unireplknet_a``; with ``model_args`` empty, every modality gets the small UniRepLKNet
  :data:`SMALL_UNIREPLKNET` (images, point clouds, video: 4-5x faster per epoch at equal accuracy; time series: the
  UCR/UEA panel as good or better in 3-8x less time, docs/defaults.md); twice as wide
  (:data:`WIDE_SMALL_UNIREPLKNET`) for 16384+ images of at most 3x32x32 values (Fashion-MNIST 90.5 -> 91.3 %).
* ``epochs``: enough for ~1500 optimizer steps, ``clamp(ceil(1500 / steps_per_epoch), 20, 300)``; the trainer then
  cuts them to what the measured step time fits in ``budget`` minutes (``budget``: 10, 15 for segmentation and
  detection, :data:`TASK_BUDGET`, which train for the whole budget: 300 epochs, cut to fit).
* ``lr``: ``1e-3 * sqrt(batch / 16)`` for ``unireplknet_a`` and ``2e-3 * sqrt(batch / 32)`` for the small model
  (the square-root rule from the ImageNet reference gave 2.5e-4 at batch 16 and under-trained every small set).
* ``eval_every``: ``epochs // 20`` (at least 1: about 20 evaluations);
* ``warmup_epochs``: ``min(2, epochs / 20)``; ``drop_path_rate``: 0 below 1000 training samples, else
  ``0.1 * min(1, epochs / 100)``; mixup/CutMix as :func:`lkconv.engine.recipe.resolve_recipe`.
* fine-tuning (``pretrained`` set; :func:`finetune_defaults`): ``model`` is the tag's architecture (never the small
  one), ``lr`` a quarter of the rule above, ``warmup_epochs`` ``min(1, epochs / 20)``, ``layer_decay``
  :data:`FINETUNE_LAYER_DECAY` (else 1: off); grey images are normalised with the mean/std the 1-channel stem
  expects (ImageNet's averaged).
* time series (classification): several channels -> ``mapping: square`` with ``norm: dataset`` (per-channel mean
  and std of the training set; per-case z-normalisation removed the level and scale that carry the class:
  JapaneseVowels 67.6 -> 97.6 %); one channel keeps ``gaf`` with per-case normalisation (ArrowHead gaf 79.4 vs
  square 66.9).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SMALL_UNIREPLKNET", "WIDE_SMALL_UNIREPLKNET", "DEFAULT_MODEL", "AUGMENTATION", "DataFacts", "data_facts", "modality_defaults",
           "augmentation_defaults", "augmentation_record", "choose_recipe", "auto_batch_size", "auto_budget", "auto_epochs",
           "auto_lr", "channel_stats", "finetune_defaults"]

DEFAULT_MODEL = "unireplknet_a"
SMALL_UNIREPLKNET: dict[str, Any] = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128],
                                     "kernel_sizes": [[3], [7], [7, 7], [7]]}
STEP_TARGET = 1500  # optimizer steps the rule aims for
EPOCH_RANGE = (20, 300)
BATCH_CAP = {"video": 16, "pointcloud": 32, "audio": 32}
# Dense tasks learn from optimizer steps more than from batch size: builtin:fashion-detect (2000 images, small model,
# default 10-minute budget) reached mAP@0.5 0.165 after 5 epochs at batch 64 and 0.62 after 7 at batch 16
# (docs/dense.md).
TASK_BATCH_CAP = {"detect": 16}
# Large sets of small samples: batch 128. With >= 16384 training samples, batch 64 already gives >= 256 steps per
# epoch and the epoch floor (20) plans several times STEP_TARGET, so the --budget, i.e. throughput, decides; at
# <= 3x32x32 values per sample the per-step costs (optimizer, per-layer dispatch) dominate batch 64's steps.
# Fashion-MNIST (60 000 grey 28 px, default budget, 2 threads): batch 64 8 epochs 90.2 %, batch 128 12 epochs
# 90.5 % (docs/defaults.md).
# The time budget (minutes) when the user gives none: 10, and 15 for dense tasks, as issue 16 states their targets;
# dense tasks train for the whole budget (their curves still rose when the step target ended them: builtin:fashion-
# on-photos stopped at 49 epochs in 585 s of a 15-minute budget, mIoU 0.660; 0.673 in the 99 epochs of 15 minutes).
# builtin:fashion-detect (2 threads): mAP@0.5 0.719 in the 15 epochs 10 minutes fit, 0.798 in the 33 of 15 minutes
# (docs/dense.md).
DEFAULT_BUDGET = 10.0
TASK_BUDGET = {"segment": 15.0, "detect": 15.0}
LARGE_SET = 16384
LARGE_SET_BATCH = 128
SMALL_SAMPLE_VALUES = 3 * 32 * 32
# Large image sets of small samples (the LARGE_SET_BATCH condition) train the small model at twice the width: the
# budget binds there, and at 32 px a step's cost is mostly per-layer overhead, so twice the channels cost ~1.15x per
# epoch and learn more per epoch. Fashion-MNIST (defaults otherwise, 2 threads, quiet): small 90.5 % in 12 epochs,
# wide 91.0 % (90.99) in 10, and 91.3 % in 11 as the plain default (docs/defaults.md). Measured on images only.
WIDE_SMALL_UNIREPLKNET: dict[str, Any] = {**SMALL_UNIREPLKNET, "dims": [32, 64, 128, 256]}
WIDE_SMALL_MODALITIES = ("image",)
SMALL_MODEL_MODALITIES = ("image", "pointcloud", "video", "audio", "timeseries")
# the small model's own lr rule (2e-3 * sqrt(batch / 32)) was measured on these; series keep 1e-3 * sqrt(batch / 16),
# the rule their small-model panel ran with (UCR/UEA, docs/defaults.md: same or better on 9 sets, 3-8x less time)
SMALL_LR_MODALITIES = ("image", "pointcloud", "video", "audio")
# --- fine-tuning from published weights (issue 15) ---
FINETUNE_LR_FACTOR = 0.25  # of the from-scratch rule: the weights are already good, the new head is small
FINETUNE_LAYER_DECAY = 0.9  # per block group: the stem learns 0.9^(n-1) of the head's rate (0.19 for unireplknet_a)
FINETUNE_MAX_WARMUP = 1.0  # epochs

# modality -> (modality_args with augmentation on, the same keys with it off, what "on" means). The transforms live
# beside each modality's data code (lkconv.modalities.<name>.augment); the evidence is in docs/defaults.md.
AUGMENTATION: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # aug auto: slicing and warping, each kept unless it erases the class on the user's training series
    # (lkconv.modalities.timeseries.augment.check_series_aug: ACSF1 21.0 -> see docs/defaults.md)
    "timeseries": ({"aug": "auto", "noise": 0.05, "scale": 0.1},
                   {"aug": "none", "noise": 0.0, "scale": 0.0},
                   "window slicing + warping (each unless a nearest-neighbour check on the training series says "
                   "it erases the class), jitter (noise 0.05), amplitude scaling +-10 %"),
    "image": ({"flip": "auto", "color": 0.2},
              {"aug": "none", "flip": False, "color": 0.0},
              "crops (rrc from 64 px, else pad_crop), flips only where they keep the class (flip: auto), "
              "brightness/contrast/saturation +-20 %"),
    # the waveform augmentations (speed, band_limit, gain) are off: on speech-alsa they did not win (docs/defaults.md)
    # masks: 3/16 of 128 mel bins and 20 frames (audio_folder_defaults scales the frequency mask to the bins)
    "audio": ({"speed": 0.0, "band_limit": 0.0, "gain": 0.0, "freq_mask": 24, "time_mask": 20, "time_shift": 10,
               "noise": 0.1},
              {"speed": 0.0, "band_limit": 0.0, "gain": 0.0, "freq_mask": 0, "time_mask": 0, "time_shift": 0,
               "noise": 0.0},
              "SpecAugment (frequency/time masks), time shift, noise; waveform speed/band-limiting/gain stay off "
              "(not a win on the real-speech panel)"),
    "pointcloud": ({"rotation": "so3", "anisotropic": True, "scale": [0.8, 1.25], "jitter": 0.01, "dropout": 0.1},
                   {"rotation": "none", "anisotropic": False, "scale": [1.0, 1.0], "jitter": 0.0, "crop": 0.0,
                    "dropout": 0.0},
                   "random SO(3) pose (files' poses are not assumed aligned), anisotropic scale 0.8-1.25 per axis, "
                   "jitter 0.01, point dropout up to 10 %"),
    "video": ({"aug": "crop", "temporal_jitter": True},
              {"aug": "none", "temporal_jitter": False},
              "one random crop shared by all frames, temporal jitter"),
}


@dataclass
class DataFacts:
    """What the rule looks at: sizes, classes and the raw sample shape of the training data."""

    modality: str
    task: str
    n_train: int
    n_val: int
    class_counts: list[int] = field(default_factory=list)  # per class, training split (empty when unknown)
    raw_shape: tuple[int, ...] = ()
    builtin: bool = False

    @property
    def n_classes(self) -> int:
        return len(self.class_counts)

    @property
    def imbalance(self) -> float:
        """Largest / smallest class count (1.0 = balanced)."""
        counts = [c for c in self.class_counts if c > 0]
        return max(counts) / min(counts) if counts else 1.0

    @property
    def channels(self) -> int:
        return int(self.raw_shape[0]) if self.raw_shape else 1


def data_facts(cfg, data) -> DataFacts:
    """The :class:`DataFacts` of a built :class:`~lkconv.data.datasets.DataBundle`."""
    counts: list[int] = []
    targets = getattr(data.train, "targets", None)
    if data.task == "classify" and callable(targets):
        c = Counter(int(t) for t in targets())
        counts = [c.get(i, 0) for i in range(len(data.class_names))]
    return DataFacts(modality=cfg.modality, task=data.task, n_train=len(data.train), n_val=len(data.val),
                     class_counts=counts, raw_shape=tuple(int(s) for s in data.raw_shape),
                     builtin=str(cfg.data).startswith("builtin:"))


def augmentation_defaults(cfg) -> tuple[dict[str, Any], str | None]:
    """The ``modality_args`` keys of :data:`AUGMENTATION` the user did not give (``cfg.augment`` None/True: the "on"
    values, False: the "off" values), and the sentence saying what they are.

    Nothing for built-in sets (their tuned recipes were measured with the data layer's own defaults), nor for
    forecasting (windows of one series: no augmentation is known to keep their targets valid)."""
    if str(cfg.data).startswith("builtin:") or cfg.task != "classify" or cfg.modality not in AUGMENTATION:
        return {}, None
    on, off, what = AUGMENTATION[cfg.modality]
    chosen = on if cfg.augment is not False else off
    added = {k: v for k, v in chosen.items() if k not in cfg.modality_args}
    if not added:
        return {}, None
    state = f"on: {what}" if cfg.augment is not False else "off (augment: false)"
    kept = sorted(k for k in chosen if k in cfg.modality_args)
    return added, f"augmentation {state}" + (f"; given in modality_args: {', '.join(kept)}" if kept else "")


def augmentation_record(cfg, data) -> dict[str, Any]:
    """What ``resolved.augmentation`` in ``config.yaml`` keeps: the :data:`AUGMENTATION` keys in the run's
    ``modality_args`` (given or chosen) and the data layer's own account of them (e.g. the image flip rule)."""
    if cfg.modality not in AUGMENTATION:
        return {}
    on, off, _ = AUGMENTATION[cfg.modality]
    keys = list(dict.fromkeys([*on, *off]))
    out: dict[str, Any] = {k: cfg.modality_args[k] for k in keys if k in cfg.modality_args}
    for note in ("aug", "flip", "wave_aug", "aug_check"):
        if isinstance(data.notes.get(note), str):
            out[f"data_{note}"] = data.notes[note]
    return out


def modality_defaults(cfg) -> tuple[dict[str, Any], list[str]]:
    """Config changes decided before the data is read (only for keys the user left unset) and their reasons."""
    changes: dict[str, Any] = {}
    reasons: list[str] = []
    margs = dict(cfg.modality_args)
    aug, why = augmentation_defaults(cfg)
    if aug:
        margs.update(aug)
        reasons.append(why)
    if cfg.modality == "pointcloud":
        if "rotation" not in margs:
            margs["rotation"] = "so3"
            reasons.append("point clouds: random SO(3) rotation in training (files' poses are not assumed aligned)")
        if "align" not in margs:
            margs["align"] = "pca"
            reasons.append("point clouds: every cloud in its principal-axis frame (align: pca; shapes in random poses "
                           "78.3 -> 99.2 %)")
        if cfg.img_size is None:
            changes["img_size"] = 32
            reasons.append("point clouds: 32 px projection maps (time and memory)")
    if cfg.modality == "audio" and cfg.task == "classify" and not str(cfg.data).startswith("builtin:"):
        margs = audio_folder_defaults(cfg, margs, reasons)
    if cfg.modality == "video" and not str(cfg.data).startswith("builtin:"):
        margs = video_folder_defaults(cfg, margs, changes, reasons)
    if margs != cfg.modality_args:
        changes["modality_args"] = margs
    return changes, reasons


VIDEO_IMG_SIZE = 32  # frame side for video folders
VIDEO_INPUT: dict[str, Any] = {"layout": "grid", "temporal_diff": True, "motion": True, "channels": 1}


def video_folder_defaults(cfg, margs: dict[str, Any], changes: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """Video folders: grey frames (``channels: 1``) tiled on a grid (``layout: grid``), each with its difference to
    the next frame (``temporal_diff``) and the two motion-energy channels (``motion``:
    :func:`lkconv.modalities.video.adapter.motion_energy`) as extra channels, at :data:`VIDEO_IMG_SIZE` px; only keys
    the user left unset (``channels: 3`` keeps colour).

    Why (video-pan panel, docs/defaults_evidence.md "Audio and video defaults"): the ``reference`` layout at 64 px
    and the ``channels`` layout (with or without differences) stayed near chance or memorised the 240 training
    clips; the grid shares the first convolutions across frames, and a pixel that sees a frame and its change can
    tell the direction of motion from their signs. 32 px keeps pans of 2-4 px/frame at about one pixel per frame,
    where a difference still measures motion, and a 16-frame grid at 128x128 px in a few hundred MB. Grey frames:
    motion lives in the luminance, and colour let the small set be memorised (colour 53.8 % vs grey 75 %+ at equal
    epochs). The motion channels hand the first layer the product of a frame's change and its spatial gradient,
    whose sign is the direction of motion (video-pan: 90.0 -> 97.5 %, docs/defaults.md).
    """
    margs = dict(margs)
    if cfg.img_size is None:
        changes["img_size"] = VIDEO_IMG_SIZE
        reasons.append(f"video: {VIDEO_IMG_SIZE} px frames (motion of a few px/frame stays ~1 px/frame; memory)")
    added = {k: v for k, v in VIDEO_INPUT.items() if k not in margs}
    if added:
        margs.update(added)
        reasons.append("video: " + ", ".join(f"{k} {v}" for k, v in added.items())
                       + " (grey frames tiled, each with its difference to the next and their motion energy: "
                       "motion visible to the first layer)")
    return margs


AUDIO_TOP_DB = 60.0  # floor of the log-mel map below each clip's peak (digital silence vs a room's noise)
AUDIO_NARROW_MELS = 32  # mel bins when the bank stops at <= 4 kHz (speech-alsa: 64 -> 50.0/37.5, 32 -> 87.5/75.0)
AUDIO_FREQ_MASK = 0.1875  # widest SpecAugment frequency mask, as a fraction of the mel bins (12 of 64, 24 of 128)
AUDIO_TIME_MASK = 20  # widest time mask in frames (0.2 s; the AudioSet recipe's 48 hides most of a short word)


def audio_folder_defaults(cfg, margs: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """Audio folders: the log-mel front end from the files' headers (:mod:`lkconv.modalities.audio.folder_facts`),
    only for keys the user left unset. Recorded as plain numbers, so evaluation and prediction use the same ones.

    * ``clip_seconds``: the 90th percentile of the training files' durations rounded up to 0.25 s, in [0.5, 10]
      (the fixed 1 s centre-cropped the real phrases of the speech panel, 1.3-1.5 s long);
    * ``high_freq``: the Nyquist frequency of the lowest sampling rate among all the folder's files when it is below
      the run's (8 kHz files -> a bank up to 4 kHz, so no bin is empty for them);
    * ``num_mel_bins`` :data:`AUDIO_NARROW_MELS` (32) when that bank stops at or below 4 kHz: bands of ~100 Hz and
      more smooth the voice's pitch harmonics, which differ between the synthetic training voices and a real one
      (speech-alsa, real voice: 64 bins 50.0 / 37.5 %, 32 bins 87.5 / 75.0 %, best / last);
    * SpecAugment sized for words: frequency masks up to 3/16 of the bins, time masks up to 20 frames;
    * ``norm: utterance`` and ``top_db`` :data:`AUDIO_TOP_DB`: per-clip mean/variance normalisation of the log-mel
      map over a floor 60 dB below its peak (channel, loudness and silence level are properties of the recording,
      not of the word).
    """
    from ..modalities.audio.folder_facts import auto_clip_seconds, auto_high_freq, scan_audio_folder

    margs = dict(margs)
    facts = scan_audio_folder(cfg.data)
    sr = int(margs.get("sample_rate", 16000))
    if "clip_seconds" not in margs and "target_frames" not in margs:
        clip = auto_clip_seconds(facts.train_seconds)
        if clip is not None:
            margs["clip_seconds"] = clip
            reasons.append(f"audio: clip {clip:g} s (90th percentile of {len(facts.train_seconds)} training files' "
                           "durations, rounded up to 0.25 s)")
    if "high_freq" not in margs:
        high = auto_high_freq(facts.rates, sr)
        if high:
            margs["high_freq"] = high
            reasons.append(f"audio: mel filterbank up to {high:g} Hz (files at {min(facts.rates)} Hz found)")
    high = float(margs.get("high_freq", 0.0))
    if 0 < high <= 4000 and "num_mel_bins" not in margs:
        margs["num_mel_bins"] = AUDIO_NARROW_MELS
        reasons.append(f"audio: {AUDIO_NARROW_MELS} mel bins below {high:g} Hz (coarse bands smooth the pitch "
                       "harmonics that differ between voices; 128 would be narrower than the FFT's bins)")
    given = cfg.modality_args
    bins = int(margs.get("num_mel_bins", 128))
    if "freq_mask" not in given and cfg.augment is not False:
        margs["freq_mask"] = max(1, round(AUDIO_FREQ_MASK * bins))
    if "time_mask" not in given and cfg.augment is not False:
        margs["time_mask"] = AUDIO_TIME_MASK
    if "norm" not in margs and "norm_mean" not in margs and "norm_std" not in margs:
        margs["norm"] = "utterance"
        margs.setdefault("top_db", AUDIO_TOP_DB)
        reasons.append(f"audio: per-clip normalisation of the log-mel map, floored {AUDIO_TOP_DB:g} dB below its peak")
    return margs


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1)))))


def auto_batch_size(n_train: int, modality: str, task: str = "classify", sample_values: int | None = None) -> int:
    """Largest power of two <= n_train / 4 in [8, 64] (modality caps for memory, task caps for more steps), never
    above n_train; up to :data:`LARGE_SET_BATCH` for :data:`LARGE_SET` or more samples of at most
    :data:`SMALL_SAMPLE_VALUES` values each (``sample_values``: the product of the raw sample shape)."""
    b = min(max(_pow2_floor(n_train / 4), 8), _batch_cap(modality, task, n_train, sample_values))
    return max(1, min(b, _pow2_floor(n_train)))


def _large_set_of_small_samples(facts: DataFacts) -> bool:
    """:data:`LARGE_SET` or more training samples of at most :data:`SMALL_SAMPLE_VALUES` values each."""
    values = math.prod(facts.raw_shape) if facts.raw_shape else None
    return facts.n_train >= LARGE_SET and values is not None and values <= SMALL_SAMPLE_VALUES


def _batch_cap(modality: str, task: str, n_train: int = 0, sample_values: int | None = None) -> int:
    large = n_train >= LARGE_SET and sample_values is not None and sample_values <= SMALL_SAMPLE_VALUES
    base = LARGE_SET_BATCH if large else 64
    return min(base, BATCH_CAP.get(modality, base), TASK_BATCH_CAP.get(task, base))


def auto_epochs(steps_per_epoch: int) -> int:
    """Epochs for ~:data:`STEP_TARGET` optimizer steps, within :data:`EPOCH_RANGE`."""
    lo, hi = EPOCH_RANGE
    return int(min(max(math.ceil(STEP_TARGET / max(steps_per_epoch, 1)), lo), hi))


def auto_budget(task: str) -> float:
    """Default ``--budget`` minutes: :data:`DEFAULT_BUDGET`, or the task's entry of :data:`TASK_BUDGET`."""
    return TASK_BUDGET.get(task, DEFAULT_BUDGET)


def auto_lr(batch: int, small: bool) -> float:
    return round(2e-3 * math.sqrt(batch / 32), 6) if small else round(1e-3 * math.sqrt(batch / 16), 6)


def choose_recipe(cfg, facts: DataFacts) -> tuple[dict[str, Any], list[str]]:
    """Values for the config fields left ``None`` (plus ``model_args`` for the small model), with reasons."""
    out: dict[str, Any] = {}
    why: list[str] = []
    if cfg.batch_size is None:
        values = math.prod(facts.raw_shape) if facts.raw_shape else None
        out["batch_size"] = auto_batch_size(facts.n_train, facts.modality, facts.task, values)
        cap = _batch_cap(facts.modality, facts.task, facts.n_train, values)
        why.append(f"batch_size {out['batch_size']}: power of 2 <= n_train/4 = {facts.n_train / 4:g}, in [8, {cap}]"
                   + (" (a large set of small samples: throughput decides)" if cap > 64 else ""))
    batch = out.get("batch_size", cfg.batch_size)
    small = False
    if cfg.pretrained:
        out.update(finetune_defaults(cfg, facts, why))
    elif cfg.model is None:
        out["model"] = DEFAULT_MODEL
        # series: measured on classification only (forecasting keeps unireplknet_a)
        if not cfg.model_args and facts.modality in SMALL_MODEL_MODALITIES and (
                facts.modality != "timeseries" or facts.task == "classify"):
            wide = facts.modality in WIDE_SMALL_MODALITIES and _large_set_of_small_samples(facts)
            out["model_args"] = dict(WIDE_SMALL_UNIREPLKNET if wide else SMALL_UNIREPLKNET)
            why.append(f"model: small UniRepLKNet (depths 1-1-2-1, dims {out['model_args']['dims'][0]}-"
                       f"{out['model_args']['dims'][-1]}) for {facts.modality}"
                       + (" (twice the width: a large set of small samples)" if wide else ""))
        else:
            why.append(f"model: {DEFAULT_MODEL}")
    if not cfg.pretrained:  # the small model's lr rule, chosen or given
        dims = out.get("model_args", cfg.model_args).get("dims")
        small = facts.modality in SMALL_LR_MODALITIES and dims in (SMALL_UNIREPLKNET["dims"],
                                                                  WIDE_SMALL_UNIREPLKNET["dims"])
    if cfg.budget is None:
        out["budget"] = auto_budget(facts.task)
    budget = out.get("budget", cfg.budget)
    steps = max(1, facts.n_train // max(batch * cfg.accum_steps, 1))
    if cfg.epochs is None and facts.task in TASK_BUDGET:
        out["epochs"] = EPOCH_RANGE[1]
        why.append(f"epochs {out['epochs']}: {facts.task} trains as long as --budget {budget:g} min allows "
                   "(the trainer cuts the epochs to fit)")
    elif cfg.epochs is None:
        out["epochs"] = auto_epochs(steps)
        why.append(f"epochs {out['epochs']}: ~{STEP_TARGET} steps at {steps} steps/epoch, in {list(EPOCH_RANGE)} "
                   f"(then cut to --budget {budget:g} min)")
    epochs = out.get("epochs", cfg.epochs)
    if cfg.lr is None and cfg.pretrained:
        out["lr"] = round(FINETUNE_LR_FACTOR * auto_lr(batch * cfg.accum_steps, False), 6)
        why.append(f"lr {out['lr']:g}: fine-tuning, {FINETUNE_LR_FACTOR:g} * 1e-3*sqrt(batch/16)")
    elif cfg.lr is None:
        out["lr"] = auto_lr(batch * cfg.accum_steps, small)
        why.append(f"lr {out['lr']:g}: {'2e-3*sqrt(batch/32)' if small else '1e-3*sqrt(batch/16)'}")
    if cfg.eval_every is None:
        out["eval_every"] = max(1, epochs // 20)
    if cfg.warmup_epochs is None:
        most = FINETUNE_MAX_WARMUP if cfg.pretrained else 2.0
        out["warmup_epochs"] = round(min(most, epochs / 20), 4)
    if cfg.layer_decay is None:
        out["layer_decay"] = FINETUNE_LAYER_DECAY if cfg.pretrained else 1.0
    if cfg.drop_path_rate is None:
        out["drop_path_rate"] = 0.0 if facts.n_train < 1000 else round(0.1 * min(1.0, epochs / 100), 4)
    if facts.modality == "timeseries" and facts.task == "classify" and facts.channels > 1:
        given = cfg.modality_args
        if "mapping" not in given and "norm" not in given:
            out["adapter_args"] = {"mapping": "square", "norm": "dataset"}
            why.append(f"time series: {facts.channels} channels -> mapping square, per-channel training-set "
                       "normalisation (per-case z-normalisation removes level/scale that may carry the class)")
    return out, why


def finetune_defaults(cfg, facts: DataFacts, why: list[str]) -> dict[str, Any]:
    """The architecture of ``cfg.pretrained`` and, for grey images, the normalisation its 1-channel stem expects."""
    from ..models.pretrained import pretrained_cfg_for, resolve_tag

    tag = resolve_tag(cfg.pretrained)
    out: dict[str, Any] = {}
    if cfg.model is None:
        out["model"] = tag.arch
    why.append(f"fine-tuning {tag.name}: lower lr, shorter warm-up, layer decay {FINETUNE_LAYER_DECAY:g}; new head")
    given = cfg.modality_args
    if facts.modality == "image" and facts.channels == 1 and "mean" not in given and "std" not in given:
        grey = pretrained_cfg_for(tag, in_chans=1)
        out["adapter_args"] = {"mean": grey["mean"], "std": grey["std"]}
        why.append(f"grey images: mean {grey['mean'][0]:g}, std {grey['std'][0]:g} (ImageNet's averaged, what the "
                   "summed 1-channel stem expects)")
    return out


def channel_stats(dataset, channels: int, max_samples: int = 2000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the observed (finite) values of up to ``max_samples`` raw (C, L) series."""
    import torch

    total = torch.zeros(channels, dtype=torch.float64)
    sq = torch.zeros(channels, dtype=torch.float64)
    count = torch.zeros(channels, dtype=torch.float64)
    step = max(1, len(dataset) // max_samples)
    for k in range(0, len(dataset), step):
        x = torch.as_tensor(dataset[k][0], dtype=torch.float64).reshape(channels, -1)
        finite = torch.isfinite(x)
        x0 = torch.where(finite, x, torch.zeros_like(x))
        total += x0.sum(-1)
        sq += x0.square().sum(-1)
        count += finite.sum(-1)
    mean = total / count.clamp_min(1)
    std = (sq / count.clamp_min(1) - mean.square()).clamp_min(0).sqrt()
    std = torch.maximum(std, 1e-6 * (1 + mean.abs()))
    return [float(v) for v in mean], [float(v) for v in std]
