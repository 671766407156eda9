"""Video clips: T frames turned into one C×H×W map for the 2-D backbone.

Raw batch: (B, T, C, H, W), float in [0, 1] or uint8 (converted to float / 255). The adapter normalises per colour
channel (ImageNet statistics for RGB, 0.5/0.5 otherwise) and arranges the frames in one of three layouts:

``reference``
    UniRepLKNet's video recipe: ``(B, C, T, H, W).reshape(B, C, H·s, W·s)`` with ``s = √T`` — a raw memory-order
    reshape, *not* a tiling. Output row ``r`` holds ``s`` consecutive source rows of frame ``r // (H / s)``, so
    frame ``t`` occupies output rows ``[t·H/s, (t+1)·H/s)``, its rows laid side by side in ``s`` segments of
    width ``W``. Needs a square T and H divisible by √T.
``grid``
    A true tiling: frames in row-major order on a ``rows × cols`` grid (``cols = ⌈√T⌉``, ``rows = ⌈T / cols⌉``),
    empty cells zero. Frame ``t`` occupies rows ``[(t // cols)·H, …+H)`` and columns ``[(t % cols)·W, …+W)``.
``channels``
    Frames stacked as channels: (B, T·C, H, W), frame-major (channel ``t·C + c`` is colour ``c`` of frame ``t``).

With ``temporal_diff`` every frame also carries its difference to the next frame (``x[t+1] - x[t]`` of the
normalised frames, zero for the last one) as ``C`` extra colour channels, before the layout: a pixel then sees the
frame and how it changes, the input TSN calls RGB-diff. A camera pan or any motion is a sign pattern between the
difference and the frame's spatial gradient at the same place, which the first convolution can pick up; without it
the network must align frames several pixels apart first (see ``docs/defaults_evidence.md``, "Audio and video
defaults").

With ``motion`` every frame also carries two motion-energy channels per colour channel: the signed square root of
``D · ∂I/∂x`` and ``D · ∂I/∂y``, with ``D = x[t+1] - x[t]`` and the spatial gradient (central differences) of the
two frames' mean (zero for the last frame). Under a motion ``v`` the brightness-constancy equation gives
``D ≈ -(v · ∇I)``, so ``D · ∂I/∂x ≈ -v_x (∂I/∂x)² - v_y (∂I/∂x)(∂I/∂y)``: its sign over a frame is the direction of
motion along x, a product a linear first layer cannot form from the frame and its difference alone (the
gradient-based "normal flow" of Horn & Schunck / Lucas & Kanade, without solving for the flow). The signed square
root keeps the sign and brings the product back to the scale of its factors.

Train-time augmentation (a crop shared by all frames) lives in the data layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..base import ModalityAdapter
from ..image.adapter import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["VIDEO_LAYOUTS", "VideoAdapter", "grid_shape", "motion_energy", "video_to_map", "with_temporal_diff"]

VIDEO_LAYOUTS = ("reference", "grid", "channels")


def grid_shape(num_frames: int) -> tuple[int, int]:
    """``(rows, cols)`` of the ``grid`` layout: ``cols = ⌈√T⌉``, ``rows = ⌈T / cols⌉``."""
    cols = math.isqrt(num_frames)
    if cols * cols < num_frames:
        cols += 1
    return -(-num_frames // cols), cols


def video_to_map(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Arranges a (B, T, C, H, W) clip batch as one map per clip (see the module docstring for the layouts).

    Raises:
        ValueError: for an unknown layout, a non-5-D input, or a shape the ``reference`` layout cannot reshape.
    """
    if x.dim() != 5:
        raise ValueError(f"video clips must be (B, T, C, H, W), got shape {tuple(x.shape)}")
    b, t, c, h, w = x.shape
    if layout == "reference":
        s = math.isqrt(t)
        if s * s != t or h % s:
            raise ValueError(f"layout 'reference' needs a square number of frames and a frame height divisible by "
                             f"√T; got T={t}, H={h}. Use layout 'grid' or 'channels', or num_frames 4, 9, 16, …")
        return x.transpose(1, 2).reshape(b, c, h * s, w * s)
    if layout == "grid":
        rows, cols = grid_shape(t)
        if rows * cols != t:
            x = torch.cat([x, x.new_zeros(b, rows * cols - t, c, h, w)], dim=1)
        # (B, rows, cols, C, H, W) -> (B, C, rows, H, cols, W)
        return x.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, rows * h, cols * w)
    if layout == "channels":
        return x.reshape(b, t * c, h, w)
    raise ValueError(f"video layout {layout!r} is not accepted; choose one of {', '.join(VIDEO_LAYOUTS)}")


