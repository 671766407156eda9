"""Audio: waveforms to a normalised Kaldi log-mel map, as in the UniRepLKNet audio recipe.

Raw batch: float (B, N) mono waveforms at the run's sample rate (``(B, 1, N)`` is accepted too); the data layer
decodes, resamples, mixes to mono and pads/crops every clip to the same N. The adapter computes the filterbank of
``wave - mean(wave)`` (Hanning window, ``htk_compat``, 25 ms frames every 10 ms, 128 mel bins by default), pads or
crops it to ``target_frames`` and normalises it as ``(fbank - norm_mean) / (2 * norm_std)`` (AudioSet statistics
by default). The map is (B, 1, num_mel_bins, target_frames): frequency on the height, time on the width.

Two options make the map independent of the recording chain (what the automatic recipe turns on for folders; see
``docs/defaults_evidence.md``, "Audio and video defaults"):

* ``top_db`` > 0 floors every log-mel value at ``top_db`` decibels below the clip's loudest one, so digital
  silence (padding, synthetic voices) and a real room's background noise map to the same floor;
* ``norm: utterance`` subtracts each mel bin's mean over the clip (cepstral mean normalisation: a fixed microphone
  or channel response is a constant per bin in the log domain) and divides by the clip's standard deviation
  (loudness, level of the floor), instead of the fixed AudioSet statistics.

``high_freq`` sets the upper edge of the mel filterbank (0: the Nyquist frequency): with files recorded at 8 kHz in
the data the bank stops at 4 kHz, so every file fills every bin.

In ``training`` mode the adapter also augments whole batches with torch's global RNG (which the engine saves and
restores): per sample one frequency mask and one time mask of random width (SpecAugment), additive noise of random
strength and a circular time shift of up to ``time_shift`` frames.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...ops.fbank import kaldi_fbank
from ..base import ModalityAdapter

__all__ = ["AudioAdapter", "AUDIOSET_MEAN", "AUDIOSET_STD", "AUDIO_NORMS", "clip_samples", "mask_along",
           "floor_top_db", "utterance_norm"]

AUDIO_NORMS = ("global", "utterance")
_DB_TO_NATS = math.log(10.0) / 10.0  # a power ratio of 1 dB in the natural log of the Kaldi filterbank

AUDIOSET_MEAN = -6.845978  # mean of the AudioSet log-mel features (the reference's normalisation)
AUDIOSET_STD = 5.5654526


def clip_samples(target_frames: int, sample_rate: int, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0) -> int:
    """Waveform samples that give exactly ``target_frames`` Kaldi frames (``snip_edges``)."""
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    return (target_frames - 1) * shift + size


def mask_along(x: torch.Tensor, dim: int, max_width: int) -> torch.Tensor:
    """Zeroes one random band of width ``U{0, …, max_width}`` along ``dim`` in every sample of ``x`` (B, …).

    Uses torch's global RNG; a band never runs past the end of the axis (SpecAugment's masking).
    """
    size = x.shape[dim]
    max_width = min(max_width, size)
    if max_width <= 0:
        return x
    b = x.shape[0]
    width = torch.randint(0, max_width + 1, (b,))
    start = (torch.rand(b) * (size - width + 1).float()).long()
    pos = torch.arange(size)
    keep = ~((pos[None, :] >= start[:, None]) & (pos[None, :] < (start + width)[:, None]))  # (B, size)
    shape = [b] + [1] * (x.dim() - 1)
    shape[dim] = size
    return x * keep.view(shape).to(x.dtype)


def floor_top_db(fb: torch.Tensor, top_db: float) -> torch.Tensor:
    """Floors (B, T, F) natural-log power features at ``top_db`` decibels below each clip's maximum."""
    peak = fb.amax(dim=(-2, -1), keepdim=True)
    return torch.maximum(fb, peak - top_db * _DB_TO_NATS)


