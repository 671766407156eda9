"""Point-cloud data: ``PATH/{train,val}/<class>/*.{off,ply,stl,xyz,pwn,npy}`` (or ``PATH/<class>/…`` with a
held-out split), and the built-in set ``cgal-shapes`` (meshes of CGAL's example data, one class per mesh).

Every access turns a file into one raw sample of ``num_points`` points: meshes are sampled area-weighted over their
surface (a fresh sample each time, from the per-sample RNG), point sets are subsampled without replacement or padded
by repeating random points. Points are centred and scaled into the unit sphere; in training a random pose follows
(partial crop, rotation, scale, jitter — :func:`lkconv.data.augment.pointcloud.random_pose`). The raw sample is float32
(N, 3), or (N, 6) with unit normals (``normals: true``; a point set without normals gets zeros).

``modality_args`` (all optional):

* data: ``num_points`` (1024), ``normals`` (false), ``rotation`` (``so3``, ``x``, ``y``, ``z`` or ``none``; default
  ``z`` for folders, ``so3`` for ``cgal-shapes``), ``scale`` ([0.8, 1.25]), ``anisotropic`` (false: one scale factor
  per axis when true), ``jitter`` (0.01), ``crop`` (0.0: share of points cut away by a random plane), ``dropout``
  (0.0: up to this share of the points replaced by copies of others, :mod:`lkconv.modalities.pointcloud.augment`),
  ``align`` (``none``; ``pca``: every cloud, in training, validation and prediction, in its principal-axis frame,
  :mod:`lkconv.modalities.pointcloud.pose`), ``eval_pose`` (false for folders: validation sees the files' own pose;
  ``cgal-shapes`` always poses its validation samples, from a fixed seed);
* ``cgal-shapes`` only: ``classes`` (24: how many meshes of :data:`CGAL_SHAPES`, 20–40), ``train_per_class``
  (100), ``val_per_class`` (30);
* adapter (:class:`lkconv.modalities.pointcloud.PointCloudAdapter`): ``projection`` (``learned``/``depth``),
  ``views``, ``layout``, ``extent``, ``splat``, ``feat_dim``, ``k``, ``hidden``; its ``img_size`` is the run's
  ``img_size`` (default 64).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.augment.pointcloud import random_pose
from ...data.datasets import (DataBundle, DataError, SampleDataset, check_option_keys, split_class_folders,
                             unreadable_file)
from .augment import point_dropout
from .pose import ALIGNMENTS, pca_align
from ...data.readers.pointcloud import Geometry, normalize_unit_sphere, read_pointcloud, sample_surface
from .adapter import PointCloudAdapter

__all__ = [
    "POINT_EXTENSIONS",
    "build_data",
    "geometry_to_points",
    "load_for_predict",
    "point_options",
]

log = logging.getLogger("lkconv.data")

POINT_EXTENSIONS = ("off", "ply", "stl", "xyz", "pwn", "npy")
ADAPTER_OPTIONS = ("projection", "views", "layout", "extent", "splat", "feat_dim", "k", "hidden")
DATA_OPTIONS = ("num_points", "normals", "rotation", "scale", "anisotropic", "jitter", "crop", "dropout", "eval_pose",
                "align")
BUILTIN_OPTIONS = ("classes", "train_per_class", "val_per_class")
_ROTATIONS = ("so3", "x", "y", "z", "none")
DEFAULT_IMG_SIZE = 64


def point_options(cfg, *, builtin: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits and checks ``cfg.modality_args``: ``(data_options, adapter_args)``.

    Raises:
        DataError: for an unknown key or an impossible value, naming the key and what is accepted.
    """
    args = dict(cfg.modality_args)
    accepted = DATA_OPTIONS + ADAPTER_OPTIONS + (BUILTIN_OPTIONS if builtin else ())
    check_option_keys(args, accepted, "pointcloud")
    opts: dict[str, Any] = {
        "num_points": args.get("num_points", 1024), "normals": args.get("normals", False),
        "rotation": args.get("rotation", "so3" if builtin else "z"), "scale": args.get("scale", [0.8, 1.25]),
        "jitter": args.get("jitter", 0.01), "crop": args.get("crop", 0.0), "eval_pose": args.get("eval_pose", False),
        "anisotropic": args.get("anisotropic", False), "dropout": args.get("dropout", 0.0),
        "align": args.get("align", "none"),
    }
    if opts["align"] not in ALIGNMENTS:
        raise DataError(f"modality_args.align: {opts['align']!r} is not accepted; choose {', '.join(ALIGNMENTS)}")
    if not isinstance(opts["num_points"], int) or opts["num_points"] < 16:
        raise DataError(f"modality_args.num_points: an integer >= 16 is needed, got {opts['num_points']!r}")
    if not all(isinstance(opts[k], bool) for k in ("normals", "eval_pose", "anisotropic")):
        raise DataError("modality_args.normals / eval_pose / anisotropic: true or false")
    if isinstance(opts["dropout"], bool) or not isinstance(opts["dropout"], (int, float)) \
            or not 0 <= opts["dropout"] < 1:
        raise DataError(f"modality_args.dropout: a share in [0, 1) is needed (0: off), got {opts['dropout']!r}")
    if opts["rotation"] not in _ROTATIONS:
        raise DataError(f"modality_args.rotation: {opts['rotation']!r} is not accepted; choose {', '.join(_ROTATIONS)}")
    sc = opts["scale"]
    if not (isinstance(sc, (list, tuple)) and len(sc) == 2 and 0 < float(sc[0]) <= float(sc[1])):
        raise DataError(f"modality_args.scale: [low, high] with 0 < low <= high is needed, got {sc!r}")
    opts["scale"] = (float(sc[0]), float(sc[1]))
    if not isinstance(opts["jitter"], (int, float)) or opts["jitter"] < 0:
        raise DataError(f"modality_args.jitter: a number >= 0 is needed, got {opts['jitter']!r}")
    if not isinstance(opts["crop"], (int, float)) or not 0 <= opts["crop"] < 1:
        raise DataError(f"modality_args.crop: a share in [0, 1) is needed, got {opts['crop']!r}")
    if builtin:
        from .builtin import CGAL_SHAPES  # the built-in set's mesh list bounds `classes`

        opts["classes"] = args.get("classes", 24)
        opts["train_per_class"] = args.get("train_per_class", 100)
        opts["val_per_class"] = args.get("val_per_class", 30)
        if not isinstance(opts["classes"], int) or not 20 <= opts["classes"] <= len(CGAL_SHAPES):
            raise DataError(f"modality_args.classes: an integer in [20, {len(CGAL_SHAPES)}] is needed, "
                            f"got {opts['classes']!r}")
        for key in ("train_per_class", "val_per_class"):
            if not isinstance(opts[key], int) or opts[key] < 1:
                raise DataError(f"modality_args.{key}: an integer >= 1 is needed, got {opts[key]!r}")
    adapter = {k: args[k] for k in ADAPTER_OPTIONS if k in args}
    adapter["img_size"] = cfg.img_size or DEFAULT_IMG_SIZE
    adapter["in_dims"] = 6 if opts["normals"] else 3
    try:
        PointCloudAdapter(**adapter)
    except (TypeError, ValueError) as e:
        raise DataError(f"modality_args: {e}") from e
    return opts, adapter


