"""Time-series classification/regression files: the UEA/sktime ``.ts`` format and a plain ``.npz`` layout.

A ``.ts`` file is a header of ``@tag value`` lines followed by ``@data`` and one case per line::

    # comment (also "%" lines, as in ARFF)
    @problemName Example
    @timeStamps false
    @missing true
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true up down
    @data
    1,2,3,?:4,5,6:up
    1,2:3,NaN:down

Dimensions are separated by ``:``, values by ``,``, the label (``@classLabel true``) or regression target
(``@targetLabel true``) comes last, ``?`` or ``NaN`` mark missing values. With ``@timeStamps true`` the values
are ``(timestamp,value)`` pairs. Tags are case-insensitive.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TimeSeriesData", "read_series", "read_series_npz", "read_ts"]


@dataclass
class TimeSeriesData:
    """A set of (possibly multivariate, possibly unequal-length) series with optional labels.

    Attributes:
        X: values of shape (n, channels, length); series shorter than ``length`` are padded at the end with NaN.
        lengths: (n,) int64, the true length of each case (the longest of its channels).
        labels: (n,) array of class-label strings, or None when the file has no class labels.
        class_labels: the class labels declared in the header (in header order), or None.
        targets: (n,) float64 regression targets (``@targetLabel true``), or None.
        timestamps: for ``@timeStamps true`` files, ``timestamps[i][c]`` is the array of time stamps of case ``i``,
            channel ``c`` (float64 when all are numeric, else strings); None otherwise.
        metadata: the header fields (``problem_name``, ``univariate``, ``missing``, ...), plus ``source`` and
            ``has_missing`` (whether any value is missing; padding does not count).
    """

    X: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray | None = None
    class_labels: list[str] | None = None
    targets: np.ndarray | None = None
    timestamps: list[list[np.ndarray]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.X.shape[1])

    @property
    def max_length(self) -> int:
        return int(self.X.shape[2])

    @property
    def equal_length(self) -> bool:
        return bool(self.lengths.size == 0 or np.all(self.lengths == self.max_length))

    def label_indices(self) -> np.ndarray:
        """Class labels as int64 indices into ``class_labels``.

        Raises:
            ValueError: if the data set has no class labels.
        """
        if self.labels is None:
            raise ValueError(f"{self.metadata.get('source', 'data set')}: has no class labels to encode")
        classes = self.class_labels if self.class_labels is not None else sorted(set(self.labels.tolist()))
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[str(label)] for label in self.labels], dtype=np.int64)


_BOOL_TAGS = {
    "timestamps": "timestamps",
    "missing": "missing",
    "univariate": "univariate",
    "equallength": "equal_length",
}
_INT_TAGS = {"dimensions": "dimensions", "dimension": "dimensions", "serieslength": "series_length"}
_PAIR_RE = re.compile(r"\(([^()]*)\)")


def _parse_bool(word: str, where: str, tag: str) -> bool:
    w = word.strip().lower()
    if w in ("true", "false"):
        return w == "true"
    raise ValueError(f"{where}: @{tag} takes 'true' or 'false', got {word.strip()!r}")


def _parse_values(text: str, where: str, dim: int) -> np.ndarray:
    text = text.strip()
    if not text:
        return np.empty(0, dtype=np.float64)
    tokens = text.split(",")
    if tokens[-1].strip() == "":  # tolerate one trailing comma
        tokens = tokens[:-1]
    try:
        return np.array([t.replace("?", "nan") for t in tokens], dtype=np.float64)
    except ValueError:
        pass
    for k, tok in enumerate(tokens):
        try:
            float(tok.replace("?", "nan"))
        except ValueError:
            raise ValueError(
                f"{where}: dimension {dim}, value {k}: {tok.strip()!r} is not a number; accepted: decimal "
                "numbers, '?' or 'NaN' for a missing value"
            ) from None
    raise ValueError(f"{where}: dimension {dim}: could not parse {text[:60]!r} as comma-separated numbers")


def _parse_timestamped(text: str, where: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    text = text.strip()
    pairs = _PAIR_RE.findall(text)
    if _PAIR_RE.sub("", text).replace(",", "").strip():
        raise ValueError(
            f"{where}: dimension {dim} is not a comma-separated list of (timestamp,value) pairs: {text[:60]!r}"
        )
    stamps, values = [], []
    for k, pair in enumerate(pairs):
        if "," not in pair:
            raise ValueError(f"{where}: dimension {dim}, pair {k}: ({pair}) lacks the ',' between timestamp and value")
        stamp, value = pair.rsplit(",", 1)
        stamps.append(stamp.strip())
        values.append(value)
    vals = _parse_values(",".join(values), where, dim) if values else np.empty(0, dtype=np.float64)
    try:
        ts: np.ndarray = np.array(stamps, dtype=np.float64)
    except ValueError:
        ts = np.array(stamps, dtype=str)
    return ts, vals


def _split_outside_parens(line: str) -> list[str]:
    """Splits on ':' that are not inside parentheses (time stamps such as 12:00:00 contain ':')."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(line):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == ":" and depth == 0:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    return parts


