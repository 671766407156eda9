"""Point-cloud training augmentation beside :func:`lkconv.data.augment.pointcloud.random_pose` (rotation,
anisotropic scale, jitter, partial crop): random point dropout.

Why: scanned or sampled shapes come with holes and uneven density; dropping a random share of the points (each
replaced by a copy of a kept one, so every sample keeps N points and batches keep their shape) teaches the model not
to rely on any single region's density.

Draws only from the ``numpy`` Generator it is given, so a seed fixes the result.
"""

from __future__ import annotations

import numpy as np

__all__ = ["point_dropout"]


def point_dropout(points: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Replaces a random share ``U(0, rate)`` of the rows of an (N, D) point array (points, plus normals) by copies
    of the kept rows. Same shape and dtype; ``rate`` 0 returns ``points``.

    Raises:
        ValueError: when ``rate`` is outside [0, 1).
    """
    if not 0 <= rate < 1:
        raise ValueError(f"point_dropout: rate={rate}; accepted: 0 <= rate < 1")
    n = len(points)
    if rate == 0 or n < 2:
        return points
    n_drop = min(n - 1, int(rng.uniform(0, rate) * n))
    if n_drop == 0:
        return points
    order = rng.permutation(n)
    dropped, kept = order[:n_drop], order[n_drop:]
    out = points.copy()
    out[dropped] = points[rng.choice(kept, n_drop, replace=True)]
    return out
