"""Audio files to float tensors, and band-limited resampling in torch.

WAV (PCM 8/16/24/32-bit integer, 32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE) is parsed here with the standard
library; FLAC, OGG and other containers go through ``soundfile`` (``pip install lkconv[audio]``).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["read_audio", "read_wav", "resample", "write_wav"]

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE


def _soundfile(path: Path) -> Any:
    try:
        import soundfile
    except ImportError as e:
        raise ImportError(
            f"{path}: reading this audio file needs the optional package 'soundfile': pip install lkconv[audio]"
        ) from e
    return soundfile


def _parse_fmt(chunk: bytes, path: Path) -> tuple[int, int, int, int, int]:
    if len(chunk) < 16:
        raise ValueError(f"{path}: WAV 'fmt ' chunk has {len(chunk)} bytes, at least 16 are needed")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", chunk[:16])
    if tag == _EXTENSIBLE:
        if len(chunk) < 40:
            raise ValueError(f"{path}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {len(chunk)} bytes, 40 are needed")
        tag = struct.unpack("<H", chunk[24:26])[0]  # the sub-format GUID starts with the plain format code
    return tag, channels, rate, block_align, bits


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads a RIFF/WAVE file without optional dependencies.

    Args:
        path: the ``.wav`` file.

    Returns:
        ``(samples, sample_rate)`` with samples float32 of shape (channels, frames), integers scaled to [-1, 1).

    Raises:
        ValueError: if the file is not a PCM/float WAV (e.g. ADPCM, RF64) or is truncated.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot open WAV file ({e})") from e
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file (starts with {raw[:4]!r}); accepted: RIFF ... WAVE")
    fmt = data = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]  # a streamed file may declare more than it holds: keep what exists
        if cid == b"fmt ":
            fmt = _parse_fmt(body, path)
        elif cid == b"data":
            data = body
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None or data is None:
        raise ValueError(f"{path}: WAV file lacks a {'fmt ' if fmt is None else 'data'!r} chunk")
    tag, channels, rate, block_align, bits = fmt
    if channels < 1 or block_align < 1:
        raise ValueError(f"{path}: WAV header declares {channels} channels and block size {block_align}")
    width = block_align // channels
    data = data[: len(data) - len(data) % block_align]
    if tag == _PCM and width in (1, 2, 3, 4):
        if width == 1:
            x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
        elif width == 3:
            b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = ((v << 8) >> 8).astype(np.float32) / float(1 << 23)  # sign-extend from 24 bits
        else:
            x = np.frombuffer(data, f"<i{width}").astype(np.float32) / float(1 << (8 * width - 1))
    elif tag == _FLOAT and width in (4, 8):
        x = np.frombuffer(data, f"<f{width}").astype(np.float32)
    else:
        raise ValueError(
            f"{path}: WAV format tag 0x{tag:04X} with {bits}-bit samples is not supported here; accepted: PCM "
            "8/16/24/32-bit, float 32/64-bit (other codecs read through soundfile: pip install lkconv[audio])"
        )
    return np.ascontiguousarray(x.reshape(-1, channels).T), rate


def read_audio(
    path: str | os.PathLike,
    *,
    mono: bool = False,
    sample_rate: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Reads an audio file into a float tensor.

    WAV is read natively; anything else (FLAC, OGG, AIFF, ...), or a WAV the native reader rejects, is read with
    ``soundfile`` when it is installed.

    Args:
        path: the audio file.
        mono: average the channels into one.
        sample_rate: resample to this rate (see :func:`resample`); keep the file's rate when None.
        dtype: floating dtype of the result.

    Returns:
        ``(waveform, sample_rate)`` with waveform of shape (channels, frames), values in [-1, 1].

    Raises:
        ValueError: on an unreadable file, or one with NaN or infinite samples.
        ImportError: when the format needs ``soundfile`` and it is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such audio file")
    if path.suffix.lower() in (".wav", ".wave"):
        try:
            x, sr = read_wav(path)
        except ValueError as native_error:
            try:
                sf = _soundfile(path)
            except ImportError:
                raise native_error from None
            x, sr = _read_with_soundfile(sf, path)
    else:
        x, sr = _read_with_soundfile(_soundfile(path), path)
    if not np.isfinite(x).all():  # float WAV/FLAC can hold them; they would reach training as a NaN loss
        raise ValueError(f"{path}: {int((~np.isfinite(x)).sum())} of {x.size} samples are NaN or infinite; accepted: "
                         "finite samples")
    wave = torch.from_numpy(x).to(dtype)
    if mono and wave.shape[0] > 1:
        wave = wave.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != sr:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave, sr


def _read_with_soundfile(sf: Any, path: Path) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own LibsndfileError / RuntimeError types
        raise ValueError(f"{path}: soundfile could not decode this file ({e})") from e
    return np.ascontiguousarray(x.T), int(sr)


def write_wav(
    path: str | os.PathLike, waveform: torch.Tensor | np.ndarray, sample_rate: int, *, bits: int = 16
) -> Path:
    """Writes a (channels, frames) or (frames,) waveform in [-1, 1] as a WAV file.

    Args:
        path: output path.
        waveform: samples; values outside [-1, 1] are clipped for integer formats.
        sample_rate: in Hz.
        bits: 16 or 32 (integer PCM), or -32 for 32-bit float.

    Raises:
        ValueError: for another ``bits`` value or a bad shape.
    """
    x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"write_wav: waveform has shape {x.shape}; expected (channels, frames) or (frames,)")
    if bits == 16:
        payload, tag, width = (np.clip(x, -1, 1 - 2**-15) * 2**15).round().astype("<i2"), _PCM, 2
    elif bits == 32:
        payload, tag, width = (np.clip(x, -1, 1 - 2**-31) * 2.0**31).round().astype("<i4"), _PCM, 4
    elif bits == -32:
        payload, tag, width = x.astype("<f4"), _FLOAT, 4
    else:
        raise ValueError(f"write_wav: bits={bits}; accepted: 16, 32 (integer PCM), -32 (float)")
    channels = x.shape[0]
    data = np.ascontiguousarray(payload.T).tobytes()
    fmt = struct.pack(
        "<HHIIHH", tag, channels, sample_rate, sample_rate * channels * width, channels * width, 8 * width
    )
    blob = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    if len(data) & 1:
        blob += b"\0"
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(blob)) + blob)
    return path


def resample(
    waveform: torch.Tensor,
    orig_sr: int,
    new_sr: int,
    *,
    lowpass_filter_width: int = 16,
    rolloff: float = 0.9,
) -> torch.Tensor:
    """Band-limited resampling with a Hann-windowed sinc kernel.

    Output sample ``n`` is the low-passed input evaluated at input time ``n * orig_sr / new_sr`` (exact rational
    arithmetic, so any pair of rates works). The cut-off is ``rolloff`` times the lower of the two Nyquist
    frequencies; the kernel spans ``lowpass_filter_width`` zero crossings on each side. The signal is taken as zero
    outside its ends.

    Args:
        waveform: (..., time) float tensor.
        orig_sr: input sample rate in Hz.
        new_sr: output sample rate in Hz.
        lowpass_filter_width: zero crossings of the sinc on each side (sharper cut-off when larger).
        rolloff: cut-off as a fraction of the lower Nyquist frequency, in (0, 1].

    Returns:
        (..., ceil(time * new_sr / orig_sr)) tensor of the input's dtype.

    Raises:
        ValueError: on non-positive rates, a non-floating input, or parameters out of range.
    """
    if not (isinstance(orig_sr, int) and isinstance(new_sr, int)) or orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"resample: rates must be positive integers, got orig_sr={orig_sr!r}, new_sr={new_sr!r}")
    if not waveform.is_floating_point():
        raise ValueError(f"resample: waveform dtype is {waveform.dtype}; a floating tensor is needed")
    if not 0.0 < rolloff <= 1.0 or lowpass_filter_width < 1:
        raise ValueError(
            f"resample: rolloff={rolloff}, lowpass_filter_width={lowpass_filter_width}; "
            "accepted: 0 < rolloff <= 1 and lowpass_filter_width >= 1"
        )
    if orig_sr == new_sr:
        return waveform.clone()
    g = math.gcd(orig_sr, new_sr)
    up, down = new_sr // g, orig_sr // g  # output n sits at input time n * down / up
    two_fc = rolloff * min(up, down) / down  # cut-off, in cycles per input sample, times two
    half_width = lowpass_filter_width / two_fc  # window half-width in input samples
    n_in = waveform.shape[-1]
    n_out = -(-n_in * up // down)
    x = waveform.reshape(-1, n_in)
    reach = math.ceil(half_width)
    # one conv1d over all phases when its (up, down + taps) weight is small; else gather per output sample
    if up * (down + 2 * reach + 2) <= 1 << 22:
        out = _resample_polyphase(x, up, down, two_fc, half_width, n_out)
    else:
        out = _resample_gather(x, up, down, two_fc, half_width, n_out)
    return out.reshape(*waveform.shape[:-1], n_out)


def _sinc_kernel(frac: torch.Tensor, taps: torch.Tensor, two_fc: float, half_width: float) -> torch.Tensor:
    """Kernel weights (len(frac), len(taps)) in float64 for outputs at input time ``base + frac``, taps ``base + r``."""
    tau = frac[:, None] - taps[None, :].to(torch.float64)
    window = torch.where(tau.abs() <= half_width, torch.cos(tau * (math.pi / (2 * half_width))) ** 2, 0.0)
    return two_fc * torch.sinc(two_fc * tau) * window


def _resample_polyphase(
    x: torch.Tensor, up: int, down: int, two_fc: float, half_width: float, n_out: int
) -> torch.Tensor:
    """(B, N) -> (B, n_out): output k * up + j = sum_c xpad[k * down + c] * weight[j, c], one strided conv1d."""
    reach = math.ceil(half_width)
    taps = torch.arange(-reach, reach + 2, device=x.device)
    phases = torch.arange(up, device=x.device, dtype=torch.int64)
    offset = phases * down // up  # phase j's input position relative to k * down
    table = _sinc_kernel((phases * down - offset * up).to(torch.float64) / up, taps, two_fc, half_width)
    width = int(offset[-1]) + taps.numel()
    weight = torch.zeros(up, width, dtype=torch.float64, device=x.device)
    weight.scatter_(1, offset[:, None] + torch.arange(taps.numel(), device=x.device)[None, :], table)
    blocks = -(-n_out // up)
    right = max(0, (blocks - 1) * down + width - (x.shape[-1] + reach))
    xpad = torch.nn.functional.pad(x, (reach, right))[:, None, :]
    y = torch.nn.functional.conv1d(xpad, weight.to(x.dtype)[:, None, :], stride=down)[:, :, :blocks]
    return y.transpose(1, 2).reshape(x.shape[0], blocks * up)[:, :n_out]


def _resample_gather(x: torch.Tensor, up: int, down: int, two_fc: float, half_width: float, n_out: int) -> torch.Tensor:
    """(B, N) -> (B, n_out) for rate pairs with very many phases: kernels computed per output, in chunks."""
    reach = math.ceil(half_width)
    taps = torch.arange(-reach, reach + 2, device=x.device)
    xpad = torch.nn.functional.pad(x, (reach, reach + 2))
    out = x.new_empty(x.shape[0], n_out)
    chunk = max(1, (1 << 21) // (taps.numel() * max(1, x.shape[0])))
    for start in range(0, n_out, chunk):
        n = torch.arange(start, min(start + chunk, n_out), device=x.device, dtype=torch.int64)
        base = n * down // up
        kernel = _sinc_kernel((n * down - base * up).to(torch.float64) / up, taps, two_fc, half_width).to(x.dtype)
        out[:, start : start + n.numel()] = (xpad[:, base[:, None] + taps[None, :] + reach] * kernel).sum(-1)
    return out
