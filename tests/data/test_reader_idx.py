import gzip
import struct

import numpy as np
import pytest

from lkconv.data.readers.idx import read_idx, write_idx


def _handmade_idx(shape, dtype_code, payload: bytes) -> bytes:
    return bytes([0, 0, dtype_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def test_reads_handmade_uint8_images_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    blob = _handmade_idx((2, 3, 4), 0x08, images.tobytes())
    (tmp_path / "imgs-idx3-ubyte").write_bytes(blob)
    (tmp_path / "imgs-idx3-ubyte.gz").write_bytes(gzip.compress(blob))
    for name in ("imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"):
        out = read_idx(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, images)


def test_labels_1d_and_big_endian_types(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "labels-idx1-ubyte").write_bytes(_handmade_idx((5,), 0x08, labels.tobytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-idx1-ubyte"), labels)
    ints = np.array([[-2, 70000], [5, -1]], dtype=">i4")
    (tmp_path / "ints.idx").write_bytes(_handmade_idx((2, 2), 0x0C, ints.tobytes()))
    out = read_idx(tmp_path / "ints.idx")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, [[-2, 70000], [5, -1]])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_read_roundtrip(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 5, 2)) * 50).astype(dtype)
    path = write_idx(tmp_path / "a.idx.gz", arr)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), arr)


def test_errors_name_the_file_and_problem(tmp_path):
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=r"bad_magic.*magic"):
        read_idx(bad_magic)
    bad_code = tmp_path / "bad_code"
    bad_code.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="dtype code 0x07"):
        read_idx(bad_code)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(_handmade_idx((4, 4), 0x08, b"\x00" * 10))
    with pytest.raises(ValueError, match=r"truncated.*needs 16 data bytes, the file has 10"):
        read_idx(truncated)
    with pytest.raises(ValueError, match="cannot be stored"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.uint16))


def test_fashion_mnist_if_installed():
    from pathlib import Path

    root = Path("/usr/share/datasets/fashion-mnist")
    if not (root / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz")
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert set(np.unique(labels).tolist()) == set(range(10))
