"""Detection data (``--task detect``): ``DATA/{train,val}/images/*`` and ``DATA/{train,val}/annotations.json``.

``annotations.json`` is COCO's format: ``categories`` (``id``, ``name``), ``images`` (``id``, ``file_name`` under
``images/``, optional ``width``/``height``) and ``annotations`` (``image_id``, ``category_id``, ``bbox`` =
``[x, y, w, h]`` in pixels; ``iscrowd: 1`` regions are left out). Without ``val/``, a seeded ``val_split`` of the
training images is held out. Classes are the categories in id order; the ids are kept so ``predict`` writes them.

A bad entry — a missing or unreadable image, an annotation of an unknown image or category, a box that is empty or
reaches more than 1 px outside its image, declared sizes that differ from the file — raises a :class:`DataError`
naming it, or with ``on_bad_file: skip`` drops that image (and its annotations) and counts it in the data summary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.augment.detection import hflip_boxes, letterbox, photometric, pad_targets, random_scale_crop
from ...data.datasets import DataBundle, DataError, SampleDataset
from ...data.readers.image import read_image
from ...models.input_size import check_input_side

__all__ = ["build_detect_data", "load_detect_for_predict", "read_coco_split", "DetectionSample",
           "detection_bundle", "image_size_of", "draw_detections"]

log = logging.getLogger("lkconv.data")

#: A box may reach this many pixels past its image's border (rounding in other tools' exports); it is clipped.
BOX_TOLERANCE = 1.0


class DetectionSample:
    """One image's annotations: ``boxes`` (K, 4) ``x1, y1, x2, y2`` and ``labels`` (K,) class indices."""

    def __init__(self, source: Any, boxes: np.ndarray, labels: np.ndarray) -> None:
        self.source, self.boxes, self.labels = source, boxes.astype(np.float32).reshape(-1, 4), labels.astype(np.int64)


