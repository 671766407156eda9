"""FCOS pieces: box ops, NMS against a brute-force reference, target assignment, losses, post-processing, and
loading a COCO detection checkpoint's ``backbone.*`` keys."""

from __future__ import annotations

import pytest
import torch

from lkconv.models._checkpoint import CheckpointMismatchError
from lkconv.models.heads.fcos import (FCOSDetector, fcos_loss, fcos_postprocess, fcos_targets,
                                      load_detection_backbone)
from lkconv.ops.boxes import batched_nms, box_iou, generalized_iou, nms

SMALL = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]}


def _brute_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _brute_nms(boxes, scores, classes, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(classes[i] != classes[j] or _brute_iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
    return kept


def _random_boxes(g, n, size=100.0):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * 40 + 2
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(g, 60)
    scores = torch.rand(60, generator=g)
    classes = torch.randint(0, 3, (60,), generator=g)
    got = batched_nms(boxes, scores, classes, 0.5).tolist()
    want = _brute_nms(boxes.tolist(), scores.tolist(), classes.tolist(), 0.5)
    assert got == want
    assert nms(boxes, scores, 0.5).tolist() == _brute_nms(boxes.tolist(), scores.tolist(), [0] * 60, 0.5)


def _matrix_nms(boxes, scores, thr):
    """The full-IoU-matrix greedy NMS (the implementation before the kept-box pass): the reference."""
    order = scores.argsort(descending=True, stable=True)
    suppress = (box_iou(boxes[order], boxes[order]) > thr) & torch.ones(len(order), len(order), dtype=torch.bool).triu(1)
    alive = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if alive[i]:
            alive &= ~suppress[i]
    return order[alive]


@pytest.mark.parametrize("seed", range(3))
def test_nms_on_many_crowded_boxes_equals_the_matrix_version_and_stops_at_max_keep(seed):
    """1000 candidates in a small field (as FCOS's pre-NMS top 1000 on a small image), with tied scores: the kept-box
    pass keeps exactly what the full-matrix walk keeps; max_keep gives its first boxes."""
    g = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(g, 1000, size=60.0)
    scores = (torch.rand(1000, generator=g) * 50).round() / 50  # ties: the stable order decides
    classes = torch.randint(0, 5, (1000,), generator=g)
    want = _matrix_nms(boxes, scores, 0.6)
    assert nms(boxes, scores, 0.6).tolist() == want.tolist() and len(want) > 20
    assert nms(boxes, scores, 0.6, max_keep=7).tolist() == want[:7].tolist()
    assert nms(boxes, scores, 0.6, max_keep=0).numel() == 0
    full = batched_nms(boxes, scores, classes, 0.6)
    assert batched_nms(boxes, scores, classes, 0.6, max_keep=100).tolist() == full[:100].tolist()


def test_iou_and_giou_values():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 0, 15, 10], [20.0, 0, 30, 10]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 3, 0.0]]))
    # disjoint boxes: IoU 0, GIoU = -(gap area)/(enclosing area) = -(10*10)/(30*10)
    assert generalized_iou(a[0], b[1]).item() == pytest.approx(-1 / 3, abs=1e-6)
    assert generalized_iou(a[0], a[0]).item() == pytest.approx(1.0, abs=1e-6)


def test_targets_pick_level_and_smallest_box():
    # one level per stride 8/16/32 on a 64 px image; a small box near location (12, 12) and a large one around it
    pts, strides = [], []
    for s in (8, 16, 32):
        n = 64 // s
        for y in range(n):
            for x in range(n):
                pts.append(((x + 0.5) * s, (y + 0.5) * s))
                strides.append(float(s))
    points, strides = torch.tensor(pts), torch.tensor(strides)
    targets = torch.tensor([[[4.0, 4, 24, 24, 0], [0, 0, 64, 64, 1], [-1, -1, -1, -1, -1]]])
    index, pos = fcos_targets(points, strides, targets)
    small = (points[:, 0] == 12) & (points[:, 1] == 12) & (strides == 8)
    assert pos[0, small].item() and index[0, small].item() == 0
    # the large box reaches at most 36 px from (36, 36): stride 8's range [0, 64], not stride 16's [64, 128]
    at = (points[:, 0] == 36) & (points[:, 1] == 36) & (strides == 8)
    assert pos[0, at].item() and index[0, at].item() == 1
    at16 = (points[:, 0] == 40) & (points[:, 1] == 40) & (strides == 16)
    assert not pos[0, at16].item()
    # padding rows are never assigned
    assert not (index[0][pos[0]] == 2).any()
    # a location outside every box is negative
    far = (points[:, 0] == 60) & (points[:, 1] == 60) & (strides == 8)
    assert not pos[0, far].item()


