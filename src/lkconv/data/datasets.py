"""What every modality's data layer shares: the bundle handed to the engine, folder scanning, splits, and
datasets whose per-sample randomness depends only on (seed, epoch, index) so a resumed run sees the same data."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DataBundle", "DataError", "scan_class_folders", "stratified_split", "subset", "SampleDataset",
           "resolve_splits", "check_option_keys", "limit_splits", "held_out_split", "FolderSplit",
           "split_class_folders", "set_on_bad_file", "skipped_files_warning", "unreadable_file"]

log = logging.getLogger("lkconv.data")


class DataError(ValueError):
    """The data path, its layout or a file in it is not usable."""


def unreadable_file(path: str | Path, error: Exception, accepted: str) -> DataError:
    """The :class:`DataError` of a file that ``predict`` cannot read: the reader's own words (without the path, which
    the caller's line names already) and what is accepted, e.g. ``soundfile could not decode this file (...); accepted: ...``.

    lkconv's readers start their sentences with the path (``PATH: ...`` or ``PATH:LINE: ...``, which becomes
    ``line LINE: ...``); anything else (numpy's, PIL's, PyAV's own errors) keeps its type name so the cause stays
    findable.
    """
    text, own = str(error), isinstance(error, DataError)
    for name in dict.fromkeys((str(path), str(Path(path)))):
        if text.startswith(f"{name}:"):
            rest, own = text[len(name) + 1:], True
            text = rest.lstrip() if rest.startswith(" ") else f"line {rest}"
            break
    if not own:
        text = f"{type(error).__name__}: {text}"
    return DataError(text if "accepted" in text else f"{text}; accepted: {accepted}")


@dataclass
class DataBundle:
    """What the engine receives: datasets of ``(raw_tensor, target)`` and how to build the adapter."""

    train: Dataset | None
    val: Dataset
    class_names: list[str]
    adapter: str
    adapter_args: dict[str, Any]
    raw_shape: tuple[int, ...]  # shape of one raw sample (the adapter sees a batch of these)
    task: str = "classify"
    notes: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # how predict turns a file into a raw sample


def scan_class_folders(
    root: Path, extensions: Sequence[str], *, validate: Callable[[Path], None] | None = None, on_bad_file: str = "skip",
    class_names: Sequence[str] | None = None,
) -> tuple[list[Path], list[int], list[str], list[tuple[Path, str]]]:
    """Lists ``root/<class>/*.<ext>`` (recursively inside each class folder).

    Returns:
        ``(files, labels, class_names, skipped)``; ``skipped`` holds (file, reason) for unreadable files.

    Raises:
        DataError: missing or empty root, a class folder with no matching files or none that can be read, or
            (``on_bad_file='error'``) an unreadable file, naming it.
    """
    exts = {e.lower().lstrip(".") for e in extensions}
    if root.is_file():
        raise DataError(f"{root} is a file; the data is a folder of class folders, "
                        f"PATH/<class>/*.{{{','.join(sorted(exts))}}}")
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root} has no class folders; expected {root}/<class>/*.{{{','.join(sorted(exts))}}}")
    names = list(class_names) if class_names is not None else [p.name for p in folders]
    unknown = [p.name for p in folders if p.name not in names]
    if unknown:
        raise DataError(f"{root} has class folders not in the training classes: {unknown}; known: {names}")
    files: list[Path] = []
    labels: list[int] = []
    skipped: list[tuple[Path, str]] = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in exts)
        if not found:
            raise DataError(f"class folder {folder} has no files with extensions {sorted(exts)}")
        readable = 0
        for path in found:
            if validate is not None:
                try:
                    validate(path)
                except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
                    if on_bad_file == "error":
                        raise DataError(f"unreadable file {path}: {type(e).__name__}: {e}") from e
                    skipped.append((path, f"{type(e).__name__}: {e}"))
                    continue
            files.append(path)
            labels.append(names.index(folder.name))
            readable += 1
        if not readable:  # a class without one sample cannot be learned or evaluated
            first, reason = next((p, r) for p, r in skipped if p.parent == folder or folder in p.parents)
            raise DataError(f"class folder {folder}: none of its {len(found)} file(s) can be read (first: {first}: "
                            f"{reason}); accepted: readable *.{{{','.join(sorted(exts))}}} files")
    if skipped:
        log.warning("skipped %d unreadable file(s) under %s (first: %s: %s)", len(skipped), root, *skipped[0])
    if not files:
        raise DataError(f"no readable files under {root}")
    return files, labels, names, skipped


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split holding out ``fraction`` of every class (at least one sample of classes with ≥ 2)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        else:
            n_held = 0
        held.extend(idx[:n_held].tolist())
        train.extend(idx[n_held:].tolist())
    return sorted(train), sorted(held)


def subset(indices: Sequence[int], labels: Sequence[int], max_n: int | None, seed: int) -> list[int]:
    """A seeded, stratified subset of at most ``max_n`` indices (all of them when ``max_n`` is None)."""
    indices = list(indices)
    if max_n is None or max_n >= len(indices):
        return indices
    lab = np.asarray(labels)[indices]
    keep_frac = max_n / len(indices)
    _, kept = stratified_split(lab.tolist(), keep_frac, seed + 7919)
    kept = kept[:max_n]
    return sorted(indices[i] for i in kept)


def resolve_splits(root: Path) -> tuple[Path, Path | None]:
    """``root/train`` + ``root/val`` (or ``root/test``) if present, else ``(root, None)`` (split held out)."""
    if (root / "train").is_dir():
        for name in ("val", "test"):
            if (root / name).is_dir():
                return root / "train", root / name
        return root / "train", None
    return root, None


def check_option_keys(args: dict, accepted: Sequence[str], modality: str, *, task: str | None = None) -> None:
    """Rejects ``modality_args`` keys outside ``accepted``, naming them and listing what is accepted."""
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        for_task = f" for task {task!r}" if task else ""
        raise DataError(f"modality_args: unknown {modality} option(s) {unknown}{for_task}; accepted: "
                        f"{', '.join(accepted) or '(none)'}")


def limit_splits(train: Sequence[int], val: Sequence[int], labels: Sequence[int], cfg, *,
                 val_labels: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """``cfg.max_train_samples`` / ``cfg.max_val_samples``: seeded, stratified subsets of the training indices
    (seed ``cfg.seed``) and of the validation indices (seed ``cfg.seed + 1``). ``labels`` are indexed by both, unless
    the validation indices point into ``val_labels`` (separate training and validation arrays)."""
    train = subset(train, labels, cfg.max_train_samples, cfg.seed)
    val = subset(val, labels if val_labels is None else val_labels, cfg.max_val_samples, cfg.seed + 1)
    return train, val


def held_out_split(labels: Sequence[int], cfg) -> tuple[list[int], list[int]]:
    """A seeded, stratified ``cfg.val_split`` hold-out of one labelled set, then :func:`limit_splits`."""
    train, val = stratified_split(labels, cfg.val_split, cfg.seed)
    return limit_splits(train, val, labels, cfg)


@dataclass
class FolderSplit:
    """A class-folder data set: its files and labels, and the training and validation indices into them."""

    files: list[Path]
    labels: list[int]
    class_names: list[str]
    train: list[int]
    val: list[int]
    skipped: list[tuple[Path, str]]


def split_class_folders(
    root: Path, extensions: Sequence[str], cfg, *, validate: Callable[[Path], None] | None = None,
    eval_only: bool = False, class_names: Sequence[str] | None = None, what: str = "file",
) -> FolderSplit:
    """The folder data contract shared by the file modalities: scan, split, subset.

    ``root/{train,val}/<class>/…`` (or ``root/test``) keeps its split; ``root/<class>/…`` holds out a seeded,
    stratified ``cfg.val_split``; then ``cfg.max_train_samples`` / ``cfg.max_val_samples`` subsets
    (:func:`limit_splits`). With ``eval_only`` every index is a validation index: the val/ (or test/) split if there
    is one, else every file, labelled with ``class_names`` (the trained run's classes). Validation files come after
    the training files in ``files``.

    Raises:
        DataError: as :func:`scan_class_folders`, or when the training (unless ``eval_only``) or the validation
            split is empty; ``what`` names a sample in that message ("image", "clip", …).
    """
    train_root, val_root = resolve_splits(root)
    if eval_only:
        train_root, val_root = (val_root, None) if val_root is not None else (train_root, None)
    files, labels, names, skipped = scan_class_folders(train_root, extensions, validate=validate,
                                                       on_bad_file=cfg.on_bad_file, class_names=class_names)
    if eval_only:
        tr_idx, va_idx = [], list(range(len(files)))
    elif val_root is not None:
        vfiles, vlabels, _, vskipped = scan_class_folders(val_root, extensions, validate=validate,
                                                          on_bad_file=cfg.on_bad_file, class_names=names)
        skipped += vskipped
        tr_idx, va_idx = list(range(len(files))), list(range(len(files), len(files) + len(vfiles)))
        files, labels = files + vfiles, labels + vlabels
    else:
        tr_idx, va_idx = stratified_split(labels, cfg.val_split, cfg.seed)
    tr_idx, va_idx = limit_splits(tr_idx, va_idx, labels, cfg)
    if (not tr_idx and not eval_only) or not va_idx:
        raise DataError(f"{root}: need at least one training and one validation {what} (have {len(tr_idx)}, "
                        f"{len(va_idx)}); add files or a val/ folder")
    if not eval_only and len(names) < 2:
        raise DataError(f"{train_root} has one class folder ({names[0]}); a classifier needs at least two: "
                        f"{train_root}/<class>/... for each class")
    return FolderSplit(files, labels, names, tr_idx, va_idx, skipped)


class SampleDataset(Dataset):
    """Indexable samples ``load(i) -> tensor`` with labels, and a per-sample transform that receives an RNG.

    The RNG is ``numpy.random.default_rng((seed, epoch, i))``: augmentation does not depend on worker processes,
    process count or where a run was interrupted.

    A sample whose file fails to decode (a truncated JPEG, a WAV without a data chunk, ...) is handled here, once for
    every modality: with ``on_bad_file="error"`` a :class:`DataError` names the file; with ``"skip"`` the next
    readable sample of the dataset (positions ``k+1, k+2, ...``) takes its place. The substitute depends only on which
    files are unreadable, so batch sizes stay the same and a resumed run sees the same batches. Skipped files are
    collected (:meth:`take_skipped`) for one counted warning per epoch instead of a line per failure.

    Loader workers are other processes: a worker marks the positions it skipped in a shared-memory flag per sample
    (created here, before any worker starts, and shared with forked or spawned workers), so the count taken in the
    main process covers every worker's reads.
    """

    def __init__(
        self, load: Callable[[int], torch.Tensor], labels: Sequence[Any], indices: Sequence[int],
        transform: Callable[[torch.Tensor, np.random.Generator], torch.Tensor] | None = None, seed: int = 0,
        describe: Callable[[int], str] | None = None, on_bad_file: str = "skip",
    ) -> None:
        self.load, self.labels, self.indices = load, labels, list(indices)
        self.transform, self.seed, self.epoch = transform, seed, 0
        self.describe = describe or (lambda i: f"sample {i}")
        self.on_bad_file = on_bad_file
        self.bad: dict[int, str] = {}  # index -> reason: the unreadable samples this process met since take_skipped()
        self.flags = torch.zeros(len(self.indices), dtype=torch.uint8).share_memory_()  # positions skipped, any process

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def targets(self) -> list[Any]:
        return [self.labels[i] for i in self.indices]

    def take_skipped(self) -> list[tuple[str, str]]:
        """(file, reason) of the unreadable samples met since the last call, in this process or its loader workers,
        then forgets them. A file only a worker met is read again here for its reason (the first one only)."""
        found: dict[int, str | None] = dict(self.bad)
        for pos in self.flags.nonzero().flatten().tolist():
            found.setdefault(self.indices[pos], None)
        self.bad = {}
        self.flags.zero_()
        return [(self.describe(i), reason if reason is not None else self._reason(i) if n == 0 else
                 "unreadable in a loader worker") for n, (i, reason) in enumerate(found.items())]

    def _reason(self, i: int) -> str:
        """Why sample ``i`` failed in a worker: its decoder's error again, or (when it decodes here) its transform."""
        try:
            self.load(i)
        except Exception as e:  # noqa: BLE001 - the same failure the worker met
            return f"{type(e).__name__}: {e}"
        return "its transform failed in a loader worker"

    def _read(self, k: int) -> tuple[int, torch.Tensor]:
        """The (transformed) sample at position ``k``, or under ``on_bad_file="skip"`` the next readable one."""
        n = len(self.indices)
        for step in range(n):
            # A known bad file is tried again: a transform's failure may depend on the epoch's RNG, and a resumed
            # process must pick the same substitute. The transform is inside the try: e.g. a point cloud whose faces
            # cannot be sampled fails only there.
            i = self.indices[(k + step) % n]
            try:
                x = self.load(i)
                if self.transform is not None:
                    x = self.transform(x, np.random.default_rng((self.seed, self.epoch, i)))
                return i, x
            except Exception as e:  # noqa: BLE001 - any decoder error means the file is unusable
                reason = f"{type(e).__name__}: {e}"
                if self.on_bad_file == "error":
                    raise DataError(f"cannot read {self.describe(i)}: {reason} (on_bad_file: skip skips such files "
                                    "with a counted warning)") from e
                self.bad[i] = reason
                self.flags[(k + step) % n] = 1
        first = next(iter(self.bad.items()))
        self.bad = {}
        raise DataError(f"no readable sample: all {n} failed to decode (first: {self.describe(first[0])}: {first[1]})")

    def __getitem__(self, k: int):
        i, x = self._read(k)
        y = self.labels[i]
        return x, torch.as_tensor(y)


def set_on_bad_file(bundle: DataBundle, on_bad_file: str) -> None:
    """Applies the run's ``on_bad_file`` to every :class:`SampleDataset` of ``bundle`` (whatever modality built it)."""
    for ds in (bundle.train, bundle.val):
        if isinstance(ds, SampleDataset):
            ds.on_bad_file = on_bad_file


def skipped_files_warning(bundle: DataBundle) -> str | None:
    """One line counting the files skipped since the last call (training and validation), or None.

    The count covers this process's reads and its loader workers' (see :class:`SampleDataset`); in a distributed run
    each process counts the files of its own share of the batches."""
    skipped = [s for ds in (bundle.train, bundle.val) if isinstance(ds, SampleDataset) for s in ds.take_skipped()]
    if not skipped:
        return None
    first, reason = skipped[0]
    return (f"warning: skipped {len(skipped)} unreadable file(s) that passed the folder scan (each replaced by the next "
            f"readable sample; first: {first}: {reason})")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
