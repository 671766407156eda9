"""Built-in pointcloud sets (``--data builtin:NAME``)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ...data.datasets import DataBundle, DataError, SampleDataset, limit_splits
from ...data.readers.pointcloud import Geometry, normalize_unit_sphere, read_pointcloud
from ..builtin import BuiltinSet, data_home, register
from .data import _transforms, point_options

log = logging.getLogger("lkconv.data")

__all__ = ["CGAL_SHAPES", "cgal_shapes_file", "prepare_cgal_shapes"]


# ------------------------------------------------------------------------------------------------ cgal-shapes
# Distinct CGAL example meshes with >= 1000 faces, in the order the built-in takes them (``classes`` = first N);
# near-duplicates (bear_bis, blobby-shuffled, refined_elephant, knot2, fandisk_large, …) are left out.
CGAL_SHAPES = (
    "ALSTOM_TEST4", "ChineseDragon-10kv", "anchor_dense", "armadillo", "blade", "blobby", "bones", "bunny00",
    "cactus", "camel", "couplingdown", "cow", "cube-meshed", "cylinder", "elk", "fandisk", "femur", "hand", "homer",
    "knot1", "mushroom", "pinion", "sphere966", "spool",
    "b9_mesh", "bear", "bull", "dino", "elephant", "handle", "head", "helmet", "lion-head", "man", "mannequin-devil",
    "mech-holes-shark", "plane", "rotor_small", "triceratops", "turbine",
)
_CGAL_MIN_FACES = 1000
_CGAL_DATA_TARBALL = Path("/usr/share/doc/libcgal-dev/data.tar.gz")  # installed by `apt-get install libcgal-demo`
_CGAL_MEMBER = "./usr/share/doc/libcgal-dev/data.tar.gz"
_CGAL_TRAIN_SEED, _CGAL_VAL_SEED = 7, 1_000_003  # train samples also depend on the run's seed and epoch


def cgal_shapes_file() -> Path:
    """Where ``prepare`` writes the selected meshes: ``data_home()/cgal/cgal_shapes.npz``."""
    return data_home() / "cgal" / "cgal_shapes.npz"


def _extract_deb(deb: Path, dest: Path) -> Path:
    """The CGAL data tarball out of a ``libcgal-demo`` .deb (with ``dpkg-deb``), written under ``dest``."""
    if shutil.which("dpkg-deb") is None:
        raise DataError(f"cannot unpack {deb}: dpkg-deb is not installed (apt-get install dpkg)")
    proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=False)
    if proc.returncode:
        raise DataError(f"dpkg-deb --fsys-tarfile {deb} failed: {proc.stderr.decode(errors='replace')[-300:]}")
    out = dest / "data.tar.gz"
    import io

    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        try:
            member = tar.extractfile(_CGAL_MEMBER)
        except KeyError as e:
            raise DataError(f"{deb} has no {_CGAL_MEMBER}; is it the libcgal-demo package?") from e
        out.write_bytes(member.read())
    return out


def _cgal_source(tmp: Path, *, download: bool) -> Path:
    """A folder holding ``meshes/*.off``: from ``$LKCONV_CGAL_SOURCE`` (a data.tar.gz, a libcgal-demo .deb or an
    unpacked ``data`` folder), the installed package's tarball, or ``apt-get download libcgal-demo``."""
    env = os.environ.get("LKCONV_CGAL_SOURCE")
    if env:
        src = Path(env)
        if src.is_dir():
            meshes = src / "meshes" if (src / "meshes").is_dir() else src / "data" / "meshes"
            if not meshes.is_dir():
                raise DataError(f"LKCONV_CGAL_SOURCE={src}: no meshes/ folder inside")
            return meshes.parent
        if not src.is_file():
            raise DataError(f"LKCONV_CGAL_SOURCE={src}: no such file or folder")
        tarball = _extract_deb(src, tmp) if src.suffix == ".deb" else src
    elif _CGAL_DATA_TARBALL.is_file():
        tarball = _CGAL_DATA_TARBALL
    elif download:
        if shutil.which("apt-get") is None:
            raise DataError("cgal-shapes needs the libcgal-demo package's data: apt-get is not available; set "
                            "LKCONV_CGAL_SOURCE to a libcgal-demo .deb or its data.tar.gz")
        proc = subprocess.run(["apt-get", "download", "libcgal-demo"], cwd=tmp, capture_output=True, check=False)
        debs = sorted(tmp.glob("libcgal-demo_*.deb"))
        if proc.returncode or not debs:
            err = proc.stderr.decode(errors="replace")[-300:]
            raise DataError(f"apt-get download libcgal-demo failed (run `apt-get update` first, or set "
                            f"LKCONV_CGAL_SOURCE to a libcgal-demo .deb): {err}")
        tarball = _extract_deb(debs[0], tmp)
    else:
        raise DataError("cgal-shapes is not prepared; run `lkconv data prepare cgal-shapes` (it runs apt-get "
                        "download libcgal-demo) or set LKCONV_CGAL_SOURCE to a libcgal-demo .deb")
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(("data/meshes/", "./data/meshes/"))
                   and m.isfile() and m.name.endswith(".off")]
        if not members:
            raise DataError(f"{tarball} has no data/meshes/*.off")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=members, **safe)
    return tmp / "data"


def prepare_cgal_shapes(*, download: bool = True) -> Path:
    """Selects the CGAL meshes of :data:`CGAL_SHAPES` that exist with >= 1000 faces and writes their vertices and
    faces to :func:`cgal_shapes_file` (a few MB). Returns that path.

    Raises:
        DataError: if the CGAL data cannot be found or downloaded, or fewer than 20 usable meshes are in it.
    """
    out = cgal_shapes_file()
    with tempfile.TemporaryDirectory() as tmp:
        src = _cgal_source(Path(tmp), download=download) / "meshes"
        arrays: dict[str, np.ndarray] = {}
        names: list[str] = []
        for name in CGAL_SHAPES:
            path = src / f"{name}.off"
            if not path.is_file():
                log.warning("cgal-shapes: %s not in the CGAL data; skipped", path.name)
                continue
            geom = read_pointcloud(path)
            if not geom.is_mesh or len(geom.faces) < _CGAL_MIN_FACES:
                log.warning("cgal-shapes: %s has fewer than %d faces; skipped", path.name, _CGAL_MIN_FACES)
                continue
            arrays[f"v{len(names)}"] = normalize_unit_sphere(geom.vertices)
            arrays[f"f{len(names)}"] = geom.faces.astype(np.int32)
            names.append(name)
    if len(names) < 20:
        raise DataError(f"cgal-shapes: only {len(names)} usable meshes found in {src}; need at least 20")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".tmp.npz")
    np.savez_compressed(part, names=np.array(names), **arrays)
    os.replace(part, out)
    return out


def _cgal_available() -> bool:
    return cgal_shapes_file().is_file() or _CGAL_DATA_TARBALL.is_file() or bool(os.environ.get("LKCONV_CGAL_SOURCE"))


def _load_cgal() -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    path = cgal_shapes_file()
    if not path.is_file():
        prepare_cgal_shapes(download=False)
    with np.load(path) as z:
        names = [str(n) for n in z["names"]]
        meshes = [(z[f"v{i}"], z[f"f{i}"].astype(np.int64)) for i in range(len(names))]
    return names, meshes


def _build_cgal(cfg) -> DataBundle:
    opts, adapter_args = point_options(cfg, builtin=True)
    names, meshes = _load_cgal()
    if len(names) < opts["classes"]:
        raise DataError(f"modality_args.classes: {opts['classes']} asked for, the prepared set has {len(names)}")
    names, meshes = names[: opts["classes"]], meshes[: opts["classes"]]
    geoms = [Geometry(v, f, None, {"source": n}) for n, (v, f) in zip(names, meshes)]
    k = len(names)
    n_tr, n_va = k * opts["train_per_class"], k * opts["val_per_class"]
    labels_tr = [i % k for i in range(n_tr)]
    labels_va = [i % k for i in range(n_va)]
    tr_idx, va_idx = limit_splits(range(n_tr), range(n_va), labels_tr, cfg, val_labels=labels_va)
    train_tf, eval_tf = _transforms(opts, pose_eval=True)

    def load(i: int) -> Geometry:
        return geoms[i % k]

    def describe(i: int) -> str:
        return f"cgal-shapes sample {i} ({names[i % k]})"

    # train: a fresh surface sample and pose every epoch (RNG from run seed, epoch, index); val: fixed by its seed
    train = SampleDataset(load, labels_tr, tr_idx, train_tf, _CGAL_TRAIN_SEED * 1_000_003 + cfg.seed, describe)
    val = SampleDataset(load, labels_va, va_idx, eval_tf, _CGAL_VAL_SEED, describe)
    n_dims = 6 if opts["normals"] else 3
    return DataBundle(train, val, names, "pointcloud", adapter_args, (opts["num_points"], n_dims),
                      notes={"train_samples": len(train), "val_samples": len(val), "source": "cgal-shapes",
                             "rotation": opts["rotation"]},
                      preprocessing={"num_points": opts["num_points"], "normals": opts["normals"]})


register(BuiltinSet(
    "cgal-shapes", "pointcloud", "classify",
    "CGAL example meshes as classes (24 of 40 distinct shapes by default); each sample a fresh 1024-point surface "
    "sample in a random pose (SO(3) rotation, scale, jitter)",
    "24 x (100 + 30) samples, generated (4 MB)",
    "CC0 (CGAL data statement)",
    "lkconv data prepare cgal-shapes (runs `apt-get download libcgal-demo`, unpacks its meshes to data_home()/cgal)",
    _cgal_available, _build_cgal,
    prepare=lambda: None if cgal_shapes_file().is_file() else prepare_cgal_shapes(),
))