def test_loss_decreases_and_postprocess_finds_the_box():
    torch.manual_seed(0)
    model = FCOSDetector("unireplknet_a", num_classes=2, in_chans=3, **SMALL)
    x = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[[8.0, 8, 40, 48, 1]], [[20.0, 16, 60, 56, 0]]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = fcos_loss(model(x), targets, 2)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    model.eval()
    dets = fcos_postprocess(model(x), 2, image_size=(64, 64))
    for d, t in zip(dets, targets):  # the best detection of the object's class frames it
        mine = d["labels"] == int(t[0, 4])
        assert mine.any() and box_iou(d["boxes"][mine][:1], t[:, :4]).item() > 0.5


def test_loss_without_objects_is_finite_and_reaches_every_output():
    model = FCOSDetector("unireplknet_a", num_classes=3, **SMALL)
    out = model(torch.rand(2, 3, 64, 64))
    parts = fcos_loss(out, torch.full((2, 1, 5), -1.0), 3)
    assert torch.isfinite(parts["loss"]) and parts["box"].item() == 0
    parts["loss"].backward()


def test_backbone_loads_from_a_coco_checkpoints_backbone_keys():
    src = FCOSDetector("unireplknet_a", num_classes=3, **SMALL)
    # an MMDetection-style state dict: backbone.* (with norm0..norm3 after each stage), neck.*, roi_head.*
    sd = {f"backbone.{k}": (torch.randn_like(v) if v.is_floating_point() else v + 1)
          for k, v in src.body.state_dict().items()}
    for i, c in enumerate(SMALL["dims"]):
        sd[f"backbone.norm{i}.weight"] = torch.randn(c)
        sd[f"backbone.norm{i}.bias"] = torch.randn(c)
    sd["neck.lateral_convs.0.conv.weight"] = torch.randn(4, 4, 1, 1)
    sd["roi_head.bbox_head.0.fc_cls.weight"] = torch.randn(81, 4)
    det = FCOSDetector("unireplknet_a", num_classes=3, **SMALL)
    skipped = load_detection_backbone(det, sd)
    assert set(skipped) == {"backbone.norm0.weight", "backbone.norm0.bias", "neck.lateral_convs.0.conv.weight",
                            "roi_head.bbox_head.0.fc_cls.weight"}
    for k, v in det.body.state_dict().items():
        assert torch.equal(v, sd[f"backbone.{k}"]), k
    assert torch.equal(det.norms[0].weight, sd["backbone.norm1.weight"])  # stage 1 is the first FCOS level
    del sd["backbone.stages.0.0.dwconv.weight" if "backbone.stages.0.0.dwconv.weight" in sd else
           next(k for k in sd if k.startswith("backbone.stages."))]
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_detection_backbone(det, sd)


@pytest.mark.slow
@pytest.mark.parametrize("name, args", [
    ("replknet_31b", {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128], "large_kernel_sizes": [7, 7, 7, 5]}),
    ("inception_next_atto", {"depths": [1, 1, 1, 1], "dims": [16, 32, 64, 128]}),
    ("lsnet_t", {}),
])
def test_every_2d_family_carries_the_detector_and_fuses_exactly(name, args):
    from lkconv.deploy.optimize import optimize_for_inference

    torch.manual_seed(0)
    det = FCOSDetector(name, num_classes=3, **args).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = det(x)
    assert want.shape[0] == 2 and want.shape[2] == 3 + 8 and min(det.strides) >= 8
    got = optimize_for_inference(det, x, choose_pointwise=False)(x)
    assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())
