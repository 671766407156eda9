"""FCOS: a one-stage, anchor-free detector on a feature pyramid over any registered 2-D backbone.

Why FCOS (Tian et al., 2019, with its later refinements: centre sampling, GIoU, centre-ness on the regression branch)
rather than RetinaNet or a two-stage detector:

* **no anchors**: a location predicts its distances to the four sides of the box it falls in, so there are no anchor
  sizes and ratios to tune per data set (a small data set of unusual object sizes is the common case here) and no
  anchor/box IoU matching to get wrong;
* **simple target assignment**: a location is positive for a box when it lies near the box's centre and the box's
  size is in the location's pyramid level's range; ties go to the smallest box. It is a few tensor comparisons,
  vectorised over the batch, with no sampling and no second stage;
* **centre-ness** down-weights the low-quality boxes predicted far from an object's centre, so plain NMS suffices;
* one network output per location, so the whole pre-NMS output is **one tensor** that export, deploy fusion and the
  engine treat like a classifier's logits.

The network's output is ``(B, N, C + 8)`` over the ``N`` locations of all levels (finest first): ``C`` class logits,
the ``l, t, r, b`` distances in input pixels (non-negative), a centre-ness logit, and the location's ``x, y`` and
stride (constants of the input size, included so the loss and the post-processing need nothing but the output).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...layers.norm import LayerNorm2d
from ...ops.boxes import batched_nms, generalized_iou
from .._registry import create_model

__all__ = ["FPN", "FCOSHead", "FCOSDetector", "fcos_targets", "fcos_loss", "fcos_postprocess", "sigmoid_focal_loss",
           "split_output", "load_detection_backbone", "DETECTION_MIN_STRIDE"]

#: The finest pyramid level (stride 8, FCOS's P3): stride-4 maps cost a lot and add little for the object sizes here.
DETECTION_MIN_STRIDE = 8


def _groups(channels: int) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` up to 32 that leaves at least 4 channels per group."""
    for g in range(min(32, channels // 4), 0, -1):
        if channels % g == 0:
            return g
    return 1


class FPN(nn.Module):
    """Feature pyramid (Lin et al., 2017): 1×1 laterals, a top-down path with nearest upsampling, 3×3 smoothing, and
    ``extra_levels`` stride-2 3×3 convolutions on the coarsest output (FCOS's P6, P7)."""

    def __init__(self, in_channels: Sequence[int], channels: int, extra_levels: int = 2) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.extra = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(extra_levels))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        x = outs[-1]
        for j, conv in enumerate(self.extra):
            x = conv(x if j == 0 else F.relu(x))
            outs.append(x)
        return outs


def _tower(channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(_groups(channels), channels), nn.ReLU()]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """The head shared by all levels: a classification tower and a regression tower (3×3 conv + GroupNorm + ReLU),
    class logits, ``l, t, r, b`` distances, and centre-ness on the regression tower; one learned scale per level.

    Distances are ``softplus(scale · x) · stride``: positive, smooth (a ReLU would stop the gradient of a distance
    predicted at 0) and without the overflow of ``exp`` early in training.
    """

    def __init__(self, channels: int, num_classes: int, num_convs: int, num_levels: int,
                 prior_prob: float = 0.01) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_tower = _tower(channels, num_convs)
        self.reg_tower = _tower(channels, num_convs)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        # the focal loss starts from "everything is background with probability 1 - prior_prob" (stable early steps)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor], strides: Sequence[int]) -> torch.Tensor:
        outs = []
        for level, (f, stride) in enumerate(zip(feats, strides)):
            c, r = self.cls_tower(f), self.reg_tower(f)
            ltrb = F.softplus(self.bbox_pred(r) * self.scales[level]) * stride
            per_pixel = torch.cat([self.cls_logits(c), ltrb, self.centerness(r)], 1)  # (B, C + 5, h, w)
            b, k, h, w = per_pixel.shape
            ys = (torch.arange(h, device=f.device, dtype=per_pixel.dtype) + 0.5) * stride
            xs = (torch.arange(w, device=f.device, dtype=per_pixel.dtype) + 0.5) * stride
            grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w),
                                torch.full((h, w), float(stride), device=f.device, dtype=per_pixel.dtype)], -1)
            outs.append(torch.cat([per_pixel.flatten(2).transpose(1, 2), grid.reshape(1, h * w, 3).expand(b, -1, -1)],
                                  -1))
        return torch.cat(outs, 1)


