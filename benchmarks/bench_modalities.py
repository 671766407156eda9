"""Trains and evaluates every recipe in benchmarks/recipes/ and checks the issue's targets.

Run: ``python benchmarks/bench_modalities.py [--only NAME ...] [--runs DIR] [--out docs/modalities.md]``

Each recipe is a TrainConfig YAML (``lkconv train --config``). The script records the model, epochs, wall time
of training, the evaluation metric of ``lkconv eval`` and whether the target is met, and writes a markdown table
with the exact commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _timing import machine_description  # noqa: E402

from lkconv.engine.config import load_config  # noqa: E402
from lkconv.engine.evaluate import evaluate_run  # noqa: E402
from lkconv.engine.trainer import train  # noqa: E402

# recipe name -> (metric, comparison, threshold); "baseline" compares MAE with seasonal-naive
TARGETS = {
    "fashion-mnist": ("accuracy", ">=", 0.92),
    "keywords": ("accuracy", ">=", 0.95),
    "gunpoint": ("accuracy", ">=", 0.95),
    "italypowerdemand": ("accuracy", ">=", 0.95),
    "arrowhead": ("accuracy", ">=", 0.80),
    "airline": ("mae", "< seasonal-naive", None),
    "cgal-shapes": ("accuracy", ">=", 0.95),
    "moving-fashion": ("accuracy", ">=", 0.95),
}


def run_recipe(path: Path, runs: Path) -> dict:
    name = path.stem
    out = runs / name
    cfg = load_config(path, {"out": str(out), "progress": False})
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    metrics = evaluate_run(out)
    metric, op, threshold = TARGETS.get(name, ("accuracy", ">=", None))
    value = metrics.get(metric)
    if op == "< seasonal-naive":
        ref = metrics.get("baselines", {}).get("seasonal_naive", {}).get("mae")
        met = value is not None and ref is not None and value < ref
        target = f"MAE < seasonal-naive ({ref:.3f})" if ref is not None else "MAE < seasonal-naive"
    else:
        met = None if threshold is None else value >= threshold
        target = f"{metric} >= {threshold}" if threshold is not None else "–"
    return {"recipe": name, "model": cfg.model, "epochs": cfg.epochs, "train_seconds": wall, "metric": metric,
            "value": value, "target": target, "met": met, "command": f"lkconv train --config {path} --out {out}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=str(Path(__file__).parent / "recipes"))
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--runs", default="runs/bench_modalities")
    ap.add_argument("--out")
    args = ap.parse_args()
    paths = sorted(Path(args.recipes).glob("*.yaml"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    rows = []
    for p in paths:
        print(f"== {p.stem}", flush=True)
        rows.append(run_recipe(p, Path(args.runs)))
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"Machine: {machine_description()}", "",
             "| recipe | model | epochs | train time | metric | value | target | met |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        val = f"{r['value']:.4f}" if isinstance(r["value"], float) else str(r["value"])
        lines.append(f"| {r['recipe']} | {r['model']} | {r['epochs']} | {r['train_seconds'] / 60:.1f} min | "
                     f"{r['metric']} | {val} | {r['target']} | {'yes' if r['met'] else 'no' if r['met'] is False else '–'} |")
    lines += ["", "Commands (then `lkconv eval --run RUN`):", ""] + [f"    {r['command']}" for r in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
