"""Object detection: FCOS on a feature pyramid over the run's backbone, COCO mAP, boxes drawn by ``predict``.

Targets are ``(M, 5)`` rows ``x1, y1, x2, y2, class`` in the network's input pixels, padded with rows of -1 so a batch
stacks (see :mod:`lkconv.modalities.image.detect_data`). The network's output is FCOS's pre-NMS tensor (see
:mod:`lkconv.models.heads.fcos`); NMS runs in :meth:`DetectTask.decode` and in evaluation, not in the network, so the
exported ONNX graph and the deploy-fused model stay free of data-dependent shapes.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from ...models.heads.fcos import FCOSDetector, fcos_loss, fcos_postprocess
from .base import Task, register_task

__all__ = ["DetectTask", "DetectAccumulator", "coco_map", "DRAW_SCORE"]

#: Detections at or above this score are printed and drawn by ``lkconv predict`` (the JSON keeps all of them).
DRAW_SCORE = 0.3


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise ImportError("detection metrics need pycocotools: pip install 'lkconv[detect]'") from e
    return COCO, COCOeval


def coco_map(ground_truth: list[torch.Tensor], detections: list[dict[str, torch.Tensor]],
             num_classes: int) -> dict[str, float]:
    """COCO box mAP@[.5:.95] (``map``) and mAP@0.5 (``map50``) with pycocotools.

    Args:
        ground_truth: per image, (M, 5) rows ``x1, y1, x2, y2, class`` (rows with class < 0 are padding).
        detections: per image, :func:`~lkconv.models.heads.fcos.fcos_postprocess` output.
        num_classes: number of classes (COCO category ids are ``class + 1``).

    Areas (COCO's small/medium/large) are measured in the frame the boxes are given in (the network's input); the
    two reported numbers do not depend on them.
    """
    COCO, COCOeval = _pycocotools()
    images, annotations, results = [], [], []
    for i, (gt, det) in enumerate(zip(ground_truth, detections)):
        images.append({"id": i + 1})
        for row in gt.tolist():
            if row[4] < 0:
                continue
            w, h = row[2] - row[0], row[3] - row[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(row[4]) + 1,
                                "bbox": [row[0], row[1], w, h], "area": w * h, "iscrowd": 0})
        for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
            results.append({"image_id": i + 1, "category_id": int(label) + 1, "score": float(score),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    if not annotations or not results:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and the whole table
        gt_api = COCO()
        gt_api.dataset = {"images": images, "annotations": annotations,
                          "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": max(0.0, float(evaluator.stats[0])), "map50": max(0.0, float(evaluator.stats[1]))}


class DetectAccumulator:
    """Keeps every validation image's ground truth and detections (mAP is not a sum over batches), and the loss."""

    def __init__(self) -> None:
        self.loss_sum, self.count = 0.0, 0
        self.ground_truth: list[torch.Tensor] = []
        self.detections: list[dict[str, torch.Tensor]] = []
        self.num_classes = 0

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        self.num_classes = output.shape[-1] - 8
        self.loss_sum += fcos_loss(output, target, self.num_classes)["loss"].item() * output.shape[0]
        self.count += output.shape[0]
        self.ground_truth += [t.cpu() for t in target]
        self.detections += [{k: v.cpu() for k, v in d.items()} for d in fcos_postprocess(output, self.num_classes)]

    def result(self, info) -> dict[str, float]:
        gts, dets, loss_sum, count = self.ground_truth, self.detections, self.loss_sum, self.count
        if info is not None and info.enabled:  # every process scores the whole validation set
            import torch.distributed as dist

            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, (gts, dets, loss_sum, count, self.num_classes))
            gts = [g for part in gathered for g in part[0]]
            dets = [d for part in gathered for d in part[1]]
            loss_sum, count = sum(p[2] for p in gathered), sum(p[3] for p in gathered)
            self.num_classes = max(p[4] for p in gathered)
        if count == 0:
            return {"num_samples": 0}
        return {"loss": loss_sum / count, **coco_map(gts, dets, self.num_classes), "num_samples": count}