class FCOSDetector(nn.Module):
    """Backbone stages of stride >= 8 → per-stage LayerNorm → FPN (+ ``extra_levels``) → :class:`FCOSHead`.

    Args:
        backbone: A registered 2-D model name (any family with ``features_only``).
        num_classes: Object classes (no background class: the focal loss is per class).
        in_chans: Input channels.
        fpn_channels: Width of the pyramid and the head; default from the backbone: half its widest stage, within
            [64, 256] (256 and 4 tower convolutions are FCOS's setting for ResNet-50-sized backbones; small backbones on
            small data train faster and as well with 64 and 2).
        head_convs: Convolutions per tower (default 4 for 256 channels, else 2).
        extra_levels: Stride-2 levels on top of the backbone's coarsest one.
        **backbone_args: The backbone's own arguments (``depths``, ``dims``, ``drop_path_rate``, ...).

    The per-stage norms mirror the reference's detection backbones (``norm0``..``norm3`` after each stage's output),
    so their COCO checkpoints' ``backbone.*`` keys load with :func:`load_detection_backbone`.
    """

    def __init__(self, backbone: str, *, num_classes: int, in_chans: int = 3, fpn_channels: int | None = None,
                 head_convs: int | None = None, extra_levels: int = 2, **backbone_args: Any) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 for detection, got {num_classes}")
        probe = create_model(backbone, features_only=True, in_chans=in_chans, **backbone_args)
        reductions = probe.feature_info.reduction()
        self.stage_indices = [i for i, r in enumerate(reductions) if r >= DETECTION_MIN_STRIDE]
        if not self.stage_indices:
            raise ValueError(f"{backbone} has no stage of stride >= {DETECTION_MIN_STRIDE} (strides {reductions})")
        del probe
        self.features = create_model(backbone, features_only=True, out_indices=self.stage_indices, in_chans=in_chans,
                                     **backbone_args)
        widths = self.features.feature_info.channels()
        if fpn_channels is None:
            fpn_channels = int(min(256, max(64, 32 * round(max(widths) / 2 / 32))))
        if head_convs is None:
            head_convs = 4 if fpn_channels >= 256 else 2
        strides = self.features.feature_info.reduction()
        self.strides = list(strides) + [strides[-1] * 2 ** (k + 1) for k in range(extra_levels)]
        self.num_classes = num_classes
        self.norms = nn.ModuleList(LayerNorm2d(c) for c in widths)
        self.fpn = FPN(widths, fpn_channels, extra_levels)
        self.head = FCOSHead(fpn_channels, num_classes, head_convs, len(self.strides))
        self.head_args = {"fpn_channels": fpn_channels, "head_convs": head_convs, "extra_levels": extra_levels}

    @property
    def body(self) -> nn.Module:
        """The backbone model inside the feature extractor (its keys are the reference's ``backbone.*``)."""
        return self.features.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [norm(f) for norm, f in zip(self.norms, self.features(x))]
        return self.head(self.fpn(feats), self.strides)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.body.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        inner = self.body.no_weight_decay() if hasattr(self.body, "no_weight_decay") else set()
        return {f"features.model.{n}" for n in inner} | {"head.scales"}

    def post_step(self) -> None:
        step = getattr(self.body, "post_step", None)
        if callable(step):
            step()


