"""Forecasting tables: a delimited text file with one column per series and one row per time step.

Handles an optional header row, an optional index/date column (``1949-01``, ``1970 Q1``, an unnamed pandas index),
quoted fields, and empty / ``NA`` / ``?`` cells as missing values. sktime's bundled forecasting files (Airline,
ShampooSales, Lynx, PBS, Uschange, ...) all have this shape.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SeriesTable", "read_csv_series"]

_MISSING = {"", "na", "nan", "n/a", "null", "none", "?", "-"}


@dataclass
class SeriesTable:
    """Aligned series read from a table.

    Attributes:
        values: (T, n_series) float array; missing cells are NaN.
        columns: the name of each series (header names, or ``"0"``, ``"1"``, ... without a header).
        index: the index/date column as strings (length T), or None when the file has none.
        index_name: header name of the index column ("" when unnamed), or None.
        metadata: ``source``, ``header`` (whether a header row was found), ``dropped_columns`` (text columns other
            than the index, which are not series).
    """

    values: np.ndarray
    columns: list[str]
    index: list[str] | None = None
    index_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        """The (T,) series called ``name``."""
        if name not in self.columns:
            raise KeyError(f"no series {name!r}; columns: {self.columns}")
        return self.values[:, self.columns.index(name)]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in _MISSING


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)  # type: ignore[arg-type]
    if counts[best] > 0:
        return best
    return " " if len(first_line.split()) > 1 else ","


def read_csv_series(
    path: str | os.PathLike,
    *,
    columns: list[str] | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    index_col: bool | int | str | None = True,
    dtype: np.dtype | type = np.float64,
) -> SeriesTable:
    """Reads a forecasting table into a (T, n_series) float array.

    Args:
        path: CSV/TSV/semicolon-separated text file.
        columns: series to keep, by header name (or by position as a string when there is no header); all numeric
            columns when None.
        delimiter: field separator; sniffed from the first line (``,``, ``;``, tab, then whitespace) when None.
        header: whether the first row holds names; detected when None (a header row has a non-numeric cell where
            the second row has a number).
        index_col: ``True`` detects it (the first column when its header is empty, or the first column whose first
            value is text, such as a date); an int position or a header name forces it; ``None``/``False`` means
            no index column.
        dtype: floating dtype of ``values``.

    Returns:
        The table; text columns other than the index are dropped (named in ``metadata["dropped_columns"]``).

    Raises:
        ValueError: on ragged rows, non-numeric cells in a series column, unknown column names, or an empty file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot open table ({e})") from e
    numbered = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip() and line[0] != "#"]
    if not numbered:
        raise ValueError(f"{path}: no data rows (empty file or only '#' comments)")
    if delimiter is None:
        delimiter = _sniff_delimiter(numbered[0][1])
    if delimiter == " ":
        rows = [(i, line.split()) for i, line in numbered]
    else:
        parsed = csv.reader([line for _, line in numbered], delimiter=delimiter, skipinitialspace=True)
        rows = [(i, [c.strip() for c in cells]) for (i, _), cells in zip(numbered, parsed, strict=True)]

    first = rows[0][1]
    if header is None:
        second = rows[1][1] if len(rows) > 1 else None
        header = any(
            not _is_number(c) and not _is_missing(c) and (second is None or (k < len(second) and _is_number(second[k])))
            for k, c in enumerate(first)
        ) or (second is not None and all(not _is_number(c) for c in first))
        # pandas writes its index column with an empty name: ",0" / ",Quarter,..." is a header row
        header = header or (second is not None and first[0] == "" and second[0] != "")
    names = list(first) if header else [str(k) for k in range(len(first))]
    body = rows[1:] if header else rows
    if not body:
        raise ValueError(f"{path}: a header row but no data rows")
    width = len(names)
    for lineno, cells in body:
        if len(cells) != width:
            raise ValueError(f"{path}:{lineno}: row has {len(cells)} fields, the first row has {width}")

    # index column
    idx: int | None = None
    unnamed = [k for k in range(width) if header and names[k] == ""]  # pandas index columns: never a series
    if isinstance(index_col, bool):
        if index_col:
            sample = body[0][1]
            text_cols = [k for k in range(width) if not _is_number(sample[k]) and not _is_missing(sample[k])]
            if text_cols:
                idx = text_cols[0]
            elif unnamed:
                idx = unnamed[0]
    elif isinstance(index_col, int):
        if not -width <= index_col < width:
            raise ValueError(f"{path}: index_col={index_col} is out of range for {width} columns")
        idx = index_col % width
    elif isinstance(index_col, str):
        if index_col not in names:
            raise ValueError(f"{path}: index_col={index_col!r} is not a column; columns: {names}")
        idx = names.index(index_col)
    elif index_col is not None:
        raise ValueError(f"read_csv_series: index_col must be True, None, an int or a column name, got {index_col!r}")

    # series columns: numeric in every non-missing cell
    candidates = [k for k in range(width) if k != idx and k not in unnamed]
    numeric, dropped = [], []
    for k in candidates:
        cells = [cells[k] for _, cells in body]
        if all(_is_missing(c) or _is_number(c) for c in cells) and not all(_is_missing(c) for c in cells):
            numeric.append(k)
        else:
            dropped.append(k)
    if columns is not None:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise ValueError(f"{path}: columns {unknown} not found; columns: {names}")
        keep = [names.index(c) for c in columns]
        for k in keep:
            if k not in numeric:
                lineno, bad = next(
                    ((ln, cells[k]) for ln, cells in body if not (_is_missing(cells[k]) or _is_number(cells[k]))),
                    (body[0][0], body[0][1][k]),
                )
                raise ValueError(f"{path}:{lineno}: column {names[k]!r} has non-numeric cell {bad!r}")
    else:
        keep = numeric
    if not keep:
        raise ValueError(f"{path}: no numeric series column found; columns: {names}")

    values = np.empty((len(body), len(keep)), dtype=dtype)
    for t, (_, cells) in enumerate(body):
        for j, k in enumerate(keep):
            values[t, j] = np.nan if _is_missing(cells[k]) else float(cells[k])
    return SeriesTable(
        values=values,
        columns=[names[k] for k in keep],
        index=[cells[idx] for _, cells in body] if idx is not None else None,
        index_name=names[idx] if idx is not None else None,
        metadata={
            "source": str(path),
            "header": header,
            "dropped_columns": [names[k] for k in sorted(dropped + [k for k in unnamed if k != idx])],
        },
    )
