"""Figures: fixed train/val colours in both panels of curves.png, and a colour bar on the kernel grid (issue 14, #20)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from lkconv.analysis.plots import SPLIT_COLOURS, kernel_grid_figure, training_curves_figure, training_curves_png  # noqa: E402

HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10,
            "val_top5": 0.9, "train_accuracy": 0.6 + e / 10} for e in (1, 2, 3)]


def test_each_split_keeps_its_colour_in_both_panels():
    from matplotlib.colors import to_hex

    figure = training_curves_figure(HISTORY)
    loss_ax, metric_ax = figure.axes
    colours = {}
    for ax in (loss_ax, metric_ax):
        for line in ax.get_lines():
            colours.setdefault(line.get_label().split("_")[0], set()).add(to_hex(line.get_color()))
    assert colours == {"train": {to_hex(SPLIT_COLOURS["train"])}, "val": {to_hex(SPLIT_COLOURS["val"])}}
    styles = [line.get_linestyle() for line in metric_ax.get_lines() if line.get_label().startswith("val_")]
    assert len(set(styles)) == len(styles) == 2  # two val metrics in one panel: told apart by line style
    assert {line.get_label() for line in loss_ax.get_lines()} == {"train_loss", "val_loss"}


def test_curves_png_bytes_and_losses_only_history():
    png = training_curves_png([{"epoch": 1, "train_loss": 1.0, "val_loss": None}])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(training_curves_figure([{"epoch": 1, "train_loss": 1.0}]).axes) == 1
    assert training_curves_png([]) is None


def test_run_dir_writes_curves(tmp_path):
    from lkconv.engine.run_dir import RunDir

    assert RunDir(tmp_path).plot_curves(HISTORY) is True
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_kernel_grid_has_a_colour_bar_in_units_of_each_filters_max():
    rng = np.random.default_rng(0)
    kernels = {"a": rng.normal(size=(3, 5, 5)), "b": 100 * rng.normal(size=(2, 7, 7))}
    figure = kernel_grid_figure(kernels, max_channels=3)
    bars = [ax for ax in figure.axes if "max|w|" in ax.get_ylabel()]
    assert len(bars) == 1 and len(figure.axes) == 2 * 3 + 1
    images = [im for ax in figure.axes for im in ax.get_images()]
    assert len(images) == 5
    for im in images:  # every panel on the colour bar's scale: its own max |w| maps to +-1
        assert im.get_clim() == (-1.0, 1.0)
        assert np.isclose(np.abs(im.get_array()).max(), 1.0)
