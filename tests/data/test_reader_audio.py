import math
import struct
import sys
import wave

import numpy as np
import pytest
import torch

from lkconv.data.readers.audio import read_audio, read_wav, resample, write_wav


def _stdlib_wav(path, frames: bytes, channels: int, width: int, rate: int = 8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def _riff(fmt: bytes, data: bytes, extra_chunk: bytes = b"") -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunk
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_pcm_8_16_24_32_bit(tmp_path):
    ints = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    expected16 = ints / 32768.0
    p16 = _stdlib_wav(tmp_path / "a16.wav", ints.astype("<i2").tobytes(), 1, 2)
    x, sr = read_wav(p16)
    assert sr == 8000 and x.shape == (1, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], expected16)

    p8 = _stdlib_wav(tmp_path / "a8.wav", bytes([0, 64, 128, 192, 255]), 1, 1)
    np.testing.assert_allclose(read_wav(p8)[0][0], (np.array([0, 64, 128, 192, 255]) - 128) / 128)

    v24 = np.array([-(1 << 23), -5, 0, 5, (1 << 23) - 1])
    raw24 = b"".join(int(v).to_bytes(3, "little", signed=True) for v in v24)
    np.testing.assert_allclose(read_wav(_stdlib_wav(tmp_path / "a24.wav", raw24, 1, 3))[0][0], v24 / 2**23)

    v32 = np.array([-(2**31), -7, 0, 2**30], dtype="<i4")
    np.testing.assert_allclose(read_wav(_stdlib_wav(tmp_path / "a32.wav", v32.tobytes(), 1, 4))[0][0], v32 / 2**31)


def test_stereo_mono_interleaving_and_resample_on_load(tmp_path):
    left, right = np.full(100, 1000, np.int16), np.full(100, -3000, np.int16)
    frames = np.stack([left, right], axis=1).astype("<i2").tobytes()
    path = _stdlib_wav(tmp_path / "st.wav", frames, 2, 2, rate=16000)
    wave_, sr = read_audio(path)
    assert wave_.shape == (2, 100) and wave_.dtype == torch.float32 and sr == 16000
    torch.testing.assert_close(wave_[1], torch.full((100,), -3000 / 32768))
    mono, _ = read_audio(path, mono=True)
    torch.testing.assert_close(mono, torch.full((1, 100), -1000 / 32768))
    down, sr = read_audio(path, sample_rate=8000, dtype=torch.float64)
    assert sr == 8000 and down.shape == (2, 50) and down.dtype == torch.float64


def test_float_extensible_and_odd_chunks(tmp_path):
    x = np.array([[0.5, -0.25, 1.5], [0.0, 0.125, -1.0]], dtype=np.float32)
    path = write_wav(tmp_path / "f.wav", x, 22050, bits=-32)
    y, sr = read_wav(path)
    np.testing.assert_array_equal(y, x)
    assert sr == 22050
    # WAVE_FORMAT_EXTENSIBLE, 24-bit, 3 channels, after an odd-sized LIST chunk that needs a pad byte
    guid_pcm = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 3, 48000, 48000 * 9, 9, 24) + struct.pack("<HHI", 22, 24, 0x7) + guid_pcm
    samples = np.array([[1, -1, 1 << 22], [0, 2, -(1 << 22)]])
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples.reshape(-1))
    odd = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"
    (tmp_path / "ext.wav").write_bytes(_riff(fmt, data, odd))
    y, sr = read_wav(tmp_path / "ext.wav")
    assert sr == 48000 and y.shape == (3, 2)
    np.testing.assert_allclose(y, samples.T / 2**23)


