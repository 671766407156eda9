"""The folder contract shared by the file modalities: scan → split (kept or held out) → seeded subsets."""

from pathlib import Path

import pytest

from lkconv.data.datasets import (
    DataError,
    held_out_split,
    limit_splits,
    split_class_folders,
    stratified_split,
    subset,
)
from lkconv.engine.config import TrainConfig


def _tree(root: Path, layout: dict[str, int]) -> None:
    for rel, n in layout.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"{i:02d}.dat").write_bytes(b"x")


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="unused", out="unused", **kw)


def test_held_out_split_is_stratified_split_then_seeded_subsets():
    labels = [i % 3 for i in range(40)]
    cfg = _cfg(seed=4, val_split=0.25, max_train_samples=12, max_val_samples=5)
    tr, va = stratified_split(labels, 0.25, 4)
    assert held_out_split(labels, cfg) == (subset(tr, labels, 12, 4), subset(va, labels, 5, 5))
    assert held_out_split(labels, _cfg(seed=4, val_split=0.25)) == (tr, va)  # no limits: the split itself
    # separate validation labels (e.g. a test array): the validation subset is drawn from them
    val_labels = [i % 2 for i in range(10)]
    assert limit_splits(range(40), range(10), labels, cfg, val_labels=val_labels)[1] == subset(
        list(range(10)), val_labels, 5, 5)


def test_flat_folder_holds_out_a_stratified_split(tmp_path):
    _tree(tmp_path, {"cat": 10, "dog": 6})
    cfg = _cfg(seed=1, val_split=0.2)
    s = split_class_folders(tmp_path, ["dat"], cfg)
    assert s.class_names == ["cat", "dog"] and len(s.files) == 16 and s.skipped == []
    assert (s.train, s.val) == stratified_split(s.labels, 0.2, 1)
    assert sorted(s.train + s.val) == list(range(16))
    assert [s.labels[i] for i in s.val].count(0) == 2 and [s.labels[i] for i in s.val].count(1) == 1
    assert split_class_folders(tmp_path, ["dat"], cfg).val == s.val  # same seed, same split
    assert split_class_folders(tmp_path, ["dat"], _cfg(seed=2, val_split=0.2)).val != s.val


def test_train_val_folders_keep_their_split_and_eval_only_reads_val(tmp_path):
    _tree(tmp_path, {"train/a": 4, "train/b": 5, "val/a": 2, "val/b": 1})
    s = split_class_folders(tmp_path, ["dat"], _cfg())
    assert s.train == list(range(9)) and s.val == [9, 10, 11]
    assert all("val" in f.parts for f in (s.files[i] for i in s.val))
    limited = split_class_folders(tmp_path, ["dat"], _cfg(max_train_samples=4, max_val_samples=2))
    assert len(limited.train) <= 4 and len(limited.val) <= 2 and set(limited.val) <= set(s.val)
    ev = split_class_folders(tmp_path, ["dat"], _cfg(), eval_only=True, class_names=["a", "b"])
    assert ev.train == [] and [f.parent.parent.name for f in ev.files] == ["val"] * 3 and ev.val == [0, 1, 2]


def test_empty_split_names_the_kind_of_sample(tmp_path):
    _tree(tmp_path, {"a": 1})  # one file: nothing to hold out
    with pytest.raises(DataError, match="one training and one validation clip"):
        split_class_folders(tmp_path, ["dat"], _cfg(), what="clip")
