"""Point-cloud pose augmentations: random rotation, partial crop, scale and jitter of (N, 3) points (+ normals)."""

from __future__ import annotations

import numpy as np

from ..readers.pointcloud import RngLike, as_generator

__all__ = ["random_rotation", "partial_crop", "random_pose"]


def random_rotation(rng: RngLike = None, *, mode: str = "so3") -> np.ndarray:
    """A random 3x3 rotation matrix.

    Args:
        rng: a numpy Generator or a seed.
        mode: ``"so3"`` (uniform over all rotations), ``"x"``/``"y"``/``"z"`` (uniform angle about that axis) or
            ``"none"`` (identity).

    Raises:
        ValueError: for an unknown mode.
    """
    gen = as_generator(rng)
    if mode == "so3":
        q = gen.standard_normal(4)  # a normalised Gaussian 4-vector is a uniform unit quaternion
        w, x, y, z = q / np.linalg.norm(q)
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ], dtype=np.float64)  # fmt: skip
    if mode in ("x", "y", "z"):
        t = gen.uniform(0, 2 * np.pi)
        c, s = np.cos(t), np.sin(t)
        i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[mode]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r
    if mode == "none":
        return np.eye(3)
    raise ValueError(f"random_rotation: mode={mode!r}; accepted: 'so3', 'x', 'y', 'z', 'none'")


def partial_crop(
    points: np.ndarray,
    normals: np.ndarray | None = None,
    *,
    fraction: float = 0.25,
    rng: RngLike = None,
    keep_count: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Removes the points beyond a random plane (a partial view), optionally resampling back to the same count.

    Args:
        points: (N, 3).
        normals: (N, 3) or None.
        fraction: share of points to cut away, in [0, 1).
        rng: a numpy Generator or a seed.
        keep_count: resample the kept points (with replacement) so the output still has N points.

    Raises:
        ValueError: if ``fraction`` is outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"partial_crop: fraction={fraction}; accepted: 0 <= fraction < 1")
    gen = as_generator(rng)
    n = len(points)
    keep_n = max(1, round(n * (1.0 - fraction)))
    if n == 0 or keep_n >= n:
        return points, normals
    direction = gen.standard_normal(3)
    direction /= np.linalg.norm(direction)
    proj = (points - points.mean(0)) @ direction
    keep = np.argsort(proj, kind="stable")[:keep_n]  # the side of the plane facing away from `direction`
    if keep_count:
        keep = np.concatenate([keep, gen.choice(keep, n - keep_n, replace=True)])
    return points[keep], (normals[keep] if normals is not None else None)


def random_pose(
    points: np.ndarray,
    normals: np.ndarray | None = None,
    *,
    rng: RngLike = None,
    rotation: str = "so3",
    scale: tuple[float, float] = (0.8, 1.25),
    anisotropic: bool = False,
    jitter: float = 0.01,
    jitter_clip: float = 0.05,
    crop: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Random rotation, scale, Gaussian jitter and partial crop of a point set (normals are rotated along).

    Args:
        points: (N, 3).
        normals: (N, 3) or None.
        rng: a numpy Generator or a seed.
        rotation: see :func:`random_rotation` (``"so3"``, ``"x"``, ``"y"``, ``"z"``, ``"none"``).
        scale: range of the uniform scale factor; ``(1, 1)`` disables it.
        anisotropic: draw one scale factor per axis (normals are then re-normalised with the inverse scale).
        jitter: standard deviation of the per-point Gaussian noise; 0 disables it.
        jitter_clip: noise is clipped to ``[-jitter_clip, jitter_clip]``.
        crop: share of points cut away by :func:`partial_crop`; the output keeps N points.

    Returns:
        ``(points, normals)`` as float32 arrays (normals None when not given).

    Raises:
        ValueError: on a bad shape or range.
    """
    gen = as_generator(rng)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"random_pose: points have shape {pts.shape}; expected (N, 3)")
    if normals is not None and np.shape(normals) != pts.shape:
        raise ValueError(f"random_pose: normals have shape {np.shape(normals)}; expected {pts.shape}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"random_pose: scale={scale}; expected 0 < low <= high")
    nrm = None if normals is None else np.asarray(normals, dtype=np.float64)
    if crop > 0:
        pts, nrm = partial_crop(pts, nrm, fraction=crop, rng=gen)
    r = random_rotation(gen, mode=rotation)
    pts = pts @ r.T
    if nrm is not None:
        nrm = nrm @ r.T
    s = gen.uniform(scale[0], scale[1], size=3 if anisotropic else 1)
    pts = pts * s
    if nrm is not None and anisotropic:
        nrm = nrm / s
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    if jitter > 0:
        pts = pts + np.clip(gen.normal(0.0, jitter, size=pts.shape), -jitter_clip, jitter_clip)
    return pts.astype(np.float32), (nrm.astype(np.float32) if nrm is not None else None)