def utterance_norm(fb: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(B, T, F) log-mel features minus each bin's mean over time, divided by the clip's standard deviation."""
    x = fb - fb.mean(dim=-2, keepdim=True)
    return x / x.std(dim=(-2, -1), keepdim=True).clamp_min(eps)


class AudioAdapter(ModalityAdapter):
    """(B, N) waveforms → (B, 1, num_mel_bins, target_frames) normalised log-mel map.

    Args:
        sample_rate: Sample rate of the raw waveforms in Hz.
        num_mel_bins: Mel filters (the map's height).
        target_frames: Frames of the map (its width); the filterbank is zero-padded or cropped to it.
        frame_length_ms: Analysis frame length.
        frame_shift_ms: Frame shift.
        norm_mean: Mean subtracted from the log-mel features.
        norm_std: The features are divided by ``2 * norm_std`` (the reference's convention).
        freq_mask: Largest SpecAugment frequency-mask width in bins (training only; 0 disables).
        time_mask: Largest SpecAugment time-mask width in frames (training only; 0 disables).
        time_shift: Largest circular shift in frames (training only; 0 disables).
        noise: Largest additive noise amplitude on the normalised map (training only; 0 disables). Each sample
            gets ``U(0, 1) * noise * U(0, 1)`` noise per pixel, as in the reference.
        high_freq: Upper edge of the mel filterbank in Hz (0: the Nyquist frequency).
        top_db: Floor of the log-mel values in dB below each clip's maximum (0: no floor).
        norm: ``global`` (``norm_mean``/``norm_std``) or ``utterance`` (per-clip: each bin's mean removed, divided
            by the clip's std; ``norm_mean``/``norm_std`` are then unused).
    """

    name = "audio"
    out_chans = 1

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, target_frames: int = 128,
                 frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, norm_mean: float = AUDIOSET_MEAN,
                 norm_std: float = AUDIOSET_STD, freq_mask: int = 48, time_mask: int = 48, time_shift: int = 10,
                 noise: float = 0.1, high_freq: float = 0.0, top_db: float = 0.0, norm: str = "global") -> None:
        super().__init__()
        if norm not in AUDIO_NORMS:
            raise ValueError(f"audio adapter: norm {norm!r} is not accepted; choose {' or '.join(AUDIO_NORMS)}")
        if not 0 <= high_freq <= sample_rate / 2:
            raise ValueError(f"audio adapter: high_freq must be in [0, {sample_rate / 2:g}] Hz (0: Nyquist) at "
                             f"sample_rate {sample_rate}, got {high_freq}")
        if top_db < 0:
            raise ValueError(f"audio adapter: top_db must be >= 0 (0: off), got {top_db}")
        if sample_rate < 1000:
            raise ValueError(f"audio adapter: sample_rate must be >= 1000 Hz, got {sample_rate}")
        if num_mel_bins < 1 or target_frames < 1:
            raise ValueError(f"audio adapter: num_mel_bins and target_frames must be >= 1, got {num_mel_bins}, "
                             f"{target_frames}")
        if norm_std <= 0:
            raise ValueError(f"audio adapter: norm_std must be > 0, got {norm_std}")
        if min(freq_mask, time_mask, time_shift) < 0 or noise < 0:
            raise ValueError("audio adapter: freq_mask, time_mask, time_shift and noise must be >= 0, got "
                             f"{freq_mask}, {time_mask}, {time_shift}, {noise}")
        self.sample_rate, self.num_mel_bins = int(sample_rate), int(num_mel_bins)
        self.target_frames = int(target_frames)
        self.frame_length_ms, self.frame_shift_ms = float(frame_length_ms), float(frame_shift_ms)
        self.norm_mean, self.norm_std = float(norm_mean), float(norm_std)
        self.freq_mask, self.time_mask, self.time_shift = int(freq_mask), int(time_mask), int(time_shift)
        self.noise = float(noise)
        self.high_freq, self.top_db, self.norm = float(high_freq), float(top_db), str(norm)

    @property
    def num_samples(self) -> int:
        """Waveform length that gives exactly ``target_frames`` frames (what the data layer pads/crops to)."""
        return clip_samples(self.target_frames, self.sample_rate, self.frame_length_ms, self.frame_shift_ms)

    def config(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "num_mel_bins": self.num_mel_bins,
                "target_frames": self.target_frames, "frame_length_ms": self.frame_length_ms,
                "frame_shift_ms": self.frame_shift_ms, "norm_mean": self.norm_mean, "norm_std": self.norm_std,
                "freq_mask": self.freq_mask, "time_mask": self.time_mask, "time_shift": self.time_shift,
                "noise": self.noise, "high_freq": self.high_freq, "top_db": self.top_db, "norm": self.norm}

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms → (B, target_frames, num_mel_bins) log-mel features, not normalised."""
        wave = wave.float()
        wave = wave - wave.mean(dim=-1, keepdim=True)
        fb = kaldi_fbank(wave, sample_rate=self.sample_rate, num_mel_bins=self.num_mel_bins,
                         frame_length_ms=self.frame_length_ms, frame_shift_ms=self.frame_shift_ms, window="hanning",
                         htk_compat=True, dither=0.0, high_freq=self.high_freq)
        frames = fb.shape[-2]
        if frames < self.target_frames:
            fb = torch.nn.functional.pad(fb, (0, 0, 0, self.target_frames - frames))
        return fb[:, : self.target_frames]

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        if raw.dim() == 3 and raw.shape[1] == 1:
            raw = raw[:, 0]
        if raw.dim() != 2:
            raise ValueError(f"audio adapter expects mono waveforms (B, N) or (B, 1, N), got {tuple(raw.shape)}")
        fb = self.features(raw)  # (B, T, F)
        if self.top_db:
            fb = floor_top_db(fb, self.top_db)
        x = utterance_norm(fb) if self.norm == "utterance" else (fb - self.norm_mean) / (2 * self.norm_std)
        x = x.transpose(1, 2)[:, None]  # (B, 1, F, T)
        if self.training:
            x = self.augment(x)
        return x

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Batch augmentation of (B, 1, F, T) maps: SpecAugment masks, noise, circular time shift."""
        if self.freq_mask:
            x = mask_along(x, 2, self.freq_mask)
        if self.time_mask:
            x = mask_along(x, 3, self.time_mask)
        b = x.shape[0]
        if self.noise:
            x = x + torch.rand(x.shape) * (torch.rand(b, 1, 1, 1) * self.noise)
        if self.time_shift:
            shifts = torch.randint(-self.time_shift, self.time_shift + 1, (b,))
            t = x.shape[-1]
            idx = (torch.arange(t)[None, :] - shifts[:, None]) % t  # out[..., j] = x[..., j - shift]
            x = torch.gather(x, 3, idx[:, None, None, :].expand_as(x))
        return x