@register_task
class DetectTask(Task):
    name = "detect"
    output_layout = ("(batch, locations, classes + 8) raw FCOS outputs per feature-pyramid location: class logits, "
                     "l, t, r, b distances (input pixels), centre-ness logit, then the location's x, y and stride; a "
                     "box is (x - l, y - t, x + r, y + b) and its score sqrt(sigmoid(class) * sigmoid(centre-ness)); "
                     "lkconv's post-processing keeps scores >= 0.05, then class-wise NMS at IoU 0.6, at most 100 boxes "
                     "(lkconv.models.heads.fcos.fcos_postprocess)")
    best_metric = "val_map"
    higher_is_better = True
    eval_sum_names = ("loss", "count")

    def num_outputs(self, data) -> int:
        return len(data.class_names)

    def build_network(self, model_name: str, model_args: dict[str, Any]) -> torch.nn.Module:
        args = dict(model_args)
        return FCOSDetector(model_name, num_classes=int(args.pop("num_classes")), **args)

    def loss(self, output: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        return fcos_loss(output, target, output.shape[-1] - 8)["loss"]

    def eval_accumulator(self) -> DetectAccumulator:
        return DetectAccumulator()

    def decode(self, output: torch.Tensor, run_config: dict[str, Any], *, top_k: int = 1) -> dict[str, Any]:
        """Detections in the network's input frame (``finish_predictions`` maps them to the file's pixels)."""
        names = run_config["class_names"]
        det = fcos_postprocess(output[None], len(names))[0]
        return {"detections": [{"label": names[int(c)], "class_index": int(c), "score": round(float(s), 5),
                                "box": [round(float(v), 2) for v in b]}
                               for b, s, c in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                  det["labels"].tolist())]}

    def finish_predictions(self, rows: list[dict[str, Any]], run_config: dict[str, Any],
                           out_dir: Any) -> list[dict[str, Any]]:
        """Maps the boxes back to each file's pixels (undoing the letterbox resize), writes ``results.json``
        (COCO results format: ``image_id`` is the file's position, ``file_name`` its path) and ``<stem>.png`` with
        the boxes of score >= :data:`DRAW_SCORE` drawn, under ``out_dir``."""
        from ...modalities.image.detect_data import draw_detections, image_size_of

        if not rows:
            return rows
        pre = run_config.get("preprocessing", {})
        size = int(pre["img_size"])
        category_ids = pre.get("category_ids") or list(range(1, len(run_config["class_names"]) + 1))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for i, row in enumerate(rows):
            width, height = image_size_of(row["file"])
            scale = max(width, height) / size
            for d in row["detections"]:
                x1, y1, x2, y2 = (v * scale for v in d["box"])
                d["box"] = [round(min(max(x1, 0), width), 2), round(min(max(y1, 0), height), 2),
                            round(min(max(x2, 0), width), 2), round(min(max(y2, 0), height), 2)]
                x1, y1, x2, y2 = d["box"]
                results.append({"image_id": i, "file_name": row["file"],
                                "category_id": int(category_ids[d["class_index"]]),
                                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)], "score": d["score"]})
            drawn = out_dir / f"{i:04d}_{Path(row['file']).stem}.png"
            draw_detections(row["file"], [d for d in row["detections"] if d["score"] >= DRAW_SCORE], drawn)
            row["drawn"] = str(drawn)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        for row in rows:
            row["results_json"] = str(out_dir / "results.json")
        return rows

    def format_prediction(self, row: dict[str, Any]) -> list[str]:
        shown = [d for d in row["detections"] if d["score"] >= DRAW_SCORE]
        lines = [f"{row['file']}\t{d['label']} {d['score']:.3f} " + " ".join(f"{v:.1f}" for v in d["box"])
                 for d in shown]
        if not shown:
            lines = [f"{row['file']}\t(no detection with score >= {DRAW_SCORE})"]
        if "drawn" in row:
            lines.append(f"{row['file']}\tdrawn: {row['drawn']}  results: {row['results_json']}")
        return lines
