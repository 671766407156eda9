"""Video files (mp4, avi, mkv, webm, ...) to uint8 frame arrays with PyAV (``pip install lkconv[video]``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VideoInfo", "probe_video", "read_video", "sample_frame_indices"]


@dataclass
class VideoInfo:
    """What a video stream declares.

    Attributes:
        num_frames: number of frames (from the container, or counted from the packets when it does not say).
        fps: average frame rate, or None when unknown.
        height: frame height in pixels.
        width: frame width in pixels.
        duration: seconds, or None when unknown.
        codec: decoder name.
    """

    num_frames: int
    fps: float | None
    height: int
    width: int
    duration: float | None
    codec: str


def _av(path: Path) -> Any:
    try:
        import av
    except ImportError as e:
        raise ImportError(
            f"{path}: decoding video needs the optional package 'av' (PyAV): pip install lkconv[video]"
        ) from e
    return av


def _open(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise ValueError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: FFmpeg cannot open this file as a video ({e})") from e
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: the file has no video stream")
    return container


def _count_frames(container: Any, stream: Any) -> int:
    if stream.frames:
        return int(stream.frames)
    # mkv/webm often do not store a frame count: count video packets (demuxing is cheap, nothing is decoded)
    return sum(1 for packet in container.demux(stream) if packet.size)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Reads a video's stream description without decoding frames.

    Raises:
        ValueError: if the file cannot be opened or has no video stream.
        ImportError: if PyAV is missing.
    """
    path = Path(path)
    av = _av(path)
    with _open(av, path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # microseconds (av.time_base)
        ctx = stream.codec_context
        return VideoInfo(
            num_frames=_count_frames(container, stream),
            fps=float(rate) if rate else None,
            height=int(ctx.height),
            width=int(ctx.width),
            duration=duration,
            codec=ctx.name,
        )


def sample_frame_indices(total: int, num_frames: int) -> np.ndarray:
    """Indices of ``num_frames`` frames spread uniformly over ``total``: the centre of each of ``num_frames`` equal
    segments. Frames repeat when ``num_frames > total``.

    Raises:
        ValueError: if ``total < 1`` or ``num_frames < 1``.
    """
    if total < 1 or num_frames < 1:
        raise ValueError(f"sample_frame_indices: total={total}, num_frames={num_frames}; both must be >= 1")
    return np.minimum(((np.arange(num_frames) + 0.5) * total / num_frames).astype(np.int64), total - 1)


def read_video(
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decodes a video into RGB frames.

    Args:
        path: any container/codec FFmpeg reads (mp4, avi, mkv, webm, ...).
        num_frames: keep this many frames spread uniformly over the clip (:func:`sample_frame_indices`); all frames
            when None. Only the kept frames are converted to RGB.
        size: resize every frame to ``(height, width)`` while converting; the native size when None.

    Returns:
        uint8 array of shape (T, H, W, 3).

    Raises:
        ValueError: if the file cannot be decoded, has no video stream or no frames, or arguments are invalid.
        ImportError: if PyAV is missing (``pip install lkconv[video]``).
    """
    path = Path(path)
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"read_video: num_frames={num_frames}; expected a positive int or None")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"read_video: size={size}; expected (height, width) with positive entries, or None")
    av = _av(path)
    reformat = {"format": "rgb24"} if size is None else {"format": "rgb24", "height": size[0], "width": size[1]}
    wanted: dict[int, list[int]] = {}
    if num_frames is not None:
        with _open(av, path) as container:
            total = _count_frames(container, container.streams.video[0])
        if total < 1:
            raise ValueError(f"{path}: the video stream has no frames")
        for slot, index in enumerate(sample_frame_indices(total, num_frames).tolist()):
            wanted.setdefault(index, []).append(slot)
    frames: list[np.ndarray | None] = [None] * (num_frames or 0)
    collected: list[np.ndarray] = []
    last = None
    try:
        with _open(av, path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stop = max(wanted) if wanted else None
            for i, frame in enumerate(container.decode(stream)):
                last = frame
                if num_frames is None:
                    collected.append(frame.reformat(**reformat).to_ndarray())
                elif i in wanted:
                    image = frame.reformat(**reformat).to_ndarray()
                    for slot in wanted[i]:
                        frames[slot] = image
                if stop is not None and i >= stop:
                    break
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: decoding failed ({e})") from e
    if last is None:
        raise ValueError(f"{path}: no frame could be decoded")
    if num_frames is None:
        return np.stack(collected)
    if any(f is None for f in frames):  # the container over-stated its frame count: repeat the last frame
        tail = last.reformat(**reformat).to_ndarray()
        frames = [tail if f is None else f for f in frames]
    return np.stack(frames)