def test_wav_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=r"junk\.wav: not a RIFF/WAVE"):
        read_wav(tmp_path / "junk.wav")
    adpcm = struct.pack("<HHIIHH", 2, 1, 8000, 4000, 256, 4)
    (tmp_path / "adpcm.wav").write_bytes(_riff(adpcm, b"\0" * 256))
    with pytest.raises(ValueError, match=r"adpcm\.wav: WAV format tag 0x0002"):
        read_wav(tmp_path / "adpcm.wav")
    (tmp_path / "nodata.wav").write_bytes(_riff(adpcm, b"")[: 12 + 8 + 16])
    with pytest.raises(ValueError, match="lacks a 'data' chunk"):
        read_wav(tmp_path / "nodata.wav")
    with pytest.raises(ValueError, match="no such audio file"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="accepted: 16, 32"):
        write_wav(tmp_path / "x.wav", np.zeros(3), 8000, bits=8)


def test_flac_through_soundfile(tmp_path):
    sf = pytest.importorskip("soundfile")
    x = (np.sin(np.linspace(0, 20, 800)) * 0.5).astype(np.float32)
    sf.write(str(tmp_path / "a.flac"), x, 8000, subtype="PCM_16")
    y, sr = read_audio(tmp_path / "a.flac")
    assert sr == 8000 and y.shape == (1, 800)
    np.testing.assert_allclose(y[0].numpy(), x, atol=1 / 32768)


def test_missing_soundfile_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a.flac").write_bytes(b"fLaC")
    monkeypatch.setitem(sys.modules, "soundfile", None)  # makes `import soundfile` raise ImportError
    with pytest.raises(ImportError, match=r"pip install lkconv\[audio\]"):
        read_audio(tmp_path / "a.flac")


@pytest.mark.parametrize(
    ("orig", "new", "freq"), [(44100, 16000, 440.0), (8000, 16000, 1000.0), (16000, 16001, 2500.0)]
)
def test_resample_sine_keeps_frequency_and_length(orig, new, freq):
    n = orig // 2
    t = torch.arange(n, dtype=torch.float64) / orig
    x = torch.sin(2 * math.pi * freq * t)
    y = resample(x, orig, new)
    assert y.shape == (math.ceil(n * new / orig),) and y.dtype == torch.float64
    spectrum = torch.fft.rfft(y * torch.hann_window(len(y), dtype=y.dtype)).abs()
    assert spectrum.argmax().item() * new / len(y) == pytest.approx(freq, abs=new / len(y))
    ty = torch.arange(len(y), dtype=torch.float64) / new
    inner = slice(new // 50, -new // 50)  # away from the zero-padded ends
    torch.testing.assert_close(y[inner], torch.sin(2 * math.pi * freq * ty)[inner], atol=2e-4, rtol=0)


def test_resample_batch_and_removes_aliases():
    x = torch.randn(2, 3, 1000)
    y = resample(x, 16000, 8000)
    assert y.shape == (2, 3, 500) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 2], resample(x[1, 2], 16000, 8000))
    assert torch.equal(resample(x, 8000, 8000), x)
    # a 7 kHz tone is above the 4 kHz Nyquist of the 8 kHz output: it must be filtered out, not folded to 1 kHz
    t = torch.arange(16000, dtype=torch.float64) / 16000
    alias = resample(torch.sin(2 * math.pi * 7000 * t), 16000, 8000)
    assert alias[400:-400].abs().max() < 1e-2
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 0, 8000)
    with pytest.raises(ValueError, match="floating tensor"):
        resample(torch.zeros(10, dtype=torch.int16), 8000, 16000)


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (16000, 44100), (8000, 16000), (48000, 8000)])
def test_resample_polyphase_and_gather_paths_agree(orig, new):
    from lkconv.data.readers.audio import _resample_gather, _resample_polyphase

    g = math.gcd(orig, new)
    up, down = new // g, orig // g
    two_fc = 0.9 * min(up, down) / down
    x = torch.randn(2, 997, dtype=torch.float64)
    n_out = -(-997 * up // down)
    fast = _resample_polyphase(x, up, down, two_fc, 16 / two_fc, n_out)
    slow = _resample_gather(x, up, down, two_fc, 16 / two_fc, n_out)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)
