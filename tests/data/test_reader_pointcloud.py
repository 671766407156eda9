import struct
from pathlib import Path

import numpy as np
import pytest

from lkconv.data.augment.pointcloud import partial_crop, random_pose, random_rotation
from lkconv.data.readers.pointcloud import (
    normalize_unit_sphere,
    read_npy_points,
    read_off,
    read_ply,
    read_pointcloud,
    read_stl,
    read_xyz,
    sample_surface,
)

CUBE_V = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float32
)
CUBE_QUADS = [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]]


def _area(g) -> float:
    v = g.vertices.astype(np.float64)
    f = g.faces
    return float(0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum())


def test_off_counts_on_header_line_comments_and_polygons(tmp_path):
    lines = ["OFF 8 6 0  # counts on the keyword line", "# a comment line"]
    lines += [" ".join(map(str, v)) + "   # vertex" for v in CUBE_V.astype(int)]
    lines += ["4 " + " ".join(map(str, q)) for q in CUBE_QUADS]
    path = tmp_path / "cube.off"
    path.write_text("\n".join(lines) + "\n")
    g = read_off(path)
    assert g.vertices.shape == (8, 3) and g.faces.shape == (12, 3) and g.normals is None
    assert g.metadata["polygon_faces"] == 6 and g.metadata["non_triangles"] == 6
    assert _area(g) == pytest.approx(6.0)
    # fan triangulation of the first quad (0 3 2 1) -> (0 3 2), (0 2 1)
    np.testing.assert_array_equal(g.faces[:2], [[0, 3, 2], [0, 2, 1]])


def test_off_mixed_polygons_colours_normals_and_points_only(tmp_path):
    text = "COFF\n5 2 0\n0 0 0 255 0 0\n1 0 0 0 255 0\n1 1 0 0 0 255\n0 1 0 1 1 1\n0.5 1.5 0 9 9 9\n"
    text += "3 0 1 2 200 10 10\n5 0 1 2 4 3\n"
    g = read_off(_p(tmp_path, "c.off", text))
    assert g.faces.shape == (1 + 3, 3) and _area(g) == pytest.approx(0.5 + 1.25)
    text = "NOFF\n3 1 0\n0 0 0 0 0 1\n1 0 0 0 0 1\n0 1 0 0 0 1\n3 0 1 2\n"
    g = read_off(_p(tmp_path, "n.off", text))
    np.testing.assert_array_equal(g.normals, np.tile([0, 0, 1], (3, 1)))
    g = read_off(_p(tmp_path, "pts.off", "OFF\n2 0 0\n1 2 3\n4 5 6\n"))
    assert g.faces is None and not g.is_mesh and g.vertices.shape == (2, 3)