def with_temporal_diff(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, 2C, H, W): each frame followed by ``x[t+1] - x[t]`` (zeros for the last frame)."""
    diff = torch.zeros_like(x)
    diff[:, :-1] = x[:, 1:] - x[:, :-1]
    return torch.cat([x, diff], dim=2)


def _central_diff(a: torch.Tensor, dim: int) -> torch.Tensor:
    """Derivative along ``dim`` by central differences, one-sided at the two borders (zeros for a length-1 axis);
    slices and a concatenation only, so ONNX export keeps it."""
    n = a.shape[dim]
    if n < 2:
        return torch.zeros_like(a)
    first = a.narrow(dim, 1, 1) - a.narrow(dim, 0, 1)
    last = a.narrow(dim, n - 1, 1) - a.narrow(dim, n - 2, 1)
    if n == 2:
        return torch.cat([first, last], dim)
    inner = (a.narrow(dim, 2, n - 2) - a.narrow(dim, 0, n - 2)) * 0.5
    return torch.cat([first, inner, last], dim)


def motion_energy(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, 2C, H, W): signed square roots of ``D · ∂Ī/∂x`` and ``D · ∂Ī/∂y`` per frame, with
    ``D = x[t+1] - x[t]`` and ``Ī`` the mean of frames ``t`` and ``t+1`` (zeros for the last frame; see the module
    docstring)."""
    if x.shape[1] < 2:
        return torch.cat([torch.zeros_like(x), torch.zeros_like(x)], dim=2)
    d = x[:, 1:] - x[:, :-1]
    mean = (x[:, 1:] + x[:, :-1]) * 0.5
    prods = torch.cat([d * _central_diff(mean, -1), d * _central_diff(mean, -2)], dim=2)
    energy = torch.sign(prods) * torch.sqrt(prods.abs())
    return torch.cat([energy, torch.zeros_like(energy[:, :1])], dim=1)  # no in-place writes: ONNX export keeps it


class VideoAdapter(ModalityAdapter):
    """(B, T, C, H, W) clips → normalised (B, C', H', W') maps.

    Args:
        num_frames: Frames per clip (T).
        in_chans: Colour channels per frame (C: 3 for RGB, 1 for grey).
        layout: ``reference``, ``grid`` or ``channels`` (see the module docstring).
        mean: Per-colour-channel mean (default: ImageNet's for 3 channels, 0.5 otherwise).
        std: Per-colour-channel std (default: ImageNet's for 3 channels, 0.5 otherwise).
        temporal_diff: Add each frame's difference to the next as ``in_chans`` extra channels (see the module
            docstring); the map then has twice the channels.
        motion: Add the two motion-energy channels per colour channel (:func:`motion_energy`) after those.
    """

    name = "video"

    def __init__(self, num_frames: int = 16, in_chans: int = 3, layout: str = "reference",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 temporal_diff: bool = False, motion: bool = False) -> None:
        super().__init__()
        if layout not in VIDEO_LAYOUTS:
            raise ValueError(f"video layout {layout!r} is not accepted; choose one of {', '.join(VIDEO_LAYOUTS)}")
        if num_frames < 1 or in_chans < 1:
            raise ValueError(f"num_frames and in_chans must be >= 1, got {num_frames}, {in_chans}")
        if layout == "reference" and math.isqrt(num_frames) ** 2 != num_frames:
            raise ValueError(f"layout 'reference' needs a square num_frames (4, 9, 16, …), got {num_frames}")
        mean = list(mean) if mean is not None else list(IMAGENET_MEAN if in_chans == 3 else [0.5] * in_chans)
        std = list(std) if std is not None else list(IMAGENET_STD if in_chans == 3 else [0.5] * in_chans)
        if len(mean) != in_chans or len(std) != in_chans or min(std) <= 0:
            raise ValueError(f"mean/std need {in_chans} entries (std > 0), got mean={mean}, std={std}")
        self.num_frames, self.in_chans, self.layout = num_frames, in_chans, layout
        if not isinstance(temporal_diff, bool):
            raise ValueError(f"temporal_diff must be true or false, got {temporal_diff!r}")
        if not isinstance(motion, bool):
            raise ValueError(f"motion must be true or false, got {motion!r}")
        self.temporal_diff, self.motion = temporal_diff, motion
        per_frame = in_chans * (1 + int(temporal_diff) + 2 * int(motion))
        self.out_chans = num_frames * per_frame if layout == "channels" else per_frame
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, -1, 1, 1), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"num_frames": self.num_frames, "in_chans": self.in_chans, "layout": self.layout,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist(),
                "temporal_diff": self.temporal_diff, "motion": self.motion}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.num_frames or x.shape[2] != self.in_chans:
            raise ValueError(f"video adapter expects (B, {self.num_frames}, {self.in_chans}, H, W) clips, "
                             f"got {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif not x.is_floating_point():
            raise ValueError(f"video adapter expects float in [0, 1] or uint8 clips, got dtype {x.dtype}")
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        parts = [with_temporal_diff(x) if self.temporal_diff else x]
        if self.motion:
            parts.append(motion_energy(x))
        return video_to_map(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0], self.layout)
