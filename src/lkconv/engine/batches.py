"""Batch order: global batches whose order depends only on (seed, epoch), sliced per process, fed to a loader.

This is what makes a resumed or data-parallel run see exactly the batches an uninterrupted single-process run sees.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .device import LoaderSettings
from .distributed import DistInfo

__all__ = ["epoch_batches", "shard", "batch_loader", "EpochFeeder"]


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


def batch_loader(dataset, batches: list[list[int]], num_workers: int, settings: LoaderSettings | None = None) -> DataLoader:
    """A loader of exactly ``batches`` (``settings`` adds pinned memory and prefetching; workers end with it)."""
    if settings is None or settings.num_workers == 0:
        return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers if settings is None else 0,
                          persistent_workers=False, pin_memory=bool(settings and settings.pin_memory))
    return DataLoader(dataset, batch_sampler=batches, num_workers=settings.num_workers, persistent_workers=False,
                      pin_memory=settings.pin_memory, prefetch_factor=settings.prefetch_factor)


class _Batches:
    """A batch sampler whose batches are replaced each epoch (a persistent loader keeps its sampler object)."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _AtEpoch(Dataset):
    """Indexed by ``(epoch, i)``: sets the wrapped dataset's epoch (its augmentation seed) in whichever process reads
    the sample, so persistent workers follow the epochs without being restarted."""

    def __init__(self, dataset) -> None:
        self.dataset, self.epoch = dataset, None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
            self.epoch = epoch
        return self.dataset[i]


class EpochFeeder:
    """The training batches of every epoch through one loader: with workers, they persist across epochs and
    prefetch ``settings.prefetch_factor`` batches each; without, each epoch is a plain main-process loader (what
    the resume tests pin down)."""

    def __init__(self, dataset, settings: LoaderSettings) -> None:
        self.dataset, self.settings = dataset, settings
        self._sampler = _Batches()
        self._loader: DataLoader | None = None

    def __call__(self, batches: list[list[int]], epoch: int):
        s = self.settings
        if s.num_workers == 0:
            return DataLoader(self.dataset, batch_sampler=batches, num_workers=0, pin_memory=s.pin_memory)
        self._sampler.batches = [[(epoch, i) for i in b] for b in batches]
        if self._loader is None:
            self._loader = DataLoader(_AtEpoch(self.dataset), batch_sampler=self._sampler, num_workers=s.num_workers,
                                      persistent_workers=s.persistent_workers, prefetch_factor=s.prefetch_factor,
                                      pin_memory=s.pin_memory)
        return self._loader