def _p(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("k.off", "PFF\n1 0 0\n0 0 0\n", r"k\.off:1: first keyword is 'PFF'"),
        ("i.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", r"i\.off: face refers to vertex 7"),
        ("t.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n", r"declares 3 vertices and 1 faces"),
        ("v.off", "OFF\n2 0 0\n0 0 0\n1 x 0\n", r"v\.off:4: vertex line"),
        ("f.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", r"f\.off:6: face declares 4 vertices but has 3"),
    ],
)
def test_off_errors(tmp_path, name, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        read_off(_p(tmp_path, name, text))


def _ply_header(fmt: str, n_v: int, n_f: int, normals: bool) -> bytes:
    props = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    lines = ["ply", f"format {fmt} 1.0", "comment made by a test", f"element vertex {n_v}"]
    lines += [f"property float {p}" for p in props] + ["property uchar red"]
    lines += [f"element face {n_f}", "property list uchar int vertex_indices", "property int label", "end_header"]
    return ("\n".join(lines) + "\n").encode()


def _ply_binary(order: str, faces: list[list[int]]) -> bytes:
    blob = _ply_header("binary_little_endian" if order == "<" else "binary_big_endian", 8, len(faces), True)
    for v in CUBE_V:
        n = v - 0.5
        blob += struct.pack(order + "6fB", *v, *(n / np.linalg.norm(n)), 7)
    for k, f in enumerate(faces):
        blob += struct.pack(order + f"B{len(f)}ii", len(f), *f, k)
    return blob


@pytest.mark.parametrize("order", ["<", ">"])
def test_ply_binary_both_endians_fixed_and_mixed_faces(tmp_path, order):
    quads = tmp_path / "q.ply"
    quads.write_bytes(_ply_binary(order, CUBE_QUADS))
    g = read_ply(quads)
    np.testing.assert_allclose(g.vertices, CUBE_V)
    assert g.faces.shape == (12, 3) and _area(g) == pytest.approx(6.0)
    np.testing.assert_allclose(np.linalg.norm(g.normals, axis=1), 1.0, rtol=1e-6)
    mixed = [[0, 3, 2], [0, 2, 1], *CUBE_QUADS[1:]]  # list lengths vary: the row-by-row path
    path = tmp_path / "m.ply"
    path.write_bytes(_ply_binary(order, mixed))
    g = read_ply(path)
    assert g.faces.shape == (12, 3) and _area(g) == pytest.approx(6.0)
    assert g.metadata["format"].startswith("ply-binary")


def test_ply_ascii_with_extra_elements(tmp_path):
    blob = _ply_header("ascii", 8, 6, False).replace(b"end_header", b"element edge 1\nproperty int a\nend_header")
    body = "".join(f"{x} {y} {z} 255\n" for x, y, z in CUBE_V)
    body += "".join(f"4 {' '.join(map(str, q))} {k}\n" for k, q in enumerate(CUBE_QUADS))
    body += "3\n"
    path = tmp_path / "a.ply"
    path.write_bytes(blob + body.encode())
    g = read_ply(path)
    assert g.faces.shape == (12, 3) and g.normals is None and _area(g) == pytest.approx(6.0)
    assert g.metadata["elements"] == {"vertex": 8, "face": 6, "edge": 1}
    # a triangle and a quad in one ascii file
    body2 = "".join(f"{x} {y} {z} 1\n" for x, y, z in CUBE_V) + "3 0 1 2 0\n4 4 5 6 7 1\n"
    path2 = tmp_path / "b.ply"
    path2.write_bytes(_ply_header("ascii", 8, 2, False) + body2.encode())
    assert read_ply(path2).faces.shape == (3, 3)


def test_ply_errors(tmp_path):
    with pytest.raises(ValueError, match="not a PLY file"):
        read_ply(_p(tmp_path, "x.ply", "OFF\n"))
    trunc = tmp_path / "trunc.ply"
    trunc.write_bytes(_ply_binary("<", CUBE_QUADS)[:-40])
    with pytest.raises(ValueError, match=r"trunc\.ply: binary data ends inside element 'face'"):
        read_ply(trunc)
    bad = _ply_header("ascii", 1, 0, False).replace(b"property float y", b"property float128 y")
    with pytest.raises(ValueError, match=r"bad property line"):
        read_ply(_p(tmp_path, "t.ply", bad.decode() + "0 0 0 0\n"))


def test_stl_ascii_and_binary(tmp_path):
    tris = np.array([[CUBE_V[q[0]], CUBE_V[q[j]], CUBE_V[q[j + 1]]] for q in CUBE_QUADS for j in (1, 2)])
    text = "solid cube\n"
    for t in tris:
        text += "facet normal 0 0 0\n outer loop\n" + "".join(f"  vertex {x} {y} {z}\n" for x, y, z in t)
        text += " endloop\nendfacet\n"
    text += "endsolid cube\n"
    binary = b"solid but binary".ljust(80, b" ") + struct.pack("<I", len(tris))
    for t in tris:
        binary += struct.pack("<12fH", 0, 0, 0, *t.reshape(-1), 0)
    (tmp_path / "b.stl").write_bytes(binary)
    for g in (read_stl(_p(tmp_path, "a.stl", text)), read_stl(tmp_path / "b.stl")):
        assert g.vertices.shape == (8, 3) and g.faces.shape == (12, 3) and _area(g) == pytest.approx(6.0)
    assert read_stl(tmp_path / "b.stl", merge_vertices=False).vertices.shape == (36, 3)


def test_xyz_and_npy(tmp_path):
    g = read_xyz(_p(tmp_path, "p.xyz", "# comment\n0 0 0\n1 2 3\n"))
    assert g.vertices.shape == (2, 3) and g.normals is None
    g = read_pointcloud(_p(tmp_path, "p.pwn", "3\n0 0 0 0 0 1\n1 1 1 0 1 0\n2 2 2 1 0 0\n"))
    assert g.vertices.shape == (3, 3) and g.normals[2].tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match=r"bad\.xyz:1: 9 columns; accepted: 3 \(x y z\) or 6"):
        read_xyz(_p(tmp_path, "bad.xyz", "1 2 3 4 5 6 7 8 9\n"))
    with pytest.raises(ValueError, match=r"rag\.xyz:2: 4 columns, the first point has 3"):
        read_xyz(_p(tmp_path, "rag.xyz", "1 2 3\n1 2 3 4\n"))
    np.save(tmp_path / "p6.npy", np.arange(12, dtype=np.float64).reshape(2, 6))
    g = read_npy_points(tmp_path / "p6.npy")
    assert g.vertices.dtype == np.float32 and g.normals.tolist() == [[3, 4, 5], [9, 10, 11]]
    np.save(tmp_path / "p4.npy", np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"shape \(5, 4\)"):
        read_pointcloud(tmp_path / "p4.npy")
    with pytest.raises(ValueError, match=r"unsupported 3-D file suffix '\.obj'"):
        read_pointcloud(tmp_path / "m.obj")