def _stack(series: list[list[np.ndarray]], n_channels: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray([max((len(ch) for ch in case), default=0) for case in series], dtype=np.int64)
    max_len = int(lengths.max()) if lengths.size else 0
    X = np.full((len(series), n_channels, max_len), np.nan, dtype=dtype)
    for i, case in enumerate(series):
        for c, ch in enumerate(case):
            X[i, c, : len(ch)] = ch
    return X, lengths


def read_ts(path: str | os.PathLike, *, dtype: np.dtype | type = np.float32) -> TimeSeriesData:
    """Reads a UEA/sktime ``.ts`` file.

    Args:
        path: the ``.ts`` file.
        dtype: floating dtype of the returned ``X``.

    Returns:
        The parsed data set; unequal-length cases are NaN-padded to the longest one.

    Raises:
        ValueError: on a malformed header or data line; the message names the file and line.
    """
    path = Path(path)
    meta: dict[str, Any] = {
        "source": str(path),
        "problem_name": None,
        "timestamps": False,
        "missing": None,
        "univariate": None,
        "dimensions": None,
        "equal_length": None,
        "series_length": None,
        "class_label": False,
        "target_label": False,
        "extra_tags": {},
    }
    class_labels: list[str] | None = None
    series: list[list[np.ndarray]] = []
    stamps: list[list[np.ndarray]] = []
    labels: list[str] = []
    targets: list[float] = []
    line_of_case: list[int] = []
    in_data = False
    n_dims: int | None = None
    has_missing = False
    seen: dict[str, int] = {}

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); a .ts file is plain text") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot open .ts file ({e})") from e

    for lineno, raw in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if not in_data:
            if line[0] != "@":
                raise ValueError(
                    f"{where}: expected a '@tag' header line or '@data' before the data, got {line[:40]!r}"
                )
            tag, _, rest = line[1:].partition(" ")
            tag = tag.lower()
            rest = rest.strip()
            if tag in seen and tag != "problemname":
                raise ValueError(f"{where}: @{tag} repeated (first on line {seen[tag]})")
            seen[tag] = lineno
            if tag == "problemname":
                meta["problem_name"] = rest
            elif tag in _BOOL_TAGS:
                meta[_BOOL_TAGS[tag]] = _parse_bool(rest, where, tag)
            elif tag in _INT_TAGS:
                try:
                    value = int(rest)
                except ValueError:
                    raise ValueError(f"{where}: @{tag} takes a positive integer, got {rest!r}") from None
                if value < 1:
                    raise ValueError(f"{where}: @{tag} takes a positive integer, got {value}")
                meta[_INT_TAGS[tag]] = value
            elif tag == "classlabel":
                words = rest.split()
                if not words:
                    raise ValueError(f"{where}: @classLabel needs 'true' followed by the labels, or 'false'")
                meta["class_label"] = _parse_bool(words[0], where, tag)
                if meta["class_label"]:
                    if len(words) < 2:
                        raise ValueError(
                            f"{where}: @classLabel true must list the class labels, e.g. '@classLabel true a b'"
                        )
                    class_labels = words[1:]
                elif len(words) > 1:
                    raise ValueError(f"{where}: @classLabel false takes no labels, got {' '.join(words[1:])!r}")
            elif tag == "targetlabel":
                meta["target_label"] = _parse_bool(rest, where, tag)
            elif tag == "data":
                if meta["class_label"] and meta["target_label"]:
                    raise ValueError(
                        f"{where}: both @classLabel true and @targetLabel true; a file has one label column"
                    )
                if meta["univariate"] and meta["dimensions"] not in (None, 1):
                    raise ValueError(f"{where}: @univariate true contradicts @dimensions {meta['dimensions']}")
                if meta["univariate"]:
                    n_dims = 1
                elif meta["dimensions"] is not None:
                    n_dims = meta["dimensions"]
                in_data = True
            else:
                meta["extra_tags"][tag] = rest
            continue

        # a case
        parts = _split_outside_parens(line) if meta["timestamps"] else line.split(":")
        has_label = meta["class_label"] or meta["target_label"]
        if has_label:
            if len(parts) < 2:
                raise ValueError(f"{where}: the header declares a label but the line has no ':label' at the end")
            label, parts = parts[-1].strip(), parts[:-1]
        if n_dims is None:
            n_dims = len(parts)  # multivariate without @dimensions: trust the first case
        if len(parts) != n_dims:
            expect = f"{n_dims} dimension(s)" + (" and a label" if has_label else "")
            raise ValueError(f"{where}: found {len(parts)} ':'-separated dimension(s), expected {expect}")
        case, case_stamps = [], []
        for d, text in enumerate(parts):
            if meta["timestamps"]:
                ts, vals = _parse_timestamped(text, where, d)
                case_stamps.append(ts)
            else:
                vals = _parse_values(text, where, d)
            has_missing = has_missing or bool(np.isnan(vals).any())
            case.append(vals)
        if meta["equal_length"]:
            lens = {len(v) for v in case}
            if meta["series_length"] is not None:
                lens.add(meta["series_length"])
            if series:
                lens.add(len(series[0][0]))
            if len(lens) > 1:
                raise ValueError(
                    f"{where}: @equalLength true but this case has length(s) {sorted({len(v) for v in case})}, "
                    f"other cases / @seriesLength say {sorted(lens - {len(v) for v in case}) or sorted(lens)}"
                )
        if meta["class_label"]:
            if class_labels is not None and label not in class_labels:
                raise ValueError(f"{where}: class label {label!r} is not among the declared labels {class_labels}")
            labels.append(label)
        elif meta["target_label"]:
            try:
                targets.append(float(label))
            except ValueError:
                raise ValueError(f"{where}: regression target {label!r} is not a number") from None
        series.append(case)
        stamps.append(case_stamps)
        line_of_case.append(lineno)

    if not in_data:
        raise ValueError(f"{path}: no '@data' line; a .ts file needs its header to end with @data")
    X, lengths = _stack(series, n_dims or 1, np.dtype(dtype))
    meta["has_missing"] = has_missing
    meta["line_of_case"] = line_of_case
    return TimeSeriesData(
        X=X,
        lengths=lengths,
        labels=np.asarray(labels, dtype=str) if meta["class_label"] else None,
        class_labels=class_labels,
        targets=np.asarray(targets, dtype=np.float64) if meta["target_label"] else None,
        timestamps=stamps if meta["timestamps"] else None,
        metadata=meta,
    )


