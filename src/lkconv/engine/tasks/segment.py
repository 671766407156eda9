"""Semantic segmentation: a class per pixel, UPerNet on the backbone's stages, cross-entropy, mIoU.

- network: :func:`lkconv.models.segmentation.segmentation_model` (backbone + UPerNet + auxiliary FCN head);
- loss: cross-entropy over pixels (255 = ignore) + 0.4 × the auxiliary head's (the reference's weights);
- metrics: ``miou`` (mean over classes present in the labels or the predictions), ``pixel_accuracy``, ``loss`` and
  ``iou_<index>`` per class, from summed intersections and areas; the best epoch has the highest ``val_miou``;
- predict: logits at the training scale (sliding ``img_size`` windows when the image is much larger), resized to
  the file's own size; writes ``<stem>_mask.png`` (class indices) and ``<stem>_overlay.png`` per file.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data.augment.segment import IGNORE_INDEX
from .base import Task, register_task

__all__ = ["SegmentTask", "AUX_LOSS_WEIGHT", "palette", "sliding_window_logits"]

AUX_LOSS_WEIGHT = 0.4
#: Sliding windows are used when the longer side exceeds this many training crops.
SLIDE_ABOVE = 1.5


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 colours, class 0 black, the others spread over hue (deterministic)."""
    out = np.zeros((max(n, 1), 3), dtype=np.uint8)
    for i in range(1, n):
        h = (i * 0.618033988749895) % 1.0
        out[i] = [int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95)]
    return out


def sliding_window_logits(model, x: torch.Tensor, crop: int, stride: int | None = None) -> torch.Tensor:
    """Logits of a (1, C, H, W) image from overlapping ``crop``×``crop`` windows (averaged where they overlap)."""
    stride = stride or max(1, crop * 2 // 3)
    _, _, h, w = x.shape
    ph, pw = max(0, crop - h), max(0, crop - w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    H, W = x.shape[-2:]
    tops = list(range(0, H - crop + 1, stride)) or [0]
    lefts = list(range(0, W - crop + 1, stride)) or [0]
    if tops[-1] != H - crop:
        tops.append(H - crop)
    if lefts[-1] != W - crop:
        lefts.append(W - crop)
    total = count = None
    for t in tops:
        for left in lefts:
            y = model(x[:, :, t : t + crop, left : left + crop]).float()
            if total is None:
                total = torch.zeros(1, y.shape[1], H, W, device=y.device)
                count = torch.zeros(1, 1, H, W, device=y.device)
            total[:, :, t : t + crop, left : left + crop] += y
            count[:, :, t : t + crop, left : left + crop] += 1
    return (total / count)[:, :, :h, :w]


@register_task
class SegmentTask(Task):
    name = "segment"
    output_layout = ("(batch, classes, H, W) per-pixel logits at the input's size; argmax over classes gives the "
                     "class-index mask")
    best_metric = "val_miou"
    higher_is_better = True
    eval_sum_names = ("loss", "valid_pixels", "correct_pixels", "intersection[K]", "predicted[K]", "labelled[K]",
                      "count")

    def num_outputs(self, data) -> int:
        return len(data.class_names)

    def build_network(self, model_name: str, model_args: dict[str, Any]):
        from ...models.segmentation import segmentation_model

        return segmentation_model(model_name, **model_args)

    def loss(self, output, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        main, aux = output if isinstance(output, (tuple, list)) else (output, None)
        loss = F.cross_entropy(main.float(), target, ignore_index=IGNORE_INDEX)
        if aux is not None:
            loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(aux.float(), target, ignore_index=IGNORE_INDEX)
        return loss

    def eval_sums(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        k = output.shape[1]
        valid = target != IGNORE_INDEX
        loss = F.cross_entropy(output.float(), target, ignore_index=IGNORE_INDEX, reduction="sum").item()
        pred = output.argmax(1)[valid]
        gt = target[valid]
        inter = torch.bincount(gt[pred == gt], minlength=k)[:k]
        pred_area = torch.bincount(pred, minlength=k)[:k]
        gt_area = torch.bincount(gt.clamp_max(k - 1), minlength=k)[:k]
        return [loss, float(valid.sum()), float(inter.sum()), *inter.tolist(), *pred_area.tolist(),
                *gt_area.tolist(), float(target.shape[0])]

    def eval_metrics(self, sums: list[float]) -> dict[str, float]:
        loss, valid, correct = sums[:3]
        k = (len(sums) - 4) // 3
        inter, pred, gt = (np.asarray(sums[3 + i * k : 3 + (i + 1) * k], dtype=np.float64) for i in range(3))
        union = pred + gt - inter
        present = union > 0
        iou = np.where(present, inter / np.maximum(union, 1), np.nan)
        out = {"loss": loss / max(valid, 1), "miou": float(np.nanmean(iou)) if present.any() else 0.0,
               "pixel_accuracy": correct / max(valid, 1)}
        out.update({f"iou_{i}": float(v) for i, v in enumerate(iou) if present[i]})
        return out

    def predict_output(self, model, x: torch.Tensor, run_config: dict[str, Any], source: Path) -> torch.Tensor:
        """Logits (K, H, W) at the size of the file ``source`` (``x`` is it at the training scale)."""
        from PIL import Image

        crop = int(run_config.get("preprocessing", {}).get("img_size") or min(x.shape[-2:]))
        if max(x.shape[-2:]) > SLIDE_ABOVE * crop:
            logits = sliding_window_logits(model, x, crop)
        else:
            logits = model(x).float()
        with Image.open(source) as im:
            size = (im.size[1], im.size[0])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0]

    def decode(self, output: torch.Tensor, run_config: dict[str, Any], *, top_k: int = 1) -> dict[str, Any]:
        mask = output.argmax(0).to(torch.uint8)
        names = run_config["class_names"]
        counts = torch.bincount(mask.flatten().long(), minlength=len(names)).tolist()
        total = max(1, mask.numel())
        share = sorted(((names[i], c / total) for i, c in enumerate(counts) if c), key=lambda t: -t[1])
        return {"mask": mask, "classes": share[: max(top_k, 3)]}

    def write_outputs(self, row: dict[str, Any], source: Path, out_dir: Path, run_config: dict[str, Any]) -> None:
        """``<stem>_mask.png`` (pixel = class index) and ``<stem>_overlay.png`` (the image, half covered by class
        colours); their paths replace the mask in ``row``."""
        from PIL import Image

        out_dir.mkdir(parents=True, exist_ok=True)
        mask = row.pop("mask").cpu().numpy()
        mask_path, overlay_path = out_dir / f"{source.stem}_mask.png", out_dir / f"{source.stem}_overlay.png"
        Image.fromarray(mask, mode="L").save(mask_path)
        with Image.open(source) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
        colours = palette(len(run_config["class_names"]))[mask].astype(np.float32)
        Image.fromarray((0.5 * rgb + 0.5 * colours).round().astype(np.uint8)).save(overlay_path)
        row["mask"], row["overlay"] = str(mask_path), str(overlay_path)

    def format_prediction(self, row: dict[str, Any]) -> list[str]:
        classes = "  ".join(f"{c} {p:.1%}" for c, p in row["classes"])
        return [f"{row['file']}\tmask {row['mask']}\toverlay {row['overlay']}\t{classes}"]