def geometry_to_points(geom: Geometry, n: int, rng: np.random.Generator, *, normals: bool = False) -> np.ndarray:
    """``n`` points of a mesh (area-weighted surface sample) or point set (subsampled / padded), centred and scaled
    into the unit sphere: float32 (n, 3), or (n, 6) with normals (zeros where the file has none)."""
    if geom.is_mesh:
        pts, nrm = sample_surface(geom.vertices, geom.faces, n, rng)
    else:
        m = len(geom.vertices)
        if m == 0:
            raise ValueError(f"{geom.metadata.get('source', 'point set')}: has no points")
        idx = rng.choice(m, n, replace=False) if m >= n else np.concatenate([np.arange(m), rng.integers(0, m, n - m)])
        pts = geom.vertices[idx]
        nrm = geom.normals[idx] if geom.normals is not None else np.zeros_like(pts)
    pts = normalize_unit_sphere(pts)
    if not normals:
        return pts.astype(np.float32)
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12) * (np.abs(nrm).sum(1, keepdims=True) > 0)
    return np.concatenate([pts, nrm], 1).astype(np.float32)


def _posed(pts: np.ndarray, opts: dict[str, Any], rng: np.random.Generator, *, train: bool = True) -> np.ndarray:
    """A random pose of (N, 3|6) points; in training also point dropout (validation keeps every point)."""
    nrm = pts[:, 3:6] if pts.shape[1] == 6 else None
    p, n = random_pose(pts[:, :3], nrm, rng=rng, rotation=opts["rotation"], scale=opts["scale"],
                       anisotropic=bool(opts.get("anisotropic", False)), jitter=float(opts["jitter"]),
                       crop=float(opts["crop"]))
    out = p if n is None else np.concatenate([p, n], 1)
    return point_dropout(out, rng, float(opts.get("dropout", 0.0))) if train else out


