"""--task segment end to end on a tiny folder: data contract, errors, train, eval metrics, predict files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lkconv.data.datasets import DataError
from lkconv.engine.config import TrainConfig
from lkconv.engine.tasks import get_task

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [5]],
        "head_channels": 16}


def _pair(rng, size=(40, 48)):
    h, w = size
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[y0 : y0 + h // 2, x0 : x0 + w // 2] = 1
    mask[:3, :3] = 255
    img[mask == 1] = [220, 40, 40]
    return img, mask


def _folder(root, n_train=8, n_val=4, classes=True):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            img, mask = _pair(rng)
            Image.fromarray(img).save(root / split / "images" / f"s{i}.jpg" if i % 2 else
                                      root / split / "images" / f"s{i}.png")
            Image.fromarray(mask, mode="L").save(root / split / "masks" / f"s{i}.png")
    if classes:
        (root / "classes.txt").write_text("background\nobject\n")
    return root


def _cfg(data, out, **kw):
    return TrainConfig(model="unireplknet_a", model_args=dict(TINY), task="segment", modality="image",
                       data=str(data), out=str(out), img_size=32, batch_size=4, epochs=kw.pop("epochs", 1),
                       lr=1e-3, progress=False, **kw)


def test_metrics_from_sums():
    task = get_task("segment")
    out = torch.zeros(1, 3, 2, 2)
    out[0, 0, 0, :] = 1  # predict class 0 on the top row, class 1 (index argmax of zeros) elsewhere -> ties to 0
    out[0, 1, 1, :] = 2
    target = torch.tensor([[[0, 1], [1, 255]]])
    m = task.eval_metrics(task.eval_sums(out, target))
    # valid pixels: (0,0)=0 pred 0 ok, (0,1)=1 pred 0 wrong, (1,0)=1 pred 1 ok
    assert m["pixel_accuracy"] == pytest.approx(2 / 3)
    assert m["iou_0"] == pytest.approx(1 / 2) and m["iou_1"] == pytest.approx(1 / 2)
    assert "iou_2" not in m and m["miou"] == pytest.approx(0.5)  # class 2 neither labelled nor predicted


def test_loss_ignores_255_and_weights_the_auxiliary_head():
    task = get_task("segment")
    main, aux = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t = torch.randint(0, 3, (2, 4, 4))
    t[0, 0, 0] = 255
    ce = torch.nn.functional.cross_entropy
    want = ce(main, t, ignore_index=255) + 0.4 * ce(aux, t, ignore_index=255)
    assert torch.allclose(task.loss((main, aux), t, 0.0), want)


def test_folder_contract_and_joint_augmentation(tmp_path):
    from lkconv.modalities import build_data

    data = build_data(_cfg(_folder(tmp_path / "d"), tmp_path / "r"))
    assert data.task == "segment" and data.class_names == ["background", "object"]
    assert len(data.train) == 8 and len(data.val) == 4
    for epoch in range(3):
        data.train.set_epoch(epoch)
        x, y = data.train[0]
        assert x.shape == (3, 32, 32) and y.shape == (32, 32) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 1, 255}
        obj = y == 1  # the object is the red square: the mask moved with the image (red > green there)
        if obj.any():
            assert (x[0][obj] - x[1][obj]).mean() > 0.3
        assert (x[0][y == 0] - x[1][y == 0]).abs().mean() < 0.3


def test_bad_pairs_are_named_or_skipped(tmp_path):
    from lkconv.modalities import build_data

    root = _folder(tmp_path / "d")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "train" / "images" / "lonely.png")
    Image.fromarray(np.zeros((12, 12), np.uint8), mode="L").save(root / "train" / "masks" / "s0.png")  # size
    Image.fromarray(np.full((40, 48), 7, np.uint8), mode="L").save(root / "train" / "masks" / "s1.png")  # class 7
    with pytest.raises(DataError, match=r"lonely\.png: no mask[\s\S]*s0\.png: mask is 12x12, image is 48x40"):
        build_data(_cfg(root, tmp_path / "r", on_bad_file="error"))
    data = build_data(_cfg(root, tmp_path / "r", on_bad_file="skip"))
    assert len(data.train) == 6 and data.notes["skipped_files"] == 3
    (root / "train" / "images" / "lonely.png").unlink()
    Image.fromarray(np.zeros((40, 48), np.uint8), mode="L").save(root / "train" / "masks" / "s0.png")
    with pytest.raises(DataError, match=r"s1\.png: class values \[7\] outside 0\.\.1"):
        build_data(_cfg(root, tmp_path / "r", on_bad_file="error"))


def test_without_val_a_seeded_split_and_classes_from_masks(tmp_path):
    from lkconv.modalities import build_data

    root = _folder(tmp_path / "d", classes=False)
    for sub in ("images", "masks"):  # flatten: DATA/images + DATA/masks
        (root / sub).mkdir()
        for f in (root / "train" / sub).iterdir():
            f.rename(root / sub / f.name)
    import shutil

    shutil.rmtree(root / "train"), shutil.rmtree(root / "val")
    a = build_data(_cfg(root, tmp_path / "r", val_split=0.25))
    b = build_data(_cfg(root, tmp_path / "r", val_split=0.25))
    assert a.class_names == ["class0", "class1"]
    assert a.val.indices == b.val.indices and len(a.val) == 2 and len(a.train) == 6


def test_train_eval_predict(tmp_path):
    from lkconv.engine.evaluate import evaluate_run, predict_files, prediction_lines
    from lkconv.engine.trainer import train

    root = _folder(tmp_path / "d")
    run = train(_cfg(root, tmp_path / "run", epochs=2))
    metrics = evaluate_run(run)
    assert {"miou", "pixel_accuracy", "loss"} <= set(metrics) and 0 <= metrics["miou"] <= 1
    assert json.loads((run / "metrics.json").read_text())["miou"] == metrics["miou"]
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (70, 150, 3), dtype=np.uint8)).save(big)
    rows = predict_files(run, [big, root / "val" / "images" / "s0.png"], out_dir=tmp_path / "pred")
    mask = np.asarray(Image.open(rows[0]["mask"]))
    assert mask.shape == (70, 150) and mask.max() <= 1  # the file's own size (sliding windows), class indices
    assert np.asarray(Image.open(rows[0]["overlay"])).shape == (70, 150, 3)
    assert np.asarray(Image.open(rows[1]["mask"])).shape == (40, 48)
    lines = prediction_lines(run, rows)
    assert lines[0].startswith(f"{big}\tmask {tmp_path / 'pred' / 'big_mask.png'}")
