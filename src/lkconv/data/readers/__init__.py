"""File readers: raw files on disk to numpy arrays / torch tensors, one module per kind of file.

Optional dependencies are imported inside the functions that need them: ``soundfile`` for FLAC/OGG
(``pip install lkconv[audio]``) and PyAV for video (``pip install lkconv[video]``); importing this package never
needs them.
"""

from lkconv.data.readers.audio import read_audio, read_wav, resample, write_wav
from lkconv.data.readers.idx import read_idx, write_idx
from lkconv.data.readers.pointcloud import (
    Geometry,
    normalize_unit_sphere,
    partial_crop,
    random_pose,
    random_rotation,
    read_npy_points,
    read_off,
    read_ply,
    read_pointcloud,
    read_stl,
    read_xyz,
    sample_surface,
)
from lkconv.data.readers.tabular import SeriesTable, read_csv_series
from lkconv.data.readers.ts import TimeSeriesData, read_series, read_series_npz, read_ts
from lkconv.data.readers.video import VideoInfo, probe_video, read_video, sample_frame_indices

__all__ = [
    "Geometry",
    "SeriesTable",
    "TimeSeriesData",
    "VideoInfo",
    "normalize_unit_sphere",
    "partial_crop",
    "probe_video",
    "random_pose",
    "random_rotation",
    "read_audio",
    "read_csv_series",
    "read_idx",
    "read_npy_points",
    "read_off",
    "read_ply",
    "read_pointcloud",
    "read_series",
    "read_series_npz",
    "read_stl",
    "read_ts",
    "read_video",
    "read_wav",
    "read_xyz",
    "resample",
    "sample_frame_indices",
    "sample_surface",
    "write_idx",
    "write_wav",
]