class _GeometryCache:
    """Reads files once per process (most recently used first; at most ``size`` kept)."""

    def __init__(self, files: list[Path], size: int = 256) -> None:
        self.files, self.size, self.items = files, size, OrderedDict()

    def __call__(self, i: int) -> Geometry:
        if i in self.items:
            self.items.move_to_end(i)
            return self.items[i]
        geom = read_pointcloud(self.files[i])
        self.items[i] = geom
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return geom


def _validate(path: Path) -> None:
    geom = read_pointcloud(path)
    if len(geom.vertices) == 0:
        raise ValueError(f"{path}: no points; accepted: a mesh or point set with at least one point")


def _transforms(opts: dict[str, Any], *, pose_eval: bool):
    n, normals = opts["num_points"], opts["normals"]

    align = pca_align if opts.get("align") == "pca" else (lambda p: p)

    def train_tf(geom, rng):
        return torch.from_numpy(align(_posed(geometry_to_points(geom, n, rng, normals=normals), opts, rng)))

    def eval_tf(geom, rng):
        pts = geometry_to_points(geom, n, rng, normals=normals)
        return torch.from_numpy(align(_posed(pts, opts, rng, train=False) if pose_eval else pts))

    return train_tf, eval_tf


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """Point-cloud folders per the data contract (see module docstring).

    With ``eval_only`` the bundle's ``val`` is the folder's val/ (or test/) split if it has one, else every file,
    labelled with ``class_names`` (the trained run's classes).
    """
    opts, adapter_args = point_options(cfg)
    split = split_class_folders(Path(cfg.data), POINT_EXTENSIONS, cfg, validate=_validate, eval_only=eval_only,
                                class_names=class_names, what="file")
    all_files, all_labels, names, tr_idx, va_idx = split.files, split.labels, split.class_names, split.train, split.val
    train_tf, eval_tf = _transforms(opts, pose_eval=opts["eval_pose"])
    load = _GeometryCache(all_files)

    def describe(i: int) -> str:
        return str(all_files[i])

    train = SampleDataset(load, all_labels, tr_idx, train_tf, cfg.seed, describe) if tr_idx else None
    val = SampleDataset(load, all_labels, va_idx, eval_tf, cfg.seed, describe)
    n_dims = 6 if opts["normals"] else 3
    return DataBundle(train, val, names, "pointcloud", adapter_args, (opts["num_points"], n_dims),
                      notes={"train_samples": len(tr_idx), "val_samples": len(val),
                             "skipped_files": len(split.skipped)},
                      preprocessing={"num_points": opts["num_points"], "normals": opts["normals"],
                                     "align": opts["align"]})


def load_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """One file as validation sees it: ``num_points`` points (seeded sample), centred and in the unit sphere."""
    try:
        geom = read_pointcloud(path)
        pts = geometry_to_points(geom, int(preprocessing["num_points"]), np.random.default_rng(0),
                                 normals=bool(preprocessing.get("normals", False)))
    except Exception as e:  # noqa: BLE001 - any reader error means the file is not a point cloud this run can read
        raise unreadable_file(path, e, f"{', '.join('.' + x for x in POINT_EXTENSIONS)} meshes or point sets "
                              "((N, 3) or (N, 6) arrays)") from e
    return torch.from_numpy(pca_align(pts) if preprocessing.get("align") == "pca" else pts)