# ------------------------------------------------------------------------------------------------ output layout
def split_output(output: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """The parts of a ``(B, N, C + 8)`` output: ``logits`` (B, N, C), ``ltrb`` (B, N, 4), ``centerness`` (B, N),
    ``points`` (N, 2) and ``strides`` (N,)."""
    c = num_classes
    if output.dim() != 3 or output.shape[-1] != c + 8:
        raise ValueError(f"FCOS output must be (B, N, {c + 8}) for {c} classes, got {tuple(output.shape)}")
    return {"logits": output[..., :c], "ltrb": output[..., c : c + 4], "centerness": output[..., c + 4],
            "points": output[0, :, c + 5 : c + 7], "strides": output[0, :, c + 7]}


def _ltrb_to_boxes(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)


# ------------------------------------------------------------------------------------------------ targets
def fcos_targets(points: torch.Tensor, strides: torch.Tensor, targets: torch.Tensor, *,
                 center_radius: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS target assignment for a batch.

    A location is a candidate for a box when (1) it lies within ``center_radius`` strides of the box's centre and
    inside the box (centre sampling), and (2) the largest of its four distances to the box's sides is in its level's
    range: ``[4·s, 8·s]`` for stride ``s`` (FCOS's 64/128/256/512 limits for strides 8..128), open below on the
    finest level and above on the coarsest. A location with several candidates takes the box of smallest area.

    Args:
        points: (N, 2) location centres ``x, y``.
        strides: (N,) each location's stride.
        targets: (B, M, 5) boxes ``x1, y1, x2, y2, class``; rows with class < 0 are padding.

    Returns:
        ``(box_index, positive)``: (B, N) index into M of each location's box (0 where negative), and the (B, N)
        positive mask.
    """
    boxes, cls = targets[..., :4], targets[..., 4]
    px, py = points[:, 0][None, :, None], points[:, 1][None, :, None]  # (1, N, 1)
    x1, y1, x2, y2 = (boxes[..., k][:, None, :] for k in range(4))  # (B, 1, M)
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)  # (B, N, M, 4)
    s = strides[None, :, None]
    radius = s * center_radius
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    in_center = ((px > torch.maximum(x1, cx - radius)) & (px < torch.minimum(x2, cx + radius))
                 & (py > torch.maximum(y1, cy - radius)) & (py < torch.minimum(y2, cy + radius)))
    reach = ltrb.amax(-1)
    lo = torch.where(s > strides.min(), 4 * s, torch.zeros_like(s))
    hi = torch.where(s < strides.max(), 8 * s, torch.full_like(s, math.inf))
    candidate = in_center & (reach >= lo) & (reach <= hi) & (cls[:, None, :] >= 0)
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, math.inf))
    if area.shape[-1] == 0:
        shape = area.shape[:2]
        return torch.zeros(shape, dtype=torch.long, device=targets.device), torch.zeros(shape, dtype=torch.bool,
                                                                                       device=targets.device)
    best_area, index = area.min(-1)
    return index, torch.isfinite(best_area)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Summed focal loss (Lin et al., 2017) of independent per-class sigmoids: easy negatives (most locations)
    weigh ``(p)^γ`` of their cross-entropy, so the rare positives are not drowned out."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    weight = (alpha * targets + (1 - alpha) * (1 - targets)) * (1 - p_t).pow(gamma)
    return (weight * ce).sum()


def fcos_loss(output: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """The FCOS losses of a batch, each normalised by the number of positive locations (at least 1).

    ``cls``: focal loss over all locations and classes; ``box``: ``1 − GIoU`` of the positives, weighted by their
    centre-ness targets (normalised by their sum); ``centerness``: BCE of the positives' centre-ness. ``loss`` is the
    sum.
    """
    parts = split_output(output.float(), num_classes)
    targets = targets.float()
    index, positive = fcos_targets(parts["points"], parts["strides"], targets)
    num_pos = positive.sum().clamp_min(1).float()
    matched = torch.gather(targets, 1, index[..., None].expand(-1, -1, 5))  # (B, N, 5)
    onehot = torch.zeros_like(parts["logits"])
    labels = matched[..., 4].long().clamp_min(0)
    onehot.scatter_(-1, labels[..., None], positive[..., None].float())
    cls_loss = sigmoid_focal_loss(parts["logits"], onehot) / num_pos
    if not positive.any():
        zero = (parts["ltrb"].sum() + parts["centerness"].sum()) * 0.0  # keeps every output in the graph
        return {"loss": cls_loss + zero, "cls": cls_loss, "box": zero, "centerness": zero}
    pts = parts["points"][None].expand(positive.shape[0], -1, -1)[positive]
    gt = matched[..., :4][positive]
    pred = _ltrb_to_boxes(pts, parts["ltrb"][positive])
    gt_ltrb = torch.cat([pts - gt[:, :2], gt[:, 2:] - pts], -1).clamp_min(0)
    lr, tb = gt_ltrb[:, [0, 2]], gt_ltrb[:, [1, 3]]
    ctr_target = torch.sqrt((lr.amin(-1) / lr.amax(-1).clamp_min(1e-6)) * (tb.amin(-1) / tb.amax(-1).clamp_min(1e-6)))
    box_loss = ((1 - generalized_iou(pred, gt)) * ctr_target).sum() / ctr_target.sum().clamp_min(1e-6)
    ctr_loss = F.binary_cross_entropy_with_logits(parts["centerness"][positive], ctr_target, reduction="sum") / num_pos
    return {"loss": cls_loss + box_loss + ctr_loss, "cls": cls_loss, "box": box_loss, "centerness": ctr_loss}


# ------------------------------------------------------------------------------------------------ post-processing
@torch.no_grad()
def fcos_postprocess(output: torch.Tensor, num_classes: int, *, score_threshold: float = 0.05,
                     pre_nms_top_k: int = 1000, iou_threshold: float = 0.6, max_detections: int = 100,
                     image_size: tuple[int, int] | None = None) -> list[dict[str, torch.Tensor]]:
    """Detections per image: ``boxes`` (K, 4) ``x1, y1, x2, y2``, ``scores`` (K,), ``labels`` (K,), best first.

    A (location, class) pair scores ``sqrt(sigmoid(class logit) · sigmoid(centre-ness))``; pairs above
    ``score_threshold`` are kept, at most ``pre_nms_top_k`` per image, then class-wise NMS at ``iou_threshold`` and the
    best ``max_detections``. Boxes are clipped to ``image_size`` (height, width) when given, else at 0.
    """
    parts = split_output(output.float(), num_classes)
    boxes_all = _ltrb_to_boxes(parts["points"][None], parts["ltrb"])
    scores_all = torch.sqrt(torch.sigmoid(parts["logits"]) * torch.sigmoid(parts["centerness"])[..., None])
    results = []
    for b in range(output.shape[0]):
        flat = scores_all[b].flatten()
        keep = (flat > score_threshold).nonzero().squeeze(1)
        if keep.numel() > pre_nms_top_k:
            keep = keep[flat[keep].topk(pre_nms_top_k).indices]
        scores, loc, labels = flat[keep], keep // num_classes, keep % num_classes
        boxes = boxes_all[b, loc].clamp_min(0)
        if image_size is not None:
            boxes = torch.minimum(boxes, boxes.new_tensor([image_size[1], image_size[0]] * 2))
        kept = batched_nms(boxes, scores, labels, iou_threshold, max_keep=max_detections)
        results.append({"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]})
    return results


# ------------------------------------------------------------------------------------------------ COCO checkpoints
_DETECTOR_PARTS = ("neck.", "bbox_head.", "rpn_head.", "roi_head.", "mask_head.")


def load_detection_backbone(detector: FCOSDetector, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Loads a detection checkpoint's ``backbone.*`` weights (MMDetection layout, e.g. the reference's Cascade Mask
    R-CNN COCO checkpoints) into ``detector``'s backbone and per-stage norms; strict on the backbone.

    ``backbone.norm{i}.*`` (the norm after stage ``i``) goes to the detector's norm of that stage; the other
    ``backbone.*`` keys to the backbone model. The checkpoint's neck and heads belong to another detector and are
    left out, as are norms of stages FCOS does not use (stride 4).

    Returns:
        The checkpoint keys that were left out.

    Raises:
        CheckpointMismatchError: a backbone key is missing, unexpected or of another shape (named).
    """
    from .._checkpoint import CheckpointMismatchError

    stage_to_norm = {i: k for k, i in enumerate(detector.stage_indices)}
    mapped: dict[str, torch.Tensor] = {}
    skipped = []
    for key, value in state_dict.items():
        if not key.startswith("backbone."):
            skipped.append(key)
            continue
        rest = key[len("backbone."):]
        head, _, tail = rest.partition(".")
        if head.startswith("norm") and head[4:].isdigit():
            stage = int(head[4:])
            if stage not in stage_to_norm:
                skipped.append(key)
                continue
            mapped[f"norms.{stage_to_norm[stage]}.{tail}"] = value
        else:
            mapped[f"features.model.{rest}"] = value
    own = {k: v for k, v in detector.state_dict().items() if k.startswith(("features.", "norms."))}
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or shapes:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = [f"missing {show(missing)}" if missing else "", f"unexpected {show(unexpected)}" if unexpected else "",
                 f"other shapes {show(shapes)}" if shapes else ""]
        raise CheckpointMismatchError("the checkpoint's backbone does not fit this detector's backbone (keys as the "
                                      "detector names them): " + "; ".join(p for p in parts if p))
    detector.load_state_dict(mapped, strict=False)
    return skipped