def image_size_of(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def _bad(message: str, on_bad_file: str, skipped: list[tuple[str, str]], name: str) -> None:
    if on_bad_file == "error":
        raise DataError(f"{message} (on_bad_file: skip drops such images with a counted warning)")
    skipped.append((name, message))


def read_coco_split(split_dir: Path, on_bad_file: str, categories: list[dict] | None = None
                    ) -> tuple[list[DetectionSample], list[dict], list[tuple[str, str]], int]:
    """The images of one split with their boxes, the categories (id order), the skipped (name, reason) and how many
    crowd regions were left out."""
    ann_path = split_dir / "annotations.json"
    if not ann_path.is_file():
        raise DataError(f"{ann_path} not found; a detection folder holds {split_dir}/images/* and "
                        f"{split_dir}/annotations.json (COCO format)")
    try:
        coco = json.loads(ann_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{ann_path} is not valid JSON: {e}") from e
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(coco.get(k), list)]
    if missing:
        raise DataError(f"{ann_path} lacks the COCO list(s) {missing}; accepted: a JSON object with 'images', "
                        "'annotations' and 'categories' lists")
    cats = sorted(({"id": int(c["id"]), "name": str(c.get("name", c["id"]))} for c in coco["categories"]),
                  key=lambda c: c["id"])
    if not cats:
        raise DataError(f"{ann_path} has no categories")
    if categories is not None and [c["id"] for c in cats] != [c["id"] for c in categories]:
        raise DataError(f"{ann_path} has category ids {[c['id'] for c in cats]}, the training split has "
                        f"{[c['id'] for c in categories]}")
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    skipped: list[tuple[str, str]] = []
    images: dict[Any, dict] = {}
    bad_images: set = set()
    for im in coco["images"]:
        name = str(im.get("file_name", ""))
        path = split_dir / "images" / name
        if not name or not path.is_file():
            _bad(f"{ann_path}: image id {im.get('id')!r}: file {path} not found", on_bad_file, skipped, str(path))
            bad_images.add(im.get("id"))
            continue
        try:
            width, height = image_size_of(path)
        except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
            _bad(f"cannot read {path}: {type(e).__name__}: {e}", on_bad_file, skipped, str(path))
            bad_images.add(im.get("id"))
            continue
        declared = (im.get("width"), im.get("height"))
        if declared != (None, None) and declared != (width, height):
            _bad(f"{ann_path}: image {name} is declared {declared[0]}x{declared[1]}, the file is {width}x{height}",
                 on_bad_file, skipped, str(path))
            bad_images.add(im.get("id"))
            continue
        images[im.get("id")] = {"path": path, "w": width, "h": height, "boxes": [], "labels": []}
    crowd = 0
    for ann in coco["annotations"]:
        image_id = ann.get("image_id")
        if image_id in bad_images:
            continue
        where = f"{ann_path}: annotation {ann.get('id', '?')} (image id {image_id!r})"
        if image_id not in images:
            _bad(f"{where}: no image with that id", on_bad_file, skipped, where)
            continue
        entry = images[image_id]
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        problem = None
        bbox = ann.get("bbox")
        if ann.get("category_id") not in cat_index:
            problem = f"unknown category_id {ann.get('category_id')!r}; known: {sorted(cat_index)}"
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            problem = f"bbox {bbox!r} is not [x, y, w, h] (4 numbers)"
        elif bbox[2] <= 0 or bbox[3] <= 0:
            problem = f"bbox {bbox} has a width or height <= 0"
        else:
            x, y, w, h = (float(v) for v in bbox)
            t = BOX_TOLERANCE
            if x < -t or y < -t or x + w > entry["w"] + t or y + h > entry["h"] + t:
                problem = f"bbox {bbox} reaches outside the {entry['w']}x{entry['h']} image"
        if problem is not None:
            _bad(f"{where}: {problem}", on_bad_file, skipped, str(entry["path"]))
            images.pop(image_id)
            bad_images.add(image_id)
            continue
        entry["boxes"].append([max(x, 0.0), max(y, 0.0), min(x + w, entry["w"]), min(y + h, entry["h"])])
        entry["labels"].append(cat_index[ann["category_id"]])
    samples = [DetectionSample(e["path"], np.array(e["boxes"], np.float32), np.array(e["labels"], np.int64))
               for e in images.values()]
    if skipped:
        log.warning("skipped %d bad image(s)/annotation(s) under %s (first: %s: %s)", len(skipped), split_dir,
                    *skipped[0])
    if not samples:
        raise DataError(f"no usable images in {split_dir}")
    return samples, cats, skipped, crowd


class DetectionDataset(SampleDataset):
    """``(image (C, size, size), targets (max_boxes, 5))`` per sample; per-sample randomness from (seed, epoch, i)
    as in every lkconv dataset, so resumed runs see the same augmentation."""

    def __init__(self, samples: list[DetectionSample], indices: list[int], read, size: int, train: bool, seed: int,
                 max_boxes: int) -> None:
        self.samples, self.size, self.train, self.max_boxes = samples, size, train, max_boxes
        super().__init__(lambda i: (read(samples[i]), samples[i]), [0] * len(samples), indices, self._transform,
                         seed, lambda i: str(samples[i].source))

    def _transform(self, pair, rng: np.random.Generator):
        img, sample = pair
        boxes, labels = sample.boxes.copy(), sample.labels.copy()
        if self.train:
            img, boxes, labels = random_scale_crop(img, boxes, labels, self.size, rng)
            if rng.random() < 0.5:
                img, boxes = hflip_boxes(img, boxes)
            img = photometric(img, rng)
        else:
            img, boxes, _ = letterbox(img, boxes, self.size)
        return img.contiguous(), pad_targets(boxes, labels, self.max_boxes)

    def targets(self) -> list[Any]:
        return [self.samples[i].labels for i in self.indices]

    def __getitem__(self, k: int):
        _, (x, target) = self._read(k)
        return x, target


def _default_size(samples: list[DetectionSample], cfg) -> int:
    if cfg.img_size is not None:
        return check_input_side(cfg.img_size)
    w, h = image_size_of(samples[0].source)
    return int(min(512, max(64, 32 * int(np.ceil(max(w, h) / 32)))))


def detection_bundle(train: list[DetectionSample], val: list[DetectionSample], tr_idx: list[int], va_idx: list[int],
                     categories: list[dict], cfg, read, size: int, channels: int,
                     notes: dict[str, Any] | None = None) -> DataBundle:
    """The bundle for train/val sample lists (files or generated images alike)."""
    max_boxes = max(1, max(len(s.boxes) for s in train + val))
    train_ds = DetectionDataset(train, tr_idx, read, size, True, cfg.seed, max_boxes) if tr_idx else None
    val_ds = DetectionDataset(val, va_idx, read, size, False, cfg.seed, max_boxes)
    n_boxes = sum(len(train[i].boxes) for i in tr_idx)
    return DataBundle(train_ds, val_ds, [c["name"] for c in categories], "image", {"in_chans": channels},
                      (channels, size, size), task="detect",
                      notes={"train_samples": len(tr_idx), "val_samples": len(va_idx), "train_boxes": n_boxes,
                             "max_boxes_per_image": max_boxes, **(notes or {})},
                      preprocessing={"img_size": size, "channels": channels, "resize": "letterbox",
                                     "category_ids": [c["id"] for c in categories]})


def _limit(indices: list[int], max_n: int | None, seed: int) -> list[int]:
    if max_n is None or max_n >= len(indices):
        return indices
    return sorted(np.random.default_rng(seed).permutation(indices)[:max_n].tolist())


def build_detect_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The detection folder contract (module docstring); ``eval_only``: only ``val/`` (or ``train/`` without one)."""
    root = Path(cfg.data)
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() and not val_dir.is_dir():
        raise DataError(f"{root} has neither train/ nor val/; a detection folder holds {{train,val}}/images/* and "
                        "{train,val}/annotations.json (COCO format)")
    channels = int(cfg.modality_args.get("channels", 3))
    if channels not in (1, 3):
        raise DataError(f"modality_args.channels: {channels!r} is not accepted; choose 1 or 3")
    skipped: list[tuple[str, str]] = []
    crowd = 0
    if eval_only:
        val, cats, skipped, crowd = read_coco_split(val_dir if val_dir.is_dir() else train_dir, cfg.on_bad_file)
        train, tr_idx, va_idx = val, [], list(range(len(val)))
        if class_names is not None and [c["name"] for c in cats] != list(class_names):
            raise DataError(f"{root} has categories {[c['name'] for c in cats]}, the run was trained on {class_names}")
    else:
        train, cats, skipped, crowd = read_coco_split(train_dir, cfg.on_bad_file)
        if val_dir.is_dir():
            val, _, more, more_crowd = read_coco_split(val_dir, cfg.on_bad_file, cats)
            skipped, crowd = skipped + more, crowd + more_crowd
            tr_idx, va_idx = list(range(len(train))), list(range(len(val)))
        else:
            order = np.random.default_rng(cfg.seed).permutation(len(train)).tolist()
            n_val = min(max(1, int(round(len(train) * cfg.val_split))), len(train) - 1)
            val, va_idx, tr_idx = train, sorted(order[:n_val]), sorted(order[n_val:])
        tr_idx = _limit(tr_idx, cfg.max_train_samples, cfg.seed)
    va_idx = _limit(va_idx, cfg.max_val_samples, cfg.seed + 1)
    size = _default_size(train or val, cfg)

    def read(sample: DetectionSample) -> torch.Tensor:
        return read_image(sample.source, channels)

    notes = {"skipped_files": len(skipped), "crowd_regions_left_out": crowd} if (skipped or crowd) else {}
    return detection_bundle(train, val, tr_idx, va_idx, cats, cfg, read, size, channels, notes)


def load_detect_for_predict(path: str | Path, preprocessing: dict) -> torch.Tensor:
    """A file as the detector's input: letterboxed to ``img_size`` (boxes map back by the longer side's scale)."""
    img = read_image(path, preprocessing["channels"])
    return letterbox(img, np.zeros((0, 4), np.float32), int(preprocessing["img_size"]))[0]


_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def draw_detections(path: str | Path, detections: list[dict], out: str | Path) -> Path:
    """The image of ``path`` with each detection's box and ``label score`` drawn, as PNG at ``out``."""
    from PIL import Image, ImageDraw

    with Image.open(path) as im:
        canvas = im.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 256))
    for d in detections:
        colour = _COLOURS[d["class_index"] % len(_COLOURS)]
        x1, y1, x2, y2 = d["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        draw.text((x1 + 2, max(0, y1 - 11)), f"{d['label']} {d['score']:.2f}", fill=colour)
    out = Path(out)
    canvas.save(out)
    return out
