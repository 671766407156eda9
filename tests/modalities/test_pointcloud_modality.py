"""Point-cloud adapter (learned and depth projections), folder data, built-in selection and an end-to-end run."""

import math
import struct

import numpy as np
import pytest
import torch

from lkconv.data import DataError
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_adapter
from lkconv.modalities.pointcloud.adapter import PointCloudAdapter, depth_images, project_to_pixels, view_rotations
from lkconv.modalities.pointcloud.data import build_data, geometry_to_points, load_for_predict


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, oversubscribed CPU two threads spend most of their time waiting for each
    other (a tiny training run was ~10x slower with 2 threads than with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [7]]}


# ------------------------------------------------------------------------------------------------ projection
def test_reference_views_are_rz_times_rx():
    rots = view_rotations(4)
    for k in range(4):
        a = k * math.pi / 2
        rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
        torch.testing.assert_close(rots[k], rz @ rx, atol=1e-6, rtol=0)
    r6 = view_rotations(6)
    assert r6.shape == (6, 3, 3)
    torch.testing.assert_close(r6 @ r6.transpose(1, 2), torch.eye(3).expand(6, 3, 3), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="views=5"):
        view_rotations(5)


def test_known_point_lands_in_the_right_pixel():
    # view 0 is Rz(90°): (x, y, z) -> (-y, x, z); (0.25, -0.5, 0.3) -> (0.5, 0.25, 0.3)
    pts = torch.tensor([[[0.25, -0.5, 0.3]]])
    row, col, depth = project_to_pixels(pts, view_rotations(1), size=8, extent=1.0)
    assert (int(row), int(col)) == (3, 6)  # row = floor((1 - 0.25) / 2 * 8), col = floor((0.5 + 1) / 2 * 8)
    assert float(depth) == pytest.approx(0.65)
    d, occ = depth_images(pts, view_rotations(1), size=8, extent=1.0)
    assert d.shape == occ.shape == (1, 1, 8, 8)
    assert float(d[0, 0, 3, 6]) == pytest.approx(0.65) and float(occ[0, 0, 3, 6]) == 1.0
    assert float(occ.sum()) == 1.0 and float(d.sum()) == pytest.approx(0.65)


def test_zbuffer_keeps_the_nearest_point_and_splat_spreads_it():
    pts = torch.tensor([[[0.0, 0.0, -0.8], [0.0, 0.0, 0.4], [0.0, 0.0, 0.1]]])  # same pixel, three depths
    d, occ = depth_images(pts, view_rotations(1), size=9, extent=1.0)
    assert float(d.max()) == pytest.approx(0.7) and int(occ.sum()) == 1
    d3, occ3 = depth_images(pts, view_rotations(1), size=9, extent=1.0, splat=3)
    assert int(occ3.sum()) == 9 and float(d3.max()) == pytest.approx(0.7)


def test_points_outside_the_extent_are_clamped_to_the_border():
    row, col, depth = project_to_pixels(torch.tensor([[[5.0, -5.0, 9.0]]]), view_rotations(1), 16, 1.0)
    assert 0 <= int(row) < 16 and 0 <= int(col) < 16 and float(depth) == 1.0


@pytest.mark.parametrize(("projection", "layout", "in_dims", "shape"), [
    ("depth", "channels", 3, (2, 8, 16, 16)),
    ("depth", "tile", 3, (2, 2, 32, 32)),
    ("learned", "channels", 3, (2, 3, 16, 16)),
    ("learned", "tile", 6, (2, 3, 32, 32)),
    ("learned", "batch", 3, (8, 3, 16, 16)),
])
def test_adapter_shapes(projection, layout, in_dims, shape):
    a = build_adapter("pointcloud", projection=projection, layout=layout, img_size=16, in_dims=in_dims, k=4)
    x = torch.rand(2, 64, in_dims) * 2 - 1
    out = a(x)
    assert out.shape == shape and a.out_chans == shape[1]
    assert a.output_shape((2, 64, in_dims)) == shape
    rebuilt = PointCloudAdapter(**a.config())
    assert rebuilt.config() == a.config()
    if projection == "learned":
        out.sum().backward()
        assert a.features.point[0].weight.grad is not None


def test_batch_layout_postprocess_averages_views():
    a = PointCloudAdapter("learned", layout="batch", img_size=8, k=4)
    raw = torch.zeros(2, 16, 3)
    logits = torch.arange(8 * 3, dtype=torch.float32).view(8, 3)
    out = a.postprocess(logits, raw)
    torch.testing.assert_close(out, logits.view(2, 4, 3).mean(1))


def test_adapter_rejects_bad_options_and_inputs():
    with pytest.raises(ValueError, match="projection"):
        PointCloudAdapter("voxels")
    with pytest.raises(ValueError, match="layout 'batch'"):
        PointCloudAdapter("depth", layout="batch")
    with pytest.raises(ValueError, match="splat"):
        PointCloudAdapter("depth", splat=2)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        PointCloudAdapter("depth")(torch.zeros(2, 10, 6))


