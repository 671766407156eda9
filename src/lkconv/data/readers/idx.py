"""IDX files (the MNIST / Fashion-MNIST container), plain or gzip-compressed.

Layout: a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the
data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "read_idx", "write_idx"]

# dtype code (third magic byte) -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    # Sniff the content rather than trust the suffix: some mirrors ship gzip data without `.gz`.
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: looks gzip-compressed but could not be decompressed ({e})") from e
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file into a numpy array.

    Args:
        path: ``.idx``/``-ubyte`` file, optionally gzip-compressed (detected from the content).

    Returns:
        Array of shape given by the header, in native byte order (uint8 for image/label files).

    Raises:
        ValueError: if the magic number, dtype code or payload size is invalid.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: file has {len(raw)} bytes, too short for the 4-byte IDX magic number")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(f"{path}: bad IDX magic {raw[:4].hex()}: the first two bytes must be 0 (is this an IDX file?)")
    if code not in IDX_DTYPES:
        accepted = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} in byte 3 of the header; accepted: {accepted}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{path}: header declares {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_len
    if payload != expected:
        raise ValueError(
            f"{path}: header shape {shape} of {dtype.name} needs {expected} data bytes, the file has {payload}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Writes an array as an IDX file.

    Args:
        path: output path; gzip-compressed when ``compress`` is True, or when it is None and the name ends in ``.gz``.
        array: uint8, int8, int16, int32, float32 or float64 array with at least one dimension.
        compress: force or forbid gzip compression.

    Returns:
        The path written.

    Raises:
        ValueError: if the dtype or number of dimensions cannot be stored in IDX.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("=").str[1:]: c for c, dt in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in codes:
        raise ValueError(
            f"write_idx({path}): dtype {array.dtype} cannot be stored in IDX; accepted: "
            "uint8, int8, int16, int32, float32, float64"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx({path}): array has {array.ndim} dimensions; IDX stores 1 to 255")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    blob = header + body
    if compress:
        blob = gzip.compress(blob, mtime=0)
    with open(path, "wb") as f:
        f.write(blob)
    return path
