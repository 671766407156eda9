"""Figures for the analyses and runs: ERF heatmaps, kernel grids and training curves.

matplotlib is imported inside the functions (``pip install lkconv[plot]``) and used through ``Figure`` objects
without pyplot, so no GUI backend or global figure state is involved.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lkconv.analysis.erf import analyze_erf, erf_transform

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SPLIT_COLOURS", "kernel_grid_figure", "plot_erf", "plot_erf_grid", "plot_kernel_grid",
           "training_curves_figure", "training_curves_png"]

ERF_CMAP = "RdYlGn"  # the colour map of the RepLKNet ERF figures
SPLIT_COLOURS: dict[str, str] = {"train": "tab:blue", "val": "tab:orange"}  # one colour per split in every panel
_METRIC_STYLES = ("-", "--", ":", "-.")  # several metrics of one split in a panel differ by line style


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install lkconv[plot]") from err
    return Figure(figsize=(width, height), layout=layout)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def _draw_erf(ax: Axes, erf_map: np.ndarray, title: str | None, squares: bool, cmap: str) -> Any:
    image = ax.imshow(erf_transform(erf_map), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    if squares:
        from matplotlib.patches import Rectangle

        height, width = np.shape(erf_map)
        for entry in analyze_erf(erf_map)["thresholds"]:
            half = entry["side"] / 2
            corner = (width // 2 - half, height // 2 - half)  # pixel centres are integers, edges at +-0.5
            ax.add_patch(Rectangle(corner, entry["side"], entry["side"], fill=False, lw=0.8, ec="black"))
            ax.annotate(f"{entry['threshold']:.0%}", (corner[0], corner[1]), fontsize=6, va="bottom", clip_on=True)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return image


def plot_erf(
    erf_map: np.ndarray,
    path: str | Path,
    title: str | None = None,
    *,
    squares: bool = False,
    cmap: str = ERF_CMAP,
) -> Path:
    """Writes a heatmap of ``log10(map + 1)`` normalised to [0, 1], as in the RepLKNet ERF figures.

    Args:
        erf_map: An H x W map from ``compute_erf``.
        path: Output file (the format follows the suffix, e.g. ``.png``).
        title: Figure title.
        squares: Also draw the centred squares of ``analyze_erf`` for its default thresholds.
        cmap: A matplotlib colour map name.

    Returns:
        The written path.
    """
    height, width = np.shape(erf_map)[:2]
    figure = _new_figure(5.0 * min(width / height, 2.0) + 1.0, 5.0)
    ax = figure.subplots()
    image = _draw_erf(ax, erf_map, title, squares, cmap)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _save(figure, path)


def plot_erf_grid(
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    ncols: int | None = None,
    title: str | None = None,
    squares: bool = False,
    cmap: str = ERF_CMAP,
) -> Path:
    """Writes ERF heatmaps side by side (each map normalised on its own, as the recipe does), to compare models.

    Args:
        maps: ``{label: H x W map}``, e.g. ``{"unireplknet_a": ..., "resnet": ...}``; sizes may differ.
        path: Output file.
        ncols: Panels per row; ``None`` puts up to 4 in a row.
        title: Figure title.
        squares: Draw the centred threshold squares in each panel.
        cmap: A matplotlib colour map name.

    Returns:
        The written path.
    """
    if not maps:
        raise ValueError("plot_erf_grid needs at least one map")
    ncols = ncols if ncols is not None else min(len(maps), 4)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1 or None, got {ncols}")
    nrows = math.ceil(len(maps) / ncols)
    figure = _new_figure(3.2 * ncols + 0.8, 3.2 * nrows + (0.4 if title else 0.0))
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    image = None
    for ax, (label, erf_map) in zip(axes, maps.items(), strict=False):
        image = _draw_erf(ax, erf_map, label, squares, cmap)
    for ax in axes[len(maps) :]:
        ax.set_axis_off()
    figure.colorbar(image, ax=list(axes[: len(maps)]), shrink=0.8)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def kernel_grid_figure(kernels: Mapping[str, np.ndarray], *, max_channels: int = 16) -> Figure:
    """The figure of :func:`plot_kernel_grid` (not saved), e.g. to add to it or to inspect it in a test."""
    if not kernels:
        raise ValueError("plot_kernel_grid needs at least one layer")
    if max_channels < 1:
        raise ValueError(f"max_channels must be >= 1, got {max_channels}")
    ncols = min(max_channels, max(len(k) for k in kernels.values()))
    nrows = len(kernels)
    # A fixed layout: the constrained layout engine takes seconds on grids of a hundred panels and more.
    width, height = 0.9 * ncols + 3.4, 0.9 * nrows + 0.3
    figure = _new_figure(width, height, layout=None)
    left, right = 1.9 / width, 1 - 1.5 / width
    figure.subplots_adjust(left=left, right=right, bottom=0.1 / height, top=1 - 0.1 / height, wspace=0.1, hspace=0.1)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    image = None
    for row, (name, layer) in zip(axes, kernels.items(), strict=False):
        layer = np.asarray(layer, dtype=np.float64)
        for column, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(layer):
                ax.set_axis_off()
                continue
            kernel = layer[column].reshape(-1, layer.shape[-1])
            bound = float(np.abs(kernel).max()) or 1.0
            # Each filter is shown divided by its own max|w|, so one colour bar in [-1, 1] reads every panel.
            image = ax.imshow(kernel / bound, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
        kh, kw = layer.shape[-2] if layer.ndim == 3 else 1, layer.shape[-1]
        row[0].set_ylabel(f"{name}\n{kh}x{kw}", rotation=0, ha="right", va="center", fontsize=7)
    bar_height = min(0.8, 2.5 / height)
    cax = figure.add_axes((right + 0.15 / width, 0.5 - bar_height / 2, 0.12 / width, bar_height))
    bar = figure.colorbar(image, cax=cax)
    bar.set_ticks([-1.0, 0.0, 1.0], labels=["-max|w|", "0", "+max|w|"])
    bar.set_label("w / max|w| of each filter", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return figure


def plot_kernel_grid(kernels: Mapping[str, np.ndarray], path: str | Path, *, max_channels: int = 16) -> Path:
    """Writes a grid of kernels: one row per layer, one panel per filter, blue-white-red around 0, with a colour bar.

    Each panel has its own symmetric colour range (``+-max|w|`` of that filter), so the shape of small filters shows;
    the colour bar therefore reads in units of each filter's own ``max|w|`` (the magnitudes are in ``filters.json``).

    Args:
        kernels: ``{layer name: (N, kh, kw) array}`` (e.g. from ``filters.depthwise_kernels``).
        path: Output file.
        max_channels: Filters shown per layer (the first ones).

    Returns:
        The written path.
    """
    return _save(kernel_grid_figure(kernels, max_channels=max_channels), path)


def _split_of(key: str) -> str:
    return key.split("_", 1)[0]


def training_curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Loss and metric curves of a run's history: losses on the left, the other metrics on the right.

    Every split has one colour in both panels (:data:`SPLIT_COLOURS`: train blue, validation orange), and the metrics
    of one split in a panel differ by line style, so a colour never changes meaning between panels.

    Args:
        history: One mapping per epoch with ``epoch`` and keys such as ``train_loss``, ``val_loss``,
            ``val_accuracy``, ``train_accuracy`` (what ``metrics.csv`` holds).

    Returns:
        The figure, or ``None`` when matplotlib is not installed or the history is empty.
    """
    if not history:
        return None
    try:
        figure = _new_figure(5.0, 3.5)
    except ImportError:
        return None
    from matplotlib.ticker import MaxNLocator

    last = history[-1]
    epochs = [row["epoch"] for row in history]
    losses = [k for k in ("train_loss", "val_loss") if k in last]
    metrics = [k for k in last if k.startswith("val_") and k != "val_loss"]
    if metrics and "train_accuracy" in last:
        metrics.append("train_accuracy")
    figure.set_size_inches(10.0 if metrics else 5.0, 3.5)
    axes = np.atleast_1d(figure.subplots(1, 1 + bool(metrics)))
    for ax, keys in zip(axes, (losses, metrics), strict=False):
        used: dict[str, int] = {}
        for key in keys:
            split = _split_of(key)
            style = _METRIC_STYLES[used.get(split, 0) % len(_METRIC_STYLES)]
            used[split] = used.get(split, 0) + 1
            values = [np.nan if row.get(key) is None else float(row[key]) for row in history]
            ax.plot(epochs, values, label=key, marker="o", color=SPLIT_COLOURS.get(split, "tab:gray"), linestyle=style)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if keys:
            ax.legend()
    return figure


def training_curves_png(history: Sequence[Mapping[str, Any]]) -> bytes | None:
    """:func:`training_curves_figure` as PNG bytes (for an atomic write by the caller), or ``None`` without matplotlib."""
    figure = training_curves_figure(history)
    if figure is None:
        return None
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
