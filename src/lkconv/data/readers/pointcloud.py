"""3-D shapes: OFF, PLY (ascii / binary), STL, XYZ/PWN and NPY readers and a surface sampler (pose augmentations: :mod:`lkconv.data.augment.pointcloud`).

Every reader returns a :class:`Geometry`: vertices, triangle faces for meshes (polygons are triangulated as fans)
and per-vertex normals when the file has them.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RngLike",
    "as_generator",
    "Geometry",
    "normalize_unit_sphere",
    "read_npy_points",
    "read_off",
    "read_ply",
    "read_pointcloud",
    "read_stl",
    "read_xyz",
    "sample_surface",
]

RngLike = np.random.Generator | int | None


@dataclass
class Geometry:
    """A point set or a triangle mesh.

    Attributes:
        vertices: (V, 3) float32 coordinates.
        faces: (F, 3) int64 vertex indices of triangles, or None for a point set.
        normals: (V, 3) float32 per-vertex normals, or None.
        metadata: ``source``, ``format`` and format-specific extras (e.g. ``polygon_faces``, the number of input
            faces before triangulation; ``vertex_properties`` for PLY).
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    normals: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None and len(self.faces) > 0


def as_generator(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_faces(faces: np.ndarray, n_vertices: int, where: str) -> None:
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        bad = int(faces.min() if faces.min() < 0 else faces.max())
        raise ValueError(f"{where}: face refers to vertex {bad}, but there are {n_vertices} vertices (0-based)")


def _fan(polygons: list[list[int]]) -> np.ndarray:
    tris = [(p[0], p[j], p[j + 1]) for p in polygons for j in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


# ----------------------------------------------------------------------------------------------------------- OFF
_OFF_RE = re.compile(r"^(ST)?(C)?(N)?(4)?(n)?OFF$")


def read_off(path: str | os.PathLike) -> Geometry:
    """Reads an ASCII OFF / COFF / NOFF / CNOFF / STOFF file.

    The counts ``nv nf ne`` may follow ``OFF`` on the same line; ``#`` starts a comment; faces ``k i1 ... ik`` with
    ``k > 3`` are triangulated as fans; per-vertex and per-face colours are ignored.

    Raises:
        ValueError: on a bad header, wrong counts, non-numeric values or out-of-range indices (naming the line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise ValueError(f"{path}: cannot open OFF file ({e})") from e
    lines = text.splitlines()
    if "#" in text:
        lines = [ln.split("#", 1)[0] for ln in lines]
    body = [ln for ln in lines if ln and not ln.isspace()]  # line numbers are recovered only for error messages
    if not body:
        raise ValueError(f"{path}: empty OFF file")
    head = body[0].split()
    m = _OFF_RE.match(head[0])
    if m is None:
        raise ValueError(
            f"{path}:{_lineno(lines, 0)}: first keyword is {head[0]!r}; accepted: OFF, COFF, NOFF, CNOFF, STOFF"
        )
    if m.group(4) or m.group(5):
        raise ValueError(f"{path}:{_lineno(lines, 0)}: {head[0]} (4-D / n-D OFF) is not supported; accepted: 3-D OFF")
    if len(head) > 1 and head[1].upper() == "BINARY":
        raise ValueError(f"{path}:{_lineno(lines, 0)}: binary OFF is not supported; accepted: ASCII OFF")
    has_normals = m.group(3) is not None
    pos, counts = 1, head[1:]
    if not counts:
        if len(body) < 2:
            raise ValueError(f"{path}: OFF header has no vertex/face counts")
        pos, counts = 2, body[1].split()
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except (ValueError, IndexError):
        where = f"{path}:{_lineno(lines, pos - 1)}"
        raise ValueError(f"{where}: expected counts 'nv nf [ne]', got {' '.join(counts)!r}") from None
    if nv < 0 or nf < 0:
        raise ValueError(f"{path}:{_lineno(lines, pos - 1)}: negative counts nv={nv} nf={nf}")
    if len(body) < pos + nv + nf:
        raise ValueError(
            f"{path}: header declares {nv} vertices and {nf} faces but the file has {len(body) - pos} data lines"
        )
    need = 6 if has_normals else 3
    v = _off_vertices(body[pos : pos + nv], need, path, lambda i: _lineno(lines, pos + i))
    faces, n_poly = _off_faces(body[pos + nv : pos + nv + nf], path, lambda i: _lineno(lines, pos + nv + i))
    _check_faces(faces, nv, str(path))
    return Geometry(
        vertices=v[:, :3].astype(np.float32),
        faces=faces if nf else None,
        normals=v[:, 3:6].astype(np.float32) if has_normals else None,
        metadata={"source": str(path), "format": "off", "polygon_faces": nf, "non_triangles": n_poly},
    )


def _lineno(lines: list[str], body_index: int) -> int:
    """1-based file line of the ``body_index``-th non-blank line (only computed for error messages)."""
    seen = -1
    for no, ln in enumerate(lines, start=1):
        if ln and not ln.isspace():
            seen += 1
            if seen == body_index:
                return no
    return len(lines)


def _off_vertices(block: list[str], need: int, path: Path, lineno: Callable[[int], int]) -> np.ndarray:
    if not block:
        return np.zeros((0, need), np.float64)
    try:
        v = np.loadtxt(block, dtype=np.float64, ndmin=2)  # numpy's C parser; raises on ragged rows
        if v.shape[1] >= need:
            return v[:, :need]
    except ValueError:
        pass
    rows = []
    for i, ln in enumerate(block):  # ragged rows (optional colours) or an error to locate
        t = ln.split()
        try:
            if len(t) < need:
                raise ValueError
            rows.append([float(x) for x in t[:need]])
        except ValueError:
            what = "x y z nx ny nz" if need == 6 else "x y z"
            raise ValueError(f"{path}:{lineno(i)}: vertex line {ln.strip()!r} does not start with {what}") from None
    return np.asarray(rows, dtype=np.float64)


def _off_faces(block: list[str], path: Path, lineno: Callable[[int], int]) -> tuple[np.ndarray, int]:
    if not block:
        return np.zeros((0, 3), np.int64), 0
    try:
        arr = np.loadtxt(block, dtype=np.int64, ndmin=2)
    except ValueError:
        arr = None  # mixed polygon sizes, float colours, or an error: the line-by-line path sorts it out
    if arr is not None and arr.shape[1] >= 4 and (arr[:, 0] == arr[0, 0]).all() and arr.shape[1] >= arr[0, 0] + 1:
        k = int(arr[0, 0])
        if k >= 3:
            idx = arr[:, 1 : 1 + k]
            if k == 3:
                return idx, 0
            tris = np.stack([np.stack([idx[:, 0], idx[:, j], idx[:, j + 1]], axis=1) for j in range(1, k - 1)], 1)
            return tris.reshape(-1, 3), len(block)
    polys: list[list[int]] = []
    n_poly = 0
    for i, ln in enumerate(block):
        t = ln.split()
        try:
            k = int(t[0])
            ids = [int(x) for x in t[1 : 1 + k]]
        except ValueError:
            raise ValueError(
                f"{path}:{lineno(i)}: face line {ln.strip()!r} is not 'k i1 ... ik' with integers"
            ) from None
        if k < 3 or len(ids) != k:
            raise ValueError(f"{path}:{lineno(i)}: face declares {k} vertices but has {len(ids)}; a face needs k >= 3")
        n_poly += k > 3
        polys.append(ids)
    return _fan(polys), n_poly


# ----------------------------------------------------------------------------------------------------------- PLY
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class _PlyProp:
    name: str
    dtype: str
    count_dtype: str | None = None  # set for list properties


@dataclass
class _PlyElement:
    name: str
    count: int
    props: list[_PlyProp] = field(default_factory=list)


def _ply_header(raw: bytes, path: Path) -> tuple[str, list[_PlyElement], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (needs 'ply' on the first line and an 'end_header' line)")
    nl = raw.find(b"\n", end)
    body_start = len(raw) if nl < 0 else nl + 1
    fmt = None
    elements: list[_PlyElement] = []
    for no, line in enumerate(raw[:end].decode("latin-1").splitlines()[1:], start=2):
        t = line.split()
        if not t or t[0] in ("comment", "obj_info"):
            continue
        where = f"{path}:{no}"
        if t[0] == "format":
            if len(t) < 2 or t[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise ValueError(f"{where}: format {line!r}; accepted: ascii, binary_little_endian, binary_big_endian")
            fmt = t[1]
        elif t[0] == "element":
            if len(t) != 3 or not t[2].isdigit():
                raise ValueError(f"{where}: expected 'element <name> <count>', got {line!r}")
            elements.append(_PlyElement(t[1], int(t[2])))
        elif t[0] == "property":
            if not elements:
                raise ValueError(f"{where}: 'property' before any 'element'")
            if len(t) == 5 and t[1] == "list" and t[2] in _PLY_TYPES and t[3] in _PLY_TYPES:
                elements[-1].props.append(_PlyProp(t[4], _PLY_TYPES[t[3]], _PLY_TYPES[t[2]]))
            elif len(t) == 3 and t[1] in _PLY_TYPES:
                elements[-1].props.append(_PlyProp(t[2], _PLY_TYPES[t[1]]))
            else:
                raise ValueError(
                    f"{where}: bad property line {line!r}; accepted types: {', '.join(sorted(set(_PLY_TYPES)))}"
                )
        else:
            raise ValueError(f"{where}: unknown PLY header keyword {t[0]!r}")
    if fmt is None:
        raise ValueError(f"{path}: PLY header has no 'format' line")
    return fmt, elements, body_start


def _ply_ascii(body: bytes, elements: list[_PlyElement], path: Path, first_line: int) -> dict[str, dict]:
    lines = [(first_line + i, ln.split()) for i, ln in enumerate(body.decode("latin-1").splitlines())]
    lines = [(no, t) for no, t in lines if t]
    out: dict[str, dict] = {}
    pos = 0
    for el in elements:
        rows = lines[pos : pos + el.count]
        if len(rows) < el.count:
            raise ValueError(f"{path}: element '{el.name}' declares {el.count} rows, file ends after {len(rows)}")
        pos += el.count
        out[el.name] = _ply_ascii_element(rows, el, path)
    return out


def _ply_ascii_element(rows: list[tuple[int, list[str]]], el: _PlyElement, path: Path) -> dict[str, Any]:
    if not rows:
        return {p.name: np.zeros((0,), np.float64) for p in el.props}
    widths = {len(t) for _, t in rows}
    if len(widths) == 1:  # uniform rows: vectorise, then check list counts really are constant
        try:
            arr = np.array([t for _, t in rows], dtype=np.float64)
        except ValueError:
            arr = None
        if arr is not None:
            cols: dict[str, Any] = {}
            c = 0
            ok = True
            for p in el.props:
                if p.count_dtype is None:
                    cols[p.name] = arr[:, c]
                    c += 1
                else:
                    k = int(arr[0, c])
                    if not (arr[:, c] == k).all():
                        ok = False
                        break
                    cols[p.name] = arr[:, c + 1 : c + 1 + k]
                    c += 1 + k
            if ok and c == arr.shape[1]:
                return cols
    lists: dict[str, list] = {p.name: [] for p in el.props}
    for no, t in rows:
        c = 0
        try:
            for p in el.props:
                if p.count_dtype is None:
                    lists[p.name].append(float(t[c]))
                    c += 1
                else:
                    k = int(t[c])
                    lists[p.name].append([float(x) for x in t[c + 1 : c + 1 + k]])
                    if len(lists[p.name][-1]) != k:
                        raise IndexError
                    c += 1 + k
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}:{no}: row of element '{el.name}' does not match its properties "
                f"{[p.name for p in el.props]}: {' '.join(t)[:80]!r}"
            ) from None
    return {p.name: (np.asarray(lists[p.name]) if p.count_dtype is None else lists[p.name]) for p in el.props}


def _ply_binary(body: bytes, elements: list[_PlyElement], path: Path, order: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    off = 0
    for el in elements:
        if all(p.count_dtype is None for p in el.props):
            dt = np.dtype([(p.name, order + p.dtype) for p in el.props])
            need = dt.itemsize * el.count
            if off + need > len(body):
                raise ValueError(f"{path}: binary data ends inside element '{el.name}' ({el.count} rows declared)")
            arr = np.frombuffer(body, dtype=dt, count=el.count, offset=off)
            off += need
            out[el.name] = {p.name: arr[p.name] for p in el.props}
            continue
        out[el.name], off = _ply_binary_lists(body, off, el, path, order)
    return out


def _ply_binary_lists(body: bytes, off: int, el: _PlyElement, path: Path, order: str) -> tuple[dict, int]:
    if el.count == 0:
        return {p.name: [] for p in el.props}, off
    # read the first row to learn the list lengths, then try a fixed-layout view of all rows
    fields, o = [], off
    try:
        for p in el.props:
            if p.count_dtype is None:
                fields.append((p.name, order + p.dtype))
                o += np.dtype(p.dtype).itemsize
            else:
                k = int(np.frombuffer(body, dtype=order + p.count_dtype, count=1, offset=o)[0])
                fields.append((p.name + "__count", order + p.count_dtype))
                fields.append((p.name, order + p.dtype, (k,)))
                o += np.dtype(p.count_dtype).itemsize + k * np.dtype(p.dtype).itemsize
    except ValueError:
        raise ValueError(f"{path}: binary data ends inside element '{el.name}'") from None
    dt = np.dtype(fields)
    if off + dt.itemsize * el.count <= len(body):
        arr = np.frombuffer(body, dtype=dt, count=el.count, offset=off)
        fixed = all((arr[p.name + "__count"] == arr[p.name + "__count"][0]).all() for p in el.props if p.count_dtype)
        if fixed:
            return {p.name: arr[p.name] for p in el.props}, off + dt.itemsize * el.count
    # variable-length lists: walk row by row
    lists: dict[str, list] = {p.name: [] for p in el.props}
    try:
        for _ in range(el.count):
            for p in el.props:
                if p.count_dtype is None:
                    lists[p.name].append(np.frombuffer(body, dtype=order + p.dtype, count=1, offset=off)[0])
                    off += np.dtype(p.dtype).itemsize
                else:
                    k = int(np.frombuffer(body, dtype=order + p.count_dtype, count=1, offset=off)[0])
                    off += np.dtype(p.count_dtype).itemsize
                    lists[p.name].append(np.frombuffer(body, dtype=order + p.dtype, count=k, offset=off).tolist())
                    off += k * np.dtype(p.dtype).itemsize
    except ValueError:
        raise ValueError(f"{path}: binary data ends inside element '{el.name}' ({el.count} rows declared)") from None
    return {k: (np.asarray(v) if not isinstance(v[0], list) else v) for k, v in lists.items()}, off


def read_ply(path: str | os.PathLike) -> Geometry:
    """Reads a PLY file (ascii, binary_little_endian or binary_big_endian).

    Uses the ``vertex`` element's ``x y z`` (and ``nx ny nz`` when present) and the ``face`` element's first list
    property (``vertex_indices`` / ``vertex_index``); polygons are triangulated as fans; other elements are read
    and ignored.

    Raises:
        ValueError: on a malformed header, truncated data, or a missing vertex element.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot open PLY file ({e})") from e
    fmt, elements, start = _ply_header(raw, path)
    body = raw[start:]
    if fmt == "ascii":
        first_line = raw[:start].count(b"\n") + 1
        data = _ply_ascii(body, elements, path, first_line)
    else:
        data = _ply_binary(body, elements, path, "<" if fmt == "binary_little_endian" else ">")
    if "vertex" not in data:
        raise ValueError(f"{path}: no 'vertex' element; elements: {[e.name for e in elements]}")
    vert = data["vertex"]
    missing = [c for c in ("x", "y", "z") if c not in vert]
    if missing:
        raise ValueError(f"{path}: vertex element lacks properties {missing}; has {list(vert)}")
    vertices = np.stack([np.asarray(vert[c], dtype=np.float32) for c in ("x", "y", "z")], axis=1)
    normals = None
    if all(c in vert for c in ("nx", "ny", "nz")):
        normals = np.stack([np.asarray(vert[c], dtype=np.float32) for c in ("nx", "ny", "nz")], axis=1)
    faces = None
    n_faces = 0
    if "face" in data:
        face_el = next(e for e in elements if e.name == "face")
        list_props = [p for p in face_el.props if p.count_dtype is not None]
        if not list_props:
            raise ValueError(
                f"{path}: 'face' element has no list property (expected 'property list ... vertex_indices')"
            )
        name = next((p.name for p in list_props if p.name in ("vertex_indices", "vertex_index")), list_props[0].name)
        polys = data["face"][name]
        n_faces = face_el.count
        if isinstance(polys, np.ndarray) and polys.ndim == 2 and polys.shape[1] >= 3:
            idx = polys.astype(np.int64)
            faces = idx if idx.shape[1] == 3 else _fan(idx.tolist())
        elif isinstance(polys, np.ndarray) and polys.size == 0:
            faces = np.zeros((0, 3), np.int64)
        else:
            bad = [i for i, p in enumerate(polys) if len(p) < 3]
            if bad:
                raise ValueError(f"{path}: face {bad[0]} has {len(polys[bad[0]])} vertices; a face needs at least 3")
            faces = _fan([[int(i) for i in p] for p in polys])
        _check_faces(faces, len(vertices), str(path))
    return Geometry(
        vertices=vertices,
        faces=faces if n_faces else None,
        normals=normals,
        metadata={"source": str(path), "format": f"ply-{fmt}", "polygon_faces": n_faces,
                  "vertex_properties": list(vert), "elements": {e.name: e.count for e in elements}},
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- STL
def read_stl(path: str | os.PathLike, *, merge_vertices: bool = True) -> Geometry:
    """Reads an ASCII or binary STL file.

    Args:
        path: the ``.stl`` file.
        merge_vertices: merge identical corner coordinates into shared vertices (STL stores each triangle apart).

    Raises:
        ValueError: on truncated or malformed files.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot open STL file ({e})") from e
    n_bin = struct.unpack("<I", raw[80:84])[0] if len(raw) >= 84 else -1
    if n_bin >= 0 and len(raw) == 84 + 50 * n_bin:  # binary, even when the header starts with "solid"
        rec = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
        tri = np.frombuffer(raw, dtype=rec, count=n_bin, offset=84)["v"].astype(np.float32)
        fmt = "stl-binary"
    elif raw.lstrip()[:5].lower() == b"solid":
        text = raw.decode("latin-1")
        corners = re.findall(r"^\s*vertex\s+(\S+)\s+(\S+)\s+(\S+)", text, flags=re.M)
        if len(corners) % 3:
            raise ValueError(f"{path}: ASCII STL has {len(corners)} 'vertex' lines, not a multiple of 3")
        try:
            tri = np.array(corners, dtype=np.float32).reshape(-1, 3, 3)
        except ValueError as e:
            raise ValueError(f"{path}: non-numeric 'vertex' line in ASCII STL ({e})") from e
        fmt = "stl-ascii"
    else:
        raise ValueError(f"{path}: neither ASCII STL ('solid ...') nor binary STL of size 84 + 50 * n_triangles")
    corners3 = tri.reshape(-1, 3)
    if merge_vertices and len(corners3):
        vertices, inverse = np.unique(corners3, axis=0, return_inverse=True)
        faces = inverse.reshape(-1, 3).astype(np.int64)
    else:
        vertices, faces = corners3, np.arange(len(corners3), dtype=np.int64).reshape(-1, 3)
    return Geometry(vertices=vertices.astype(np.float32), faces=faces,
                    metadata={"source": str(path), "format": fmt, "polygon_faces": len(tri)})  # fmt: skip


# ---------------------------------------------------------------------------------------------- XYZ / PWN / NPY
def read_xyz(path: str | os.PathLike) -> Geometry:
    """Reads a whitespace-separated point list: ``x y z`` or ``x y z nx ny nz`` per line (``.xyz``, ``.pwn``).

    ``#`` comment lines and a leading single-number count line are skipped.

    Raises:
        ValueError: if rows have a column count other than 3 or 6, differ from each other, or are not numeric.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise ValueError(f"{path}: cannot open point file ({e})") from e
    rows = [(no, ln.split()) for no, ln in enumerate(text.splitlines(), start=1)]
    rows = [(no, t) for no, t in rows if t and not t[0].startswith("#")]
    if rows and len(rows[0][1]) == 1 and rows[0][1][0].isdigit():
        rows = rows[1:]
    if not rows:
        return Geometry(vertices=np.zeros((0, 3), np.float32), metadata={"source": str(path), "format": "xyz"})
    width = len(rows[0][1])
    if width not in (3, 6):
        raise ValueError(f"{path}:{rows[0][0]}: {width} columns; accepted: 3 (x y z) or 6 (x y z nx ny nz)")
    for no, t in rows:
        if len(t) != width:
            raise ValueError(f"{path}:{no}: {len(t)} columns, the first point has {width}")
    try:
        arr = np.array([t for _, t in rows], dtype=np.float64)
    except ValueError:
        no, t = next((no, t) for no, t in rows if not all(_is_float(x) for x in t))
        raise ValueError(f"{path}:{no}: non-numeric point {' '.join(t)!r}") from None
    return Geometry(
        vertices=arr[:, :3].astype(np.float32),
        normals=arr[:, 3:6].astype(np.float32) if width == 6 else None,
        metadata={"source": str(path), "format": "xyz"},
    )


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_npy_points(path: str | os.PathLike) -> Geometry:
    """Reads an ``.npy`` array of shape (N, 3) (points) or (N, 6) (points and normals).

    Raises:
        ValueError: for any other shape or a non-numeric dtype.
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read as .npy ({e})") from e
    if arr.ndim != 2 or arr.shape[1] not in (3, 6) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(
            f"{path}: array of shape {arr.shape} and dtype {arr.dtype}; accepted: numeric (N, 3) or (N, 6)"
        )
    return Geometry(
        vertices=arr[:, :3].astype(np.float32),
        normals=arr[:, 3:].astype(np.float32) if arr.shape[1] == 6 else None,
        metadata={"source": str(path), "format": "npy"},
    )


_READERS = {".off": read_off, ".ply": read_ply, ".stl": read_stl, ".xyz": read_xyz, ".pwn": read_xyz,
            ".txt": read_xyz, ".npy": read_npy_points}  # fmt: skip


def read_pointcloud(path: str | os.PathLike) -> Geometry:
    """Reads a mesh or point set, choosing the reader by suffix (.off .ply .stl .xyz .pwn .txt .npy).

    Raises:
        ValueError: for an unknown suffix, a malformed file, or NaN/infinite coordinates or normals (they would
            reach the model as NaN, or as an out-of-range pixel index in the projection).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _READERS:
        raise ValueError(f"{path}: unsupported 3-D file suffix {suffix!r}; accepted: {', '.join(_READERS)}")
    geom = _READERS[suffix](path)
    for what, values in (("coordinates", geom.vertices), ("normals", geom.normals)):
        if values is not None and not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).any(axis=-1).sum())
            raise ValueError(f"{path}: {bad} of {len(values)} points have NaN or infinite {what}; accepted: finite "
                             "numbers")
    return geom


# ---------------------------------------------------------------------------------------------- sampling / pose
def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, rng: RngLike = None
) -> tuple[np.ndarray, np.ndarray]:
    """Samples points uniformly over a triangle mesh's surface (faces drawn with probability proportional to area).

    Args:
        vertices: (V, 3) coordinates.
        faces: (F, 3) vertex indices.
        n: number of points.
        rng: a numpy Generator or a seed.

    Returns:
        ``(points, normals)``, both (n, 3) float32; a normal is the unit normal of the face the point lies on.

    Raises:
        ValueError: if the mesh has no faces, bad indices, or zero total area, or ``n`` is negative.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"sample_surface: vertices have shape {vertices.shape}; expected (V, 3)")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"sample_surface: faces have shape {faces.shape}; expected (F, 3) with F >= 1")
    if n < 0:
        raise ValueError(f"sample_surface: n={n}; expected n >= 0")
    _check_faces(faces, len(vertices), "sample_surface")
    gen = as_generator(rng)
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    cum = np.cumsum(double_area)
    total = cum[-1]
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"sample_surface: the mesh's total area is {total / 2}; cannot sample a degenerate mesh")
    # searchsorted on the cumulative area: faces of zero area are never chosen
    chosen = np.minimum(np.searchsorted(cum, gen.random(n) * total, side="right"), len(faces) - 1)
    u, v = gen.random(n), gen.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    pts = a[chosen] + u[:, None] * (b[chosen] - a[chosen]) + v[:, None] * (c[chosen] - a[chosen])
    normals = cross[chosen] / np.maximum(double_area[chosen], 1e-300)[:, None]
    return pts.astype(np.float32), normals.astype(np.float32)


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centres points on their bounding-box centre and scales them into the unit sphere."""
    points = np.asarray(points, dtype=np.float32)
    if len(points) == 0:
        return points.copy()
    centre = (points.min(0) + points.max(0)) / 2
    p = points - centre
    radius = float(np.linalg.norm(p, axis=1).max())
    return p / radius if radius > 0 else p
