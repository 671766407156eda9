"""Point clouds: (B, N, 3) coordinates, or (B, N, 6) with unit normals, projected onto image planes.

Both projections look at the cloud from fixed views. View ``v`` rotates the points with a fixed matrix ``R_v``
(the reference's Euler angles ``(kπ/2, 0, π/2)`` in the static x-y-z convention, ``R = Rz(π/2)·Rx(kπ/2)``,
k = 0..3; ``views=6`` adds the two views along ±x) and projects orthographically onto the x-y plane: a point
``(x, y, z)`` (after rotation) falls in pixel

    column = ⌊(x / extent + 1) / 2 · W⌋,   row = ⌊(1 − y / extent) / 2 · H⌋     (clamped to the image)

so +x points right and +y up; ``z`` is the depth axis, larger ``z`` nearer to the viewer (the reference's
translation ``(0, 0, −1.4)`` moves the cloud in front of a camera at the origin looking down −z; it changes no
pixel of an orthographic projection, and the depth value below is its normalised form). Points are expected
centred and roughly inside the unit sphere (the data layer does that); ``extent`` leaves room for scale
augmentation.

``projection='learned'`` (UniRepLKNet / P2P style)
    per-point features — a pointwise 1×1 layer and kNN edge features ``max_j h([f_j − f_i, f_i])`` — are
    scatter-added into a ``splat × splat`` neighbourhood of an H×W grid per view, together with the point count
    and depth; a small shared conv block maps each view to features; views are fused (``layout``) into 3 channels,
    passed through a sigmoid and normalised with ImageNet statistics.
``projection='depth'`` (fixed, nothing learned)
    per view a z-buffer depth image (nearest point's depth in [0, 1], 0 where empty) and an occupancy image (1
    where any point falls), points splatted into ``splat × splat`` pixels; normalised to [−1, 1].

``layout``: ``channels`` stacks the views as channels; ``tile`` places them side by side on a grid (2×2 for 4
views, 2×3 for 6); ``batch`` (learned only) returns (B·V, 3, H, W) — each view a separate image through the
backbone — and ``postprocess`` averages the V outputs of a sample, as in the reference's multi-view inference.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base import ModalityAdapter
from ..image.adapter import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "POINT_LAYOUTS",
    "POINT_PROJECTIONS",
    "REFERENCE_TRANSLATION",
    "PointCloudAdapter",
    "depth_images",
    "knn_indices",
    "project_to_pixels",
    "view_rotations",
]

POINT_PROJECTIONS = ("learned", "depth")
POINT_LAYOUTS = ("channels", "tile", "batch")
REFERENCE_TRANSLATION = (0.0, 0.0, -1.4)


def _euler_sxyz(ax: float, ay: float, az: float) -> torch.Tensor:
    """Rotation for static-frame Euler angles about x, then y, then z: ``Rz(az) · Ry(ay) · Rx(ax)``."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    return rz @ ry @ rx


def view_rotations(views: int) -> torch.Tensor:
    """(V, 3, 3) view rotations: the reference's four (``(kπ/2, 0, π/2)``, k = 0..3), plus for ``views=6`` the two
    along ±x (``(0, ±π/2, π/2)``); ``views=1`` is the first reference view.

    Raises:
        ValueError: for a view count other than 1, 4 or 6.
    """
    if views not in (1, 4, 6):
        raise ValueError(f"views={views} is not accepted; choose 1, 4 or 6")
    angles = [(k * math.pi / 2, 0.0, math.pi / 2) for k in range(4)]
    if views == 6:
        angles += [(0.0, math.pi / 2, math.pi / 2), (0.0, -math.pi / 2, math.pi / 2)]
    return torch.stack([_euler_sxyz(*a) for a in angles[:views]]).float()