def test_sample_surface_is_area_weighted_and_on_the_surface():
    # two separate triangles in z=0 / x=5 planes with areas 0.5 and 1.5
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [5, 1, 0], [5, 0, 3]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    pts, nrm = sample_surface(vertices, faces, 20000, rng=0)
    assert pts.shape == (20000, 3) and pts.dtype == np.float32
    on_first = pts[:, 0] < 2
    assert on_first.mean() == pytest.approx(0.25, abs=0.015)
    first = pts[on_first]
    assert np.allclose(first[:, 2], 0) and (first[:, :2] >= -1e-6).all() and (first[:, :2].sum(1) <= 1 + 1e-6).all()
    np.testing.assert_allclose(first[:, :2].mean(0), [1 / 3, 1 / 3], atol=0.01)  # uniform: mean at the centroid
    np.testing.assert_allclose(np.abs(nrm[on_first]), np.tile([0, 0, 1], (on_first.sum(), 1)), atol=1e-6)
    np.testing.assert_allclose(np.abs(nrm[~on_first]), np.tile([1, 0, 0], ((~on_first).sum(), 1)), atol=1e-6)
    again, _ = sample_surface(vertices, faces, 20000, rng=0)
    np.testing.assert_array_equal(pts, again)


def test_sample_surface_errors():
    v = np.zeros((3, 3))
    with pytest.raises(ValueError, match="total area is 0"):
        sample_surface(v, np.array([[0, 1, 2]]), 4)
    with pytest.raises(ValueError, match="refers to vertex 3"):
        sample_surface(np.eye(3), np.array([[0, 1, 3]]), 4)
    with pytest.raises(ValueError, match=r"expected \(F, 3\) with F >= 1"):
        sample_surface(np.eye(3), np.zeros((0, 3), int), 4)


def test_rotations_and_pose():
    for mode in ("so3", "z", "none"):
        r = random_rotation(1, mode=mode)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
    assert random_rotation(2, mode="z")[2].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="accepted: 'so3'"):
        random_rotation(0, mode="w")

    rng = np.random.default_rng(0)
    pts = rng.standard_normal((500, 3)).astype(np.float32)
    nrm = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    same, _ = random_pose(pts, nrm, rng=0, rotation="none", scale=(1, 1), jitter=0.0)
    np.testing.assert_allclose(same, pts, atol=1e-6)
    out, out_n = random_pose(pts, nrm, rng=0, crop=0.3, jitter=0.02, jitter_clip=0.03, anisotropic=True)
    assert out.shape == pts.shape and out_n.shape == pts.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out_n, axis=1), 1.0, rtol=1e-5)
    rot, rot_n = random_pose(pts, nrm, rng=3, scale=(1, 1), jitter=0.0)
    np.testing.assert_allclose(np.linalg.norm(rot, axis=1), np.linalg.norm(pts, axis=1), rtol=1e-5)  # rigid
    np.testing.assert_allclose((rot * rot_n).sum(1), (pts * nrm).sum(1), rtol=1e-4, atol=1e-5)  # normals follow


def test_partial_crop_and_normalize():
    pts = np.random.default_rng(0).uniform(-1, 1, (1000, 3))
    kept, _ = partial_crop(pts, fraction=0.4, rng=0, keep_count=False)
    assert len(kept) == 600
    full, _ = partial_crop(pts, fraction=0.4, rng=0)
    assert len(full) == 1000 and len(np.unique(full, axis=0)) == 600
    with pytest.raises(ValueError, match="0 <= fraction < 1"):
        partial_crop(pts, fraction=1.0)
    unit = normalize_unit_sphere(pts * 7 + 3)
    assert np.linalg.norm(unit, axis=1).max() == pytest.approx(1.0, rel=1e-6)
