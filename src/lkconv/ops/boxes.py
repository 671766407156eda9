"""Axis-aligned boxes as ``(x1, y1, x2, y2)`` in pixels: areas, IoU, generalized IoU and non-maximum suppression.

Plain functions on tensors (no torchvision): the detection head, its loss, its post-processing and the tests call
them. Boxes with ``x2 <= x1`` or ``y2 <= y1`` have zero area; every division is guarded so such boxes give IoU 0
rather than NaN.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["box_area", "box_iou", "pairwise_giou", "generalized_iou", "nms", "batched_nms"]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(..., 4)`` boxes (0 for empty ones)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp_min(1e-9)


def generalized_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Element-wise GIoU of matching boxes ``a`` and ``b`` (both (..., 4)): IoU minus the fraction of the smallest
    enclosing box that neither covers (Rezatofighi et al., 2019). In [-1, 1]; its loss ``1 - GIoU`` still has a
    gradient when the boxes do not overlap, which plain IoU lacks."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = box_area(a) + box_area(b) - inter
    iou = inter / (union + eps)
    enclose = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp_min(0).prod(-1)
    return iou - (enclose - union) / (enclose + eps)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M)."""
    return generalized_iou(a[:, None, :].expand(-1, b.shape[0], -1), b[None, :, :].expand(a.shape[0], -1, -1))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold``; ``max_keep`` stops after
    that many kept boxes (the same as cutting the full result, without the work). Each kept box is compared with the
    boxes after it (O(kept · N) IoUs, not the full N × N matrix: 1000 candidates cost ~20 ms per image with the
    matrix and its row-by-row walk, most of a detection evaluation), in numpy on the CPU, in float32 with the
    arithmetic of :func:`box_iou`, so the same pairs exceed the threshold.
    """
    if boxes.numel() == 0 or max_keep == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].detach().to("cpu", torch.float32).numpy()
    area = (np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)).astype(np.float32)
    n = len(b)
    alive = np.ones(n, dtype=bool)
    kept: list[int] = []
    i = 0
    while i < n:
        kept.append(i)
        if max_keep is not None and len(kept) >= max_keep:
            break
        rest = i + 1 + np.flatnonzero(alive[i + 1:])
        if rest.size == 0:
            break
        w = np.maximum(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), np.float32(0))
        h = np.maximum(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), np.float32(0))
        inter = w * h
        union = area[i] + area[rest] - inter
        iou = inter / np.maximum(union, np.float32(1e-9))
        alive[rest[iou > iou_threshold]] = False
        alive[i] = False
        later = rest[alive[rest]]
        if later.size == 0:
            break
        i = int(later[0])
    return order[torch.as_tensor(kept, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float,
                max_keep: int | None = None) -> torch.Tensor:
    """:func:`nms` within each class: boxes of different classes never suppress each other.

    Each class's boxes are shifted by its own offset (larger than every coordinate), so one greedy pass over all
    boxes never sees an overlap between classes.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    shifted = boxes - boxes.min() + classes.to(boxes.dtype)[:, None] * span
    return nms(shifted, scores, iou_threshold, max_keep)
