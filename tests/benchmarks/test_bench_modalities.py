"""bench_modalities: the results page collected from existing run directories, and the target checks."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_modalities as bm  # noqa: E402

TINY = "{depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], kernel_sizes: [[3], [7], [7], [7]]}"


def test_judge_targets():
    assert bm.judge("gunpoint", {"accuracy": 0.96}) == ("accuracy", 0.96, "≥ 95%", True)
    assert bm.judge("arrowhead", {"accuracy": 0.79})[3] is False
    base = {"naive": {"mae": 70.0}, "seasonal_naive": {"mae": 50.0, "season": 12}}
    assert bm.judge("airline", {"mae": 20.0, "baselines": base})[2:] == ("MAE < seasonal naive (50.00)", True)
    assert bm.judge("airline", {"mae": 55.0, "baselines": base})[3] is False
    assert bm.judge("some-smoke-set", {"accuracy": 0.4})[2:] == ("– (smoke test)", None)


def test_collect_reads_run_directories_and_flags_differences(tmp_path, one_thread):
    from lkconv.engine.config import load_config
    from lkconv.engine.evaluate import evaluate_run
    from lkconv.engine.run_dir import load_run
    from lkconv.engine.trainer import train

    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    t = np.linspace(0, 1, 32)
    X = np.sin(2 * np.pi * np.where(y == 0, 2.0, 5.0)[:, None] * t) + 0.1 * rng.standard_normal((24, 32))
    np.savez(tmp_path / "toy.npz", X=X[:, None].astype(np.float32), y=y)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    body = (f"data: {tmp_path / 'toy.npz'}\nmodality: timeseries\nmodel: unireplknet_a\nmodel_args: {TINY}\n"
            "batch_size: 8\nlr: 0.003\nval_split: 0.25\nseed: 0\nmodality_args: {mapping: gaf, map_size: 16}\n")
    (recipes / "toy.yaml").write_text(body + "epochs: 2\n")
    (recipes / "toy-longer.yaml").write_text(body + "epochs: 3\n")  # collected from toy's run: epochs differ
    (recipes / "absent.yaml").write_text(body + "epochs: 2\n")  # no run directory
    runs = tmp_path / "runs"
    run = train(load_config(recipes / "toy.yaml", {"out": str(runs / "toy"), "progress": False}))
    evaluate_run(run)
    page = tmp_path / "modalities.md"
    assert bm.main(["--collect", "--recipes", str(recipes), "--runs", str(runs), "--run-dir",
                    f"toy-longer={runs / 'toy'}", "--out", str(page)]) == 0
    text = page.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    params = sum(p.numel() for p in load_run(run).parameters())
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    toy = rows["toy"]
    assert "unireplknet_a (narrowed, `model_args`)" in toy and f"{params / 1e3:.0f} K" in toy
    assert "| 2 |" in toy and f"**{metrics['accuracy']:.2%}** (6)" in toy and toy.rstrip().endswith("| collected |")
    assert "¹" in toy  # wall time from the run directory's file times
    assert "collected ²" in rows["toy-longer"] and "toy-longer: the run differs from the recipe: epochs: 3 -> 2" in text
    assert "no run directory" in rows["absent"] and "not run" in rows["absent"]
    assert "lkconv train --config" in text and "## Commands" in text
