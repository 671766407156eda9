import sys

import numpy as np
import pytest

from lkconv.data.readers.video import probe_video, read_video, sample_frame_indices

N_FRAMES = 12


def _write_clip(path, codec: str, n: int = N_FRAMES, height: int = 48, width: int = 64):
    av = pytest.importorskip("av")
    if codec not in av.codecs_available:
        pytest.skip(f"FFmpeg in this PyAV build has no {codec} encoder")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            image = np.full((height, width, 3), 15 + 20 * i, dtype=np.uint8)  # frame i is grey level 15 + 20 i
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frame_ids(frames: np.ndarray) -> list[int]:
    return [round((float(f.mean()) - 15) / 20) for f in frames]


@pytest.mark.parametrize(
    ("name", "codec"), [("a.mp4", "mpeg4"), ("b.mkv", "mpeg4"), ("c.avi", "mpeg4"), ("d.webm", "libvpx")]
)
def test_decode_all_and_uniform_sampling(tmp_path, name, codec):
    path = _write_clip(tmp_path / name, codec)
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (N_FRAMES, 48, 64)
    assert info.fps == pytest.approx(10.0)
    every = read_video(path)
    assert every.shape == (N_FRAMES, 48, 64, 3) and every.dtype == np.uint8
    assert _frame_ids(every) == list(range(N_FRAMES))
    four = read_video(path, num_frames=4)
    assert _frame_ids(four) == sample_frame_indices(N_FRAMES, 4).tolist() == [1, 4, 7, 10]
    small = read_video(path, num_frames=3, size=(24, 40))
    assert small.shape == (3, 24, 40, 3)
    many = read_video(path, num_frames=20)  # more than the clip has: frames repeat, order kept
    ids = _frame_ids(many)
    assert len(ids) == 20 and ids == sorted(ids) and set(ids) == set(range(N_FRAMES))


def test_sample_frame_indices():
    assert sample_frame_indices(10, 1).tolist() == [5]
    assert sample_frame_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert sample_frame_indices(100, 4).tolist() == [12, 37, 62, 87]
    with pytest.raises(ValueError, match="both must be >= 1"):
        sample_frame_indices(0, 4)


def test_video_errors(tmp_path):
    pytest.importorskip("av")
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        read_video(tmp_path / "junk.mp4")
    with pytest.raises(ValueError, match="no such video file"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="num_frames=0"):
        read_video(tmp_path / "junk.mp4", num_frames=0)


def test_missing_pyav_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r"pip install lkconv\[video\]"):
        read_video(tmp_path / "clip.mp4")
