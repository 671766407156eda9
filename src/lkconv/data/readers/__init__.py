"""File readers: raw files on disk to numpy arrays / torch tensors, one module per kind of file. Readers only
decode: folder contracts live with each modality (:mod:`lkconv.modalities`), augmentations in :mod:`lkconv.data.augment`.

Optional dependencies are imported inside the functions that need them: ``soundfile`` for FLAC/OGG
(``pip install lkconv[audio]``), Pillow for images and PyAV for video (``pip install lkconv[video]``); importing this package never
needs them.
"""

from lkconv.data.readers.audio import read_audio, read_wav, resample, write_wav
from lkconv.data.readers.idx import read_idx, write_idx
from lkconv.data.readers.image import detect_channels, read_image, validate_image
from lkconv.data.readers.pointcloud import (
    Geometry,
    normalize_unit_sphere,
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
    "detect_channels",
    "normalize_unit_sphere",
    "probe_video",
    "read_audio",
    "read_csv_series",
    "read_idx",
    "read_image",
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
    "validate_image",
    "write_idx",
    "write_wav",
]