def project_to_pixels(points: torch.Tensor, rotations: torch.Tensor, size: int, extent: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthographic projection of (B, N, 3) points in V views.

    Returns:
        ``(row, col, depth)``, each (B, V, N): integer pixel coordinates (clamped into the ``size``×``size``
        image, see the module docstring) and the depth ``(z / extent + 1) / 2`` clamped to [0, 1], where 1 is
        nearest to the viewer.
    """
    p = torch.einsum("vij,bnj->bvni", rotations.to(points.dtype), points)
    # translating by REFERENCE_TRANSLATION shifts z only; it cancels in the normalised depth below
    col = ((p[..., 0] / extent + 1) * 0.5 * size).floor().clamp_(0, size - 1).long()
    row = ((1 - p[..., 1] / extent) * 0.5 * size).floor().clamp_(0, size - 1).long()
    depth = ((p[..., 2] / extent + 1) * 0.5).clamp(0, 1)
    return row, col, depth


def _box_sum(x: torch.Tensor, splat: int) -> torch.Tensor:
    """Sum over each pixel's ``splat × splat`` neighbourhood (zero outside the image) of a (B, C, H, W) map:
    scatter-adding every point into its neighbourhood equals scattering it into one pixel, then this."""
    if splat == 1:
        return x
    c = x.shape[1]
    kernel = x.new_ones(c, 1, splat, splat)
    return F.conv2d(x, kernel, padding=splat // 2, groups=c)


def depth_images(points: torch.Tensor, rotations: torch.Tensor, size: int, extent: float = 1.25, splat: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer depth and occupancy images of (B, N, 3) points in V views.

    Returns:
        ``(depth, occupancy)``, each (B, V, size, size) in [0, 1]: the largest (nearest) depth of the points whose
        ``splat × splat`` neighbourhood covers a pixel, 0 where none does; 1 where at least one does, else 0.
    """
    b, v = points.shape[0], rotations.shape[0]
    row, col, depth = project_to_pixels(points, rotations, size, extent)
    idx = row * size + col
    zbuf = torch.zeros(b, v, size * size, dtype=points.dtype, device=points.device)
    zbuf.scatter_reduce_(2, idx, depth, reduce="amax", include_self=True)
    # a point at depth exactly 0 (the far edge) would look empty in zbuf, so occupancy is counted separately
    occ = torch.zeros_like(zbuf).scatter_add_(2, idx, torch.ones_like(depth)).clamp_(max=1)
    maps = torch.stack([zbuf, occ], 2).view(b, v * 2, size, size)
    if splat > 1:  # neighbourhood max (values are >= 0, so zero padding is neutral)
        maps = F.max_pool2d(maps, splat, stride=1, padding=splat // 2)
    maps = maps.view(b, v, 2, size, size)
    return maps[:, :, 0], maps[:, :, 1]


def knn_indices(points: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, k) indices of each point's k nearest neighbours (itself included), by Euclidean distance."""
    with torch.no_grad():
        d = torch.cdist(points, points)
        return d.topk(min(k, points.shape[1]), dim=-1, largest=False).indices


def _tile(x: torch.Tensor, views: int) -> torch.Tensor:
    """(B·V, C, H, W) → (B, C, rows·H, cols·W): views on a grid (2×2 for 4, 2×3 for 6, 1×1 for 1)."""
    bv, c, h, w = x.shape
    rows, cols = {1: (1, 1), 4: (2, 2), 6: (2, 3)}[views]
    return x.view(bv // views, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(bv // views, c, rows * h,
                                                                                      cols * w)


class _PointFeatures(nn.Module):
    """Per-point features: a pointwise layer plus DGCNN-style kNN edge features, max-pooled over neighbours."""

    def __init__(self, in_dims: int, dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.point = nn.Sequential(nn.Conv1d(in_dims, dim, 1, bias=False), nn.BatchNorm1d(dim), nn.LeakyReLU(0.2))
        # h([f_j - f_i, f_i]) = A f_j + (B - A) f_i: two per-point projections, gathered per edge
        self.edge_nbr = nn.Linear(dim, dim, bias=False)
        self.edge_ctr = nn.Linear(dim, dim, bias=False)
        self.edge_norm = nn.BatchNorm2d(dim)
        self.out = nn.Sequential(nn.Conv1d(2 * dim, dim, 1, bias=False), nn.BatchNorm1d(dim), nn.LeakyReLU(0.2))

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        b, n, _ = xyz.shape
        f = self.point(feats.transpose(1, 2))  # (B, D, N)
        idx = knn_indices(xyz, self.k)  # (B, N, k)
        ft = f.transpose(1, 2)  # (B, N, D)
        nbr = self.edge_nbr(ft)
        ctr = self.edge_ctr(ft)
        k = idx.shape[-1]
        gathered = torch.gather(nbr, 1, idx.reshape(b, n * k, 1).expand(-1, -1, nbr.shape[-1])).view(b, n, k, -1)
        edge = (gathered - nbr.unsqueeze(2) + ctr.unsqueeze(2)).permute(0, 3, 1, 2)  # (B, D, N, k)
        edge = F.leaky_relu(self.edge_norm(edge), 0.2).amax(-1)  # (B, D, N)
        return self.out(torch.cat([f, edge], 1)).transpose(1, 2)  # (B, N, D)


class PointCloudAdapter(ModalityAdapter):
    """(B, N, 3) or (B, N, 6) point clouds → (B, C, H, W) maps (or (B·V, 3, H, W) with ``layout='batch'``).

    Args:
        projection: ``learned`` (per-point features scattered into view grids) or ``depth`` (fixed z-buffer depth
            and occupancy images); see the module docstring.
        img_size: Side of each view's image.
        in_dims: 3 (coordinates) or 6 (coordinates + normals; the learned projection uses the normals as input
            features, the depth projection ignores them).
        views: 4 (the reference's) or 6 (plus ±x); 1 for a single view.
        layout: ``channels``, ``tile`` or (learned only) ``batch``.
        extent: Half-width of the projected square in point units (points are expected in the unit sphere).
        splat: Side of the pixel neighbourhood each point writes to (odd; the reference uses 3).
        feat_dim: Per-point feature width (learned).
        k: Neighbours of the edge features (learned; the reference uses 32).
        hidden: Channels of the per-view conv block (learned).
    """

    name = "pointcloud"

    def __init__(self, projection: str = "learned", img_size: int = 64, in_dims: int = 3, views: int = 4,
                 layout: str = "channels", extent: float = 1.25, splat: int = 3, feat_dim: int = 16, k: int = 16,
                 hidden: int = 16) -> None:
        super().__init__()
        if projection not in POINT_PROJECTIONS:
            raise ValueError(f"pointcloud projection {projection!r} is not accepted; choose one of "
                             f"{', '.join(POINT_PROJECTIONS)}")
        if layout not in POINT_LAYOUTS or (projection == "depth" and layout == "batch"):
            ok = POINT_LAYOUTS if projection == "learned" else ("channels", "tile")
            raise ValueError(f"pointcloud layout {layout!r} is not accepted with projection {projection!r}; "
                             f"choose one of {', '.join(ok)}")
        if in_dims not in (3, 6):
            raise ValueError(f"pointcloud in_dims must be 3 (xyz) or 6 (xyz + normals), got {in_dims}")
        if splat < 1 or splat % 2 == 0:
            raise ValueError(f"pointcloud splat must be an odd number >= 1, got {splat}")
        if img_size < 4 or extent <= 0 or feat_dim < 1 or k < 1 or hidden < 1:
            raise ValueError(f"pointcloud: need img_size >= 4, extent > 0, feat_dim, k, hidden >= 1; got img_size="
                             f"{img_size}, extent={extent}, feat_dim={feat_dim}, k={k}, hidden={hidden}")
        self.projection, self.img_size, self.in_dims, self.views = projection, img_size, in_dims, views
        self.layout, self.extent, self.splat = layout, float(extent), splat
        self.feat_dim, self.k, self.hidden = feat_dim, k, hidden
        self.register_buffer("rotations", view_rotations(views), persistent=False)
        if projection == "depth":
            self.out_chans = 2 * views if layout == "channels" else 2
            return
        self.features = _PointFeatures(in_dims, feat_dim, k)
        grid_in = feat_dim + 2  # scattered features, log point count, mean depth
        self.view_block = nn.Sequential(
            nn.BatchNorm2d(grid_in), nn.Conv2d(grid_in, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
            nn.GELU(),
        )
        self.to_rgb = nn.Conv2d(hidden * views if layout == "channels" else hidden, 3, 1)
        self.out_chans = 3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"projection": self.projection, "img_size": self.img_size, "in_dims": self.in_dims,
                "views": self.views, "layout": self.layout, "extent": self.extent, "splat": self.splat,
                "feat_dim": self.feat_dim, "k": self.k, "hidden": self.hidden}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_dims:
            raise ValueError(f"pointcloud adapter expects (B, N, {self.in_dims}) points, got {tuple(x.shape)}")
        x = x.float()
        xyz = x[..., :3]
        if self.projection == "depth":
            depth, occ = depth_images(xyz, self.rotations, self.img_size, self.extent, self.splat)
            maps = torch.stack([depth, occ], 2)  # (B, V, 2, H, W)
            out = maps.flatten(1, 2) if self.layout == "channels" else _tile(maps.flatten(0, 1), self.views)
            return out * 2 - 1
        return self._learned(xyz, x)

    def _learned(self, xyz: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = xyz.shape
        v, s = self.views, self.img_size
        feats = self.features(xyz, x)  # (B, N, D)
        row, col, depth = project_to_pixels(xyz, self.rotations, s, self.extent)  # (B, V, N)
        vals = torch.cat([feats.unsqueeze(1).expand(b, v, n, -1), torch.ones_like(depth).unsqueeze(-1),
                          depth.unsqueeze(-1)], -1)  # (B, V, N, D + 2)
        idx = (row * s + col).unsqueeze(-1).expand_as(vals)
        grid = vals.new_zeros(b, v, s * s, vals.shape[-1]).scatter_add(2, idx, vals)
        grid = _box_sum(grid.view(b * v, s, s, -1).permute(0, 3, 1, 2), self.splat)  # (B·V, D + 2, H, W)
        count = grid[:, -2:-1]
        grid = torch.cat([grid[:, :-2], torch.log1p(count), grid[:, -1:] / count.clamp(min=1)], 1)
        h = self.view_block(grid)
        if self.layout == "channels":
            h = h.reshape(b, v * self.hidden, s, s)
        elif self.layout == "tile":
            h = _tile(h, v)
        rgb = torch.sigmoid(self.to_rgb(h))
        return (rgb - self.mean) / self.std

    def postprocess(self, output: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """With ``layout='batch'`` averages the V per-view outputs of each sample; identity otherwise."""
        if self.projection == "learned" and self.layout == "batch" and output.shape[0] == raw.shape[0] * self.views:
            return output.view(raw.shape[0], self.views, *output.shape[1:]).mean(1)
        return output