# ------------------------------------------------------------------------------------------------- files
def _box(sx: float, sy: float, sz: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)], np.float32)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
                  [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int64)
    return v, f


def _write_off(path, v, f):
    lines = ["OFF", f"{len(v)} {len(f)} 0"] + [" ".join(map(str, p)) for p in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(lines) + "\n")


def _write_ply(path, v, f):
    head = ["ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x", "property float y",
            "property float z", f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    body = [" ".join(map(str, p)) for p in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(head + body) + "\n")


def _write_stl(path, v, f):
    data = bytearray(b"\0" * 80 + struct.pack("<I", len(f)))
    for tri in f:
        data += struct.pack("<3f", 0, 0, 0) + b"".join(struct.pack("<3f", *v[i]) for i in tri) + b"\0\0"
    path.write_bytes(bytes(data))


def _shape_points(kind: str, n: int, rng) -> np.ndarray:
    if kind == "rod":
        return np.stack([rng.uniform(-1, 1, n), rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n)], 1)
    p = rng.standard_normal((n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def _folder(root, splits=("train", "val")):
    """Two classes: 'plate' (flat box meshes, one file type each) and 'rod'/'ball' point sets."""
    rng = np.random.default_rng(0)
    for split in splits:
        for cls in ("plate", "rod", "ball"):
            (root / split / cls).mkdir(parents=True)
        v, f = _box(1.0, 1.0, 0.08)
        _write_off(root / split / "plate" / "a.off", v, f)
        _write_ply(root / split / "plate" / "b.ply", v * 0.9, f)
        _write_stl(root / split / "plate" / "c.stl", v * 1.1, f)
        for cls in ("rod", "ball"):
            np.save(root / split / cls / "a.npy", _shape_points(cls, 300, rng).astype(np.float32))
            pts = _shape_points(cls, 50, rng)  # fewer than num_points: padded
            np.savetxt(root / split / cls / "b.xyz", np.concatenate([pts, pts], 1), fmt="%.5f")
    return root


def _cfg(root, **kw):
    base = {"data": str(root), "out": str(root / "run"), "modality": "pointcloud", "img_size": 16,
            "modality_args": {"num_points": 128, "projection": "depth"}}
    base.update(kw)
    return TrainConfig(**base)


def test_folder_dataset_reads_every_file_type(tmp_path):
    root = _folder(tmp_path / "pc")
    bundle = build_data(_cfg(root))
    assert bundle.class_names == ["ball", "plate", "rod"]
    assert len(bundle.train) == len(bundle.val) == 7 and bundle.raw_shape == (128, 3)
    for ds in (bundle.train, bundle.val):
        for k in range(len(ds)):
            x, _ = ds[k]
            assert x.shape == (128, 3) and x.dtype == torch.float32 and torch.isfinite(x).all()
    # validation is deterministic and unposed; training re-samples each epoch
    torch.testing.assert_close(bundle.val[0][0], bundle.val[0][0])
    a = bundle.train[0][0]
    bundle.train.set_epoch(1)
    assert not torch.equal(a, bundle.train[0][0])
    assert float(bundle.val[0][0].norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)


def test_folder_dataset_with_normals_and_option_errors(tmp_path):
    root = _folder(tmp_path / "pc")
    bundle = build_data(_cfg(root, modality_args={"num_points": 64, "normals": True, "rotation": "so3"}))
    x = bundle.train[0][0]
    assert x.shape == (64, 6) and bundle.adapter_args["in_dims"] == 6
    plate = next(k for k in range(len(bundle.val)) if bundle.val.targets()[k] == 1)
    nrm = bundle.val[plate][0][:, 3:]
    torch.testing.assert_close(nrm.norm(dim=1), torch.ones(64))  # mesh normals are unit
    with pytest.raises(DataError, match="unknown pointcloud option"):
        build_data(_cfg(root, modality_args={"num_pionts": 64}))
    with pytest.raises(DataError, match="rotation"):
        build_data(_cfg(root, modality_args={"rotation": "xyz"}))
    with pytest.raises(DataError, match="layout"):
        build_data(_cfg(root, modality_args={"projection": "depth", "layout": "batch"}))


def test_load_for_predict_matches_preprocessing(tmp_path):
    root = _folder(tmp_path / "pc", splits=("train",))
    x = load_for_predict(root / "train" / "plate" / "a.off", {"num_points": 100, "normals": False})
    assert x.shape == (100, 3)
    torch.testing.assert_close(x, load_for_predict(root / "train" / "plate" / "a.off", {"num_points": 100}))
    ext = x.abs().amax(0)
    assert float(ext[2]) < 0.2 < float(ext[0])  # still a plate: thin along z


def test_point_set_padding_and_subsampling():
    from lkconv.data.readers.pointcloud import Geometry

    rng = np.random.default_rng(0)
    few = Geometry(np.arange(30, dtype=np.float32).reshape(10, 3))
    assert geometry_to_points(few, 25, rng).shape == (25, 3)
    many = Geometry(rng.standard_normal((500, 3)).astype(np.float32))
    out = geometry_to_points(many, 100, rng)
    assert out.shape == (100, 3) and len(np.unique(out, axis=0)) == 100


def test_cgal_selection_from_an_unpacked_folder(tmp_path, monkeypatch):
    """prepare() keeps the listed meshes with >= 1000 faces and refuses fewer than 20."""
    from lkconv.modalities.pointcloud import builtin as pc

    meshes = tmp_path / "src" / "meshes"
    meshes.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in pc.CGAL_SHAPES[:21]:
        v = rng.standard_normal((40, 3)).astype(np.float32)
        f = rng.integers(0, 40, (1000, 3))
        _write_off(meshes / f"{name}.off", v, f)
    _write_off(meshes / f"{pc.CGAL_SHAPES[21]}.off", *_box(1, 1, 1))  # 12 faces: skipped
    monkeypatch.setenv("LKCONV_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("LKCONV_CGAL_SOURCE", str(tmp_path / "src"))
    out = pc.prepare_cgal_shapes(download=False)
    with np.load(out) as z:
        assert list(z["names"]) == list(pc.CGAL_SHAPES[:21])
    (meshes / f"{pc.CGAL_SHAPES[0]}.off").unlink()
    (meshes / f"{pc.CGAL_SHAPES[1]}.off").unlink()
    with pytest.raises(DataError, match="only 19 usable meshes"):
        pc.prepare_cgal_shapes(download=False)


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("projection", ["depth", "learned"])
def test_train_end_to_end_beats_chance(tmp_path, projection):
    """Plates vs rods vs balls, several meshes/clouds per class; a tiny model must beat chance (1/3) on val."""
    from lkconv.engine.evaluate import evaluate_run, predict_files
    from lkconv.engine.trainer import train

    root = tmp_path / "pc"
    rng = np.random.default_rng(1)
    for split, n in (("train", 8), ("val", 4)):
        for cls in ("plate", "rod", "ball"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                if cls == "plate":
                    s = rng.uniform(0.7, 1.3, 2)
                    _write_off(root / split / cls / f"{i}.off", *_box(s[0], s[1], 0.05))
                else:
                    np.save(root / split / cls / f"{i}.npy", _shape_points(cls, 200, rng).astype(np.float32))
    margs = {"num_points": 96, "projection": projection, "views": 4, "splat": 3, "rotation": "z", "jitter": 0.0}
    if projection == "learned":
        margs.update(k=4, feat_dim=8, hidden=8)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), modality="pointcloud", img_size=16, epochs=6,
                      batch_size=8, lr=4e-3, warmup_epochs=0, label_smoothing=0.0, model_args=TINY, seed=0,
                      progress=False, modality_args=margs)
    run = train(cfg)
    metrics = evaluate_run(run)
    assert metrics["num_samples"] == 12 and metrics["accuracy"] > 0.5
    top = predict_files(run, [root / "val" / "plate" / "0.off"])
    assert top[0]["top"][0][0] in ("plate", "rod", "ball")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("cut.off", "OFF\n3 1 0\n0 0 0\n1 0\n", r"^header declares 3 vertices .*; accepted: \.off, \.ply, .* meshes"),
    ("flat.npy", None, r"^array of shape \(50, 2\) and dtype float32; accepted: numeric \(N, 3\) or \(N, 6\)"),
    ("photo.png", "x", r"^unsupported 3-D file suffix '\.png'; accepted: \.off"),
])
def test_predict_names_what_is_wrong_and_what_is_accepted(tmp_path, name, content, message):
    """Issue 14: a corrupt or wrong-shaped file is a DataError saying what is accepted (predict names the file)."""
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros((50, 2), np.float32))
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_for_predict(path, {"num_points": 16})


def test_nan_coordinates_are_refused_naming_the_file(tmp_path):
    """Issue 14 probe: NaN points reached the projection as "index -9223372036854775808 is out of bounds", which
    stopped predict (and training) without naming the file."""
    from lkconv.data.readers.pointcloud import read_pointcloud

    path = tmp_path / "nan.xyz"
    path.write_text("0 0 0\nnan 1 2\n1 inf 0\n")
    with pytest.raises(ValueError, match=r"nan\.xyz: 2 of 3 points have NaN or infinite coordinates; accepted: finite"):
        read_pointcloud(path)
    with pytest.raises(DataError, match=r"^2 of 3 points have NaN or infinite coordinates; accepted: finite numbers$"):
        load_for_predict(path, {"num_points": 8})
