"""Axis-aligned boxes as ``(x1, y1, x2, y2)`` in pixels: areas, IoU, generalized IoU and non-maximum suppression.

Plain functions on tensors (no torchvision): the detection head, its loss, its post-processing and the tests call
them. Boxes with ``x2 <= x1`` or ``y2 <= y1`` have zero area; every division is guarded so such boxes give IoU 0
rather than NaN.
"""

from __future__ import annotations

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


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold``. The IoU matrix is
    computed once; the greedy pass then walks it row by row (exact, unlike the single-matrix "fast NMS" variants
    that also let suppressed boxes suppress others).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    overlap = box_iou(boxes[order], boxes[order]) > iou_threshold
    n = order.numel()
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    later = torch.ones(n, n, dtype=torch.bool, device=boxes.device).triu(1)  # only lower-scoring boxes are suppressed
    suppress = (overlap & later).cpu()
    alive = keep.cpu()
    for i in range(n):
        if alive[i]:
            alive &= ~suppress[i]
    return order[alive.to(boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """:func:`nms` within each class: boxes of different classes never suppress each other.

    Each class's boxes are shifted by its own offset (larger than every coordinate), so one greedy pass over all
    boxes never sees an overlap between classes.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    shifted = boxes - boxes.min() + classes.to(boxes.dtype)[:, None] * span
    return nms(shifted, scores, iou_threshold)
