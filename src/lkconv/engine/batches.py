"""Batch order: global batches whose order depends only on (seed, epoch), sliced per process, fed to a loader.

This is what makes a resumed or data-parallel run see exactly the batches an uninterrupted single-process run sees.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from .distributed import DistInfo

__all__ = ["epoch_batches", "shard", "batch_loader"]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, *, shuffle: bool, drop_last: bool) -> list[list[int]]:
    """Global batches of dataset positions for one epoch; the order depends only on (seed, epoch)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def shard(batches: list[list[int]], info: DistInfo) -> list[list[int]]:
    """Each process takes an equal contiguous slice of every global batch."""
    if not info.enabled:
        return batches
    out = []
    for b in batches:
        per = len(b) // info.world_size
        out.append(b[info.rank * per : (info.rank + 1) * per])
    return out


def batch_loader(dataset, batches: list[list[int]], num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, persistent_workers=False)
