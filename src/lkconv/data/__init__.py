"""Data, before any modality: file decoders (``readers/``), per-sample augmentations per kind of data
(``augment/``) and what every modality's data shares (``datasets.py``: the bundle handed to the engine, folder
scanning, seeded splits, datasets with resumable per-sample randomness).

Nothing here imports :mod:`lkconv.modalities`: data flows from here to the modalities, which own the folder
contracts, options and built-in sets (``lkconv.modalities.build_data`` builds a run's datasets).
"""

from .datasets import DataBundle, DataError

__all__ = ["DataBundle", "DataError"]
