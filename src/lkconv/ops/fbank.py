"""Kaldi-compatible log-mel filterbank features in plain torch.

Follows Kaldi's ``compute-fbank-feats`` (and ``torchaudio.compliance.kaldi.fbank``): frames of ``frame_length_ms``
every ``frame_shift_ms``; per frame optional dither, DC-offset removal, raw log energy, pre-emphasis, a window
(``povey``, ``hanning``, ``hamming``, ``rectangular``, ``blackman``, ``sine``), zero-padding to a power of two, the
power spectrum, triangular filters equally spaced on the mel scale ``1127 ln(1 + f / 700)``, and ``log(max(x, eps))``
with ``eps`` the float32 machine epsilon.

Differences from torchaudio: any leading dimensions are batch dimensions (torchaudio keeps channel 0 of a
(channels, time) input), and the defaults are those of the UniRepLKNet audio recipe (128 bins, Hanning window,
``htk_compat=True``, no dither) rather than Kaldi's (23 bins, Povey window, dither 1). VTLN warping is not
implemented.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["WINDOWS", "feature_window", "kaldi_fbank", "mel_banks", "mel_scale", "num_frames"]

WINDOWS = ("hanning", "hamming", "povey", "rectangular", "blackman", "sine")
_EPS = torch.finfo(torch.float32).eps  # Kaldi floors with the float epsilon whatever the compute dtype


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi/HTK mel scale: ``1127 ln(1 + f / 700)``."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


@functools.lru_cache(maxsize=32)
def _window(name: str, size: int, blackman_coeff: float) -> torch.Tensor:
    n = torch.arange(size, dtype=torch.float64)
    a = 2 * math.pi / (size - 1) if size > 1 else 0.0
    if name == "hanning":
        return 0.5 - 0.5 * torch.cos(a * n)
    if name == "hamming":
        return 0.54 - 0.46 * torch.cos(a * n)
    if name == "povey":
        return (0.5 - 0.5 * torch.cos(a * n)).pow(0.85)
    if name == "rectangular":
        return torch.ones(size, dtype=torch.float64)
    if name == "blackman":
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    if name == "sine":
        return torch.sin(0.5 * a * n)
    raise ValueError(f"window={name!r} is not known; accepted: {', '.join(WINDOWS)}")


def feature_window(name: str, size: int, *, blackman_coeff: float = 0.42) -> torch.Tensor:
    """Kaldi's analysis window of ``size`` samples (symmetric, as Kaldi defines it) in float64.

    Raises:
        ValueError: for an unknown window name or a size below 1.
    """
    if size < 1:
        raise ValueError(f"feature_window: size={size}; expected >= 1")
    return _window(name, size, blackman_coeff).clone()


@functools.lru_cache(maxsize=32)
def _mel_banks(num_bins: int, padded: int, sample_rate: float, low: float, high: float) -> torch.Tensor:
    num_fft_bins = padded // 2
    mel_low, mel_high = mel_scale(low), mel_scale(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + delta * torch.arange(num_bins, dtype=torch.float64)[:, None]
    centre, right = left + delta, left + 2 * delta
    mel = mel_scale(torch.arange(num_fft_bins, dtype=torch.float64) * (sample_rate / padded))[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # Kaldi's filters stop below the Nyquist bin: give it a zero column so the banks match rfft's output length
    return torch.nn.functional.pad(banks, (0, 1))


def mel_banks(
    num_bins: int, padded_window_size: int, sample_rate: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a (num_bins, padded_window_size // 2 + 1) float64 matrix.

    Args:
        num_bins: number of triangular filters.
        padded_window_size: FFT size.
        sample_rate: in Hz.
        low_freq: lower edge of the first filter in Hz.
        high_freq: upper edge of the last filter in Hz; a value <= 0 is an offset from the Nyquist frequency.

    Raises:
        ValueError: if the frequency range is empty or outside [0, Nyquist], or ``num_bins < 1``.
    """
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    if num_bins < 1:
        raise ValueError(f"mel_banks: num_mel_bins={num_bins}; expected >= 1")
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and high > low_freq):
        raise ValueError(
            f"mel_banks: low_freq={low_freq}, high_freq={high_freq} (-> {high}) with sample_rate={sample_rate}; "
            f"need 0 <= low_freq < high <= Nyquist ({nyquist})"
        )
    return _mel_banks(num_bins, padded_window_size, float(sample_rate), float(low_freq), float(high)).clone()