def read_series_npz(path: str | os.PathLike, *, dtype: np.dtype | type = np.float32) -> TimeSeriesData:
    """Reads series from a ``.npz`` archive.

    Keys: ``X`` of shape (n, channels, length) or (n, length) (univariate), NaN-padded when unequal; optional
    ``y`` (n,) labels (integers or strings are class labels, floats are regression targets); optional ``lengths``
    (n,) and ``class_labels``.

    Args:
        path: the ``.npz`` file.
        dtype: floating dtype of the returned ``X``.

    Returns:
        The data set.

    Raises:
        ValueError: if ``X`` is missing or has the wrong shape, or ``y``/``lengths`` do not match it.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read as .npz ({e})") from e
    with archive:
        if "X" not in archive.files:
            raise ValueError(f"{path}: no 'X' array; keys found: {archive.files}; expected X (n, channels, length)")
        X = _npz_array(archive, "X", path)
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3:
            raise ValueError(f"{path}: 'X' has shape {X.shape}; accepted: (n, channels, length) or (n, length)")
        if not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{path}: 'X' has dtype {X.dtype}; a numeric array is needed")
        X = X.astype(dtype, copy=False)
        n = X.shape[0]
        if "lengths" in archive.files:
            lengths = np.asarray(_npz_array(archive, "lengths", path), dtype=np.int64).reshape(-1)
            if lengths.shape != (n,) or (lengths > X.shape[2]).any() or (lengths < 0).any():
                raise ValueError(f"{path}: 'lengths' must be (n,)={n} integers in [0, {X.shape[2]}]")
        else:
            valid = ~np.isnan(X).all(axis=1) if np.issubdtype(X.dtype, np.floating) else np.ones(X.shape[::2], bool)
            has_any = valid.any(axis=1)
            lengths = np.where(has_any, X.shape[2] - np.argmax(valid[:, ::-1], axis=1), 0).astype(np.int64)
        labels = targets = class_labels = None
        if "y" in archive.files:
            y = np.asarray(_npz_array(archive, "y", path)).reshape(-1)
            if y.shape[0] != n:
                raise ValueError(f"{path}: 'y' has {y.shape[0]} entries but 'X' has {n} cases")
            if y.dtype.kind == "f":
                targets = y.astype(np.float64)
            else:
                labels = y.astype(str)
                uniq = np.unique(y)  # numeric sort for integers, lexicographic for strings
                class_labels = [str(v) for v in uniq]
        if "class_labels" in archive.files:
            class_labels = [str(v) for v in np.asarray(_npz_array(archive, "class_labels", path)).reshape(-1)]
            if labels is not None and not set(labels.tolist()) <= set(class_labels):
                extra = sorted(set(labels.tolist()) - set(class_labels))
                raise ValueError(f"{path}: labels {extra} in 'y' are not in 'class_labels' {class_labels}")
    has_missing = any(bool(np.isnan(X[i, :, : lengths[i]]).any()) for i in range(n))
    meta = {"source": str(path), "problem_name": path.stem, "has_missing": has_missing}
    return TimeSeriesData(
        X=X, lengths=lengths, labels=labels, class_labels=class_labels, targets=targets, metadata=meta
    )


def _npz_array(archive, key: str, path: Path) -> np.ndarray:
    """``archive[key]``; an array numpy refuses to load (an object array, which would need unpickling) names the file
    and the key."""
    try:
        return archive[key]
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read {key!r} ({e}); accepted: numeric or string arrays (object arrays are "
                         "never unpickled)") from e


def read_series(path: str | os.PathLike, *, dtype: np.dtype | type = np.float32) -> TimeSeriesData:
    """Reads a ``.ts`` or ``.npz`` series file, chosen by suffix.

    Raises:
        ValueError: for any other suffix, or a malformed file.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(path, dtype=dtype)
    if suffix == ".npz":
        return read_series_npz(path, dtype=dtype)
    raise ValueError(f"{path}: unsupported series file suffix {suffix!r}; accepted: .ts, .npz")
