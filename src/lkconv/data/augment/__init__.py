"""Per-sample train/eval transforms, one module per kind of data; each takes a per-sample RNG.

Batch-level augmentation that runs inside the model in training mode (SpecAugment masks, time-series noise) stays
with its adapter in :mod:`lkconv.modalities`.
"""