def num_frames(num_samples: int, window_size: int, window_shift: int, snip_edges: bool = True) -> int:
    """Number of frames Kaldi extracts from ``num_samples`` samples."""
    if snip_edges:
        return 0 if num_samples < window_size else 1 + (num_samples - window_size) // window_shift
    return (num_samples + window_shift // 2) // window_shift


def _frames(x: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """(B, N) -> (B, F, size) frames."""
    n = x.shape[-1]
    m = num_frames(n, size, shift, snip_edges)
    if snip_edges:
        return x.unfold(-1, size, shift)
    # Kaldi centres frame f on f * shift + shift / 2 and mirrors the signal at both ends
    start = torch.arange(m, device=x.device) * shift + shift // 2 - size // 2
    idx = start[:, None] + torch.arange(size, device=x.device)[None, :]
    # repeated reflection (Kaldi loops until the index is inside) is a reflection with period 2n
    idx = torch.remainder(idx, 2 * n)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return x[:, idx]


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window: str = "hanning",
    htk_compat: bool = True,
    dither: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    use_energy: bool = False,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    snip_edges: bool = True,
    *,
    round_to_power_of_two: bool = True,
    blackman_coeff: float = 0.42,
    energy_floor: float = 1.0,
    raw_energy: bool = True,
    use_log_fbank: bool = True,
    use_power: bool = True,
    subtract_mean: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Kaldi-style (log-)mel filterbank features.

    Args:
        waveform: (..., time) samples; leading dimensions are a batch. Integer tensors are converted to float32.
            Kaldi works on the raw sample scale (int16 range); features of a [-1, 1] signal differ by a constant
            ``2 * ln(32768)`` in every log bin.
        sample_rate: in Hz.
        num_mel_bins: number of triangular mel filters.
        frame_length_ms: frame length in milliseconds (``int(sample_rate * ms / 1000)`` samples).
        frame_shift_ms: frame shift in milliseconds.
        window: one of ``hanning``, ``hamming``, ``povey``, ``rectangular``, ``blackman``, ``sine``.
        htk_compat: put the energy (``use_energy``) after the mel bins instead of before them.
        dither: standard deviation of Gaussian noise added to every frame before anything else (0 = none).
        preemphasis: coefficient of ``x[i] - c * x[i-1]`` (the first sample uses itself as predecessor).
        remove_dc_offset: subtract each frame's mean.
        use_energy: add a log-energy column.
        low_freq: lower edge of the mel filters in Hz.
        high_freq: upper edge in Hz; a value <= 0 is an offset from the Nyquist frequency.
        snip_edges: only frames that fit entirely in the signal; otherwise ``(N + shift // 2) // shift`` frames
            centred on the shifts, with the signal mirrored at the ends.
        round_to_power_of_two: zero-pad each frame to the next power of two before the FFT.
        blackman_coeff: the ``blackman`` window's coefficient.
        energy_floor: floor of the energy, applied as ``max(log_energy, log(energy_floor))`` when > 0.
        raw_energy: take the energy before pre-emphasis and windowing (else after).
        use_log_fbank: return ``log(max(mel, eps))``; the linear mel energies when False.
        use_power: power spectrum (magnitude when False).
        subtract_mean: subtract the mean over frames of every bin.
        generator: random generator for ``dither``.

    Returns:
        (..., frames, num_mel_bins [+1 with use_energy]) tensor in the waveform's floating dtype; ``frames`` is
        ``1 + (N - window) // shift`` with ``snip_edges`` (0 when the signal is shorter than one window).

    Raises:
        ValueError: on an unknown window, a frame shorter than 2 samples, a shift below 1 sample, or a bad frequency
            range.
    """
    if window not in WINDOWS:
        raise ValueError(f"kaldi_fbank: window={window!r}; accepted: {', '.join(WINDOWS)}")
    if sample_rate <= 0:
        raise ValueError(f"kaldi_fbank: sample_rate={sample_rate}; expected > 0")
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if size < 2 or shift < 1:
        raise ValueError(
            f"kaldi_fbank: frame_length_ms={frame_length_ms} and frame_shift_ms={frame_shift_ms} at {sample_rate} Hz "
            f"give {size} and {shift} samples; need a frame of >= 2 samples and a shift of >= 1"
        )
    if waveform.ndim < 1:
        raise ValueError("kaldi_fbank: waveform must have a time dimension, got a 0-d tensor")
    x = waveform if waveform.is_floating_point() else waveform.to(torch.float32)
    dtype, device = x.dtype, x.device
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    banks = mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(device=device, dtype=dtype)

    lead = x.shape[:-1]
    n_out = num_mel_bins + (1 if use_energy else 0)
    if num_frames(x.shape[-1], size, shift, snip_edges) == 0:  # too short for one frame (rfft rejects empty input)
        return x.new_zeros(*lead, 0, n_out)
    frames = _frames(x.reshape(math.prod(lead), x.shape[-1]), size, shift, snip_edges)  # (B, F, size)
    if dither != 0.0:
        noise = torch.randn(frames.shape, generator=generator, dtype=dtype, device=device)
        frames = frames + dither * noise
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    energy = None
    if use_energy and raw_energy:
        energy = frames.pow(2).sum(-1).clamp_min(_EPS).log()
    if preemphasis != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * previous
    frames = frames * _window(window, size, blackman_coeff).to(device=device, dtype=dtype)
    if padded > size:
        frames = torch.nn.functional.pad(frames, (0, padded - size))
    if use_energy and not raw_energy:
        energy = frames.pow(2).sum(-1).clamp_min(_EPS).log()

    spectrum = torch.fft.rfft(frames)
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.matmul(power if use_power else power.sqrt(), banks.T)
    if use_log_fbank:
        mel = mel.clamp_min(_EPS).log()
    if energy is not None:
        if energy_floor > 0.0:
            energy = energy.clamp_min(math.log(energy_floor))
        parts = (mel, energy[..., None]) if htk_compat else (energy[..., None], mel)
        mel = torch.cat(parts, dim=-1)
    if subtract_mean and mel.shape[-2] > 0:
        mel = mel - mel.mean(dim=-2, keepdim=True)
    return mel.reshape(*lead, *mel.shape[-2:])
