"""Waveform training augmentation for audio runs: speed perturbation, band-limiting and gain.

Why: users' recordings seldom share the training set's speakers, loudness, microphone or sampling rate. Speed
perturbation (resampling by a factor near 1: tempo and pitch together) widens the range of voices; band-limiting
(down-sampling a clip to a random lower rate such as telephone's 8 kHz and back up) teaches the model spectra
without their upper band, which is what a file recorded at a lower rate looks like once read at the run's rate;
a random gain covers loudness; reverberation (convolution with a synthetic room response: exponentially decaying
noise with a random decay time) adds the room that dry synthetic voices lack and real recordings carry. SpecAugment masks, time shift and noise on the log-mel map run in the adapter
(:class:`~lkconv.modalities.audio.adapter.AudioAdapter`).

Every function draws only from the ``numpy`` Generator it is given (the data layer's per-sample
``default_rng((seed, epoch, index))``), so a seed fixes the result.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...data.readers.audio import resample

__all__ = ["BAND_LIMIT_RATES", "RT60_RANGE", "speed_perturb", "band_limit", "random_gain", "room_response", "reverb",
           "augment_wave"]

BAND_LIMIT_RATES = (8000, 11025, 12000)  # telephone, and the other common low rates
RT60_RANGE = (0.1, 0.6)  # seconds for the sound to fall by 60 dB: from a small treated room to a living room


def speed_perturb(wave: torch.Tensor, rng: np.random.Generator, amount: float) -> torch.Tensor:
    """Plays a (N,) waveform at a random speed factor in ``[1 - amount, 1 + amount]`` (linear resampling to
    ``N / factor`` samples; tempo and pitch change together). ``amount`` 0 returns ``wave``."""
    if amount <= 0 or wave.shape[-1] < 2:
        return wave
    factor = float(rng.uniform(1.0 - amount, 1.0 + amount))
    n = max(2, int(round(wave.shape[-1] / factor)))
    return F.interpolate(wave.float()[None, None], size=n, mode="linear", align_corners=True)[0, 0].to(wave.dtype)


def band_limit(wave: torch.Tensor, rng: np.random.Generator, sample_rate: int, prob: float,
               rates: tuple[int, ...] = BAND_LIMIT_RATES) -> torch.Tensor:
    """With probability ``prob``, resamples a (N,) waveform at ``sample_rate`` down to one of ``rates`` (below
    ``sample_rate``) and back: its content above the lower rate's Nyquist frequency is removed, as in a recording made
    at that rate. Same length and dtype; ``prob`` 0 (or no lower rate) returns ``wave``."""
    lower = [r for r in rates if r < sample_rate]
    if prob <= 0 or not lower or rng.random() >= prob:
        return wave
    rate = int(lower[int(rng.integers(0, len(lower)))])
    back = resample(resample(wave.float(), sample_rate, rate), rate, sample_rate)
    n = wave.shape[-1]
    back = back[..., :n] if back.shape[-1] >= n else F.pad(back, (0, n - back.shape[-1]))
    return back.to(wave.dtype)


def random_gain(wave: torch.Tensor, rng: np.random.Generator, db: float) -> torch.Tensor:
    """Multiplies a waveform by a random gain of ``U(-db, db)`` decibels; ``db`` 0 returns ``wave``."""
    if db <= 0:
        return wave
    return wave * float(10.0 ** (rng.uniform(-db, db) / 20.0))


def room_response(rng: np.random.Generator, sample_rate: int, rt60: float) -> torch.Tensor:
    """A synthetic room impulse response: a unit direct path followed, after 1-5 ms, by Gaussian noise whose
    amplitude decays by 60 dB in ``rt60`` seconds (late reverberation), scaled to a random direct-to-reverberant
    energy ratio of 0-10 dB."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB in power at rt60
    delay = int(rng.uniform(0.001, 0.005) * sample_rate)
    tail[: delay + 1] = 0.0
    drr = 10.0 ** (rng.uniform(0.0, 10.0) / 10.0)
    tail *= np.sqrt(1.0 / (drr * max(float(np.sum(tail**2)), 1e-12)))
    tail[0] = 1.0
    return torch.from_numpy(tail.astype(np.float32))


def reverb(wave: torch.Tensor, rng: np.random.Generator, sample_rate: int, prob: float,
           rt60: tuple[float, float] = RT60_RANGE) -> torch.Tensor:
    """With probability ``prob``, convolves a (N,) waveform with :func:`room_response` of a decay time drawn from
    ``rt60`` (same length: the tail past the clip is dropped; the peak level is kept). ``prob`` 0 returns ``wave``."""
    if prob <= 0 or rng.random() >= prob:
        return wave
    h = room_response(rng, sample_rate, float(rng.uniform(*rt60)))
    n = wave.shape[-1]
    size = 1 << int(math.ceil(math.log2(n + h.shape[0])))
    wet = torch.fft.irfft(torch.fft.rfft(wave.float(), size) * torch.fft.rfft(h, size), size)[..., :n]
    peak, wet_peak = wave.abs().max(), wet.abs().max()
    if wet_peak > 0:
        wet = wet * (peak / wet_peak)
    return wet.to(wave.dtype)


def augment_wave(wave: torch.Tensor, rng: np.random.Generator, sample_rate: int, *, speed: float = 0.0,
                 band: float = 0.0, gain: float = 0.0, reverb_prob: float = 0.0) -> torch.Tensor:
    """Speed perturbation, reverberation, band-limiting and gain in that order (each off at 0), before the clip is
    cut to length."""
    wave = speed_perturb(wave, rng, speed)
    wave = reverb(wave, rng, sample_rate, reverb_prob)
    wave = band_limit(wave, rng, sample_rate, band)
    return random_gain(wave, rng, gain)
