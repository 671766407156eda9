"""The results page of the universal-perception issue: every recipe in benchmarks/recipes/, trained and evaluated,
checked against its target, and written as one markdown page (docs/modalities.md) with the exact commands.

Two ways to produce a row:

* **train** (default): ``lkconv train --config RECIPE`` into ``RUNS/NAME`` (an existing directory there is replaced),
  then ``lkconv eval``; the wall time of training is measured here and saved as ``bench.json`` in the run directory.
* **collect** (``--collect``): no training; the row is read from an existing run directory of the recipe
  (``RUNS/NAME``, or ``--run-dir NAME=PATH``): its ``metrics.json`` (``lkconv eval``; evaluated here when missing),
  its parameters (the model rebuilt from ``config.json``) and its wall time: ``bench.json`` when the run was trained
  by this script, else the run directory's file times (``config.yaml`` is written when training starts, ``last.pt``
  after the last epoch, so the difference is the training time less the few seconds of start-up). The run's
  resolved ``config.yaml`` is compared with the recipe; any difference is printed in the row.

Run (one torch thread: on a shared CPU, more threads made training many times slower)::

    OMP_NUM_THREADS=1 python benchmarks/bench_modalities.py --runs runs/modalities --out docs/modalities.md
    OMP_NUM_THREADS=1 python benchmarks/bench_modalities.py --collect --runs /tmp/runs \\
        --run-dir cgal-shapes=/tmp/runs/pc_T_learned12 --out docs/modalities.md
    python benchmarks/bench_modalities.py --only gunpoint airline ...   # a subset of the recipes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import machine_description  # noqa: E402

from lkconv.engine.config import TrainConfig, load_config  # noqa: E402
from lkconv.engine.evaluate import evaluate_run, run_train_config  # noqa: E402
from lkconv.engine.model import build_model  # noqa: E402
from lkconv.engine.run_dir import RunDir  # noqa: E402

# recipe name -> (metric, comparison, threshold); "< seasonal-naive" compares the MAE with the seasonal-naive MAE
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
# fields of the resolved config that do not change what is trained
_IGNORED_FIELDS = ("out", "progress", "resume", "tensorboard", "num_workers")


def count_params(run_dir: Path) -> int:
    """Parameters of the run's model (adapter + backbone, training structure), rebuilt from ``config.json``."""
    model = build_model(RunDir(run_dir).model_config())
    return sum(p.numel() for p in model.parameters())


def config_differences(recipe: TrainConfig, run: TrainConfig) -> list[str]:
    """``key: recipe value -> run value`` for every field that differs (ignoring out, progress, ...). A field the
    recipe leaves to the automatic recipe (None) is not a difference: the run records the value chosen for it."""
    a, b = recipe.to_dict(), run.to_dict()

    def same(k: str) -> bool:  # modality_args keys the recipe leaves out are the automatic recipe's (augmentation)
        if k == "modality_args" and isinstance(b.get(k), dict):
            return all(k2 in b[k] and b[k][k2] == v for k2, v in a[k].items())
        return a[k] == b.get(k)

    return [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in a
            if k not in _IGNORED_FIELDS and a[k] is not None and not same(k)]


def same_data(recipe: TrainConfig, run: TrainConfig) -> bool:
    """Whether two configurations give the same data and adapter: the same adapter arguments, preprocessing, class
    names and split sizes, and equal first and last training and validation samples (for configurations that spell
    out different ``modality_args`` with the same effect, e.g. a recipe that writes out the defaults)."""
    from lkconv.modalities import build_data

    try:
        a, b = build_data(recipe), build_data(run)
    except Exception:  # noqa: BLE001 - a configuration that cannot build data is not the same
        return False
    import torch

    from lkconv.modalities import build_adapter

    def adapter_config(bundle) -> dict[str, Any]:  # the adapter's full arguments, defaults included
        return build_adapter(bundle.adapter, **bundle.adapter_args).config()

    if (a.adapter, a.raw_shape, a.class_names, a.task, a.preprocessing) != (
            b.adapter, b.raw_shape, b.class_names, b.task, b.preprocessing) or adapter_config(a) != adapter_config(b):
        return False

    for da, db in ((a.train, b.train), (a.val, b.val)):
        if (da is None) != (db is None) or (da is not None and len(da) != len(db)):
            return False
        if da is None or not len(da):
            continue
        for k in (0, len(da) - 1):
            (xa, ya), (xb, yb) = da[k], db[k]
            if not (torch.equal(xa, xb) and torch.equal(ya, yb)):
                return False
    return True


def judge(name: str, metrics: dict[str, Any]) -> tuple[str, Any, str, bool | None]:
    """``(metric, value, target text, met)`` of a recipe's ``metrics.json``."""
    metric, op, threshold = TARGETS.get(name, ("accuracy", ">=", None))
    value = metrics.get(metric)
    if op == "< seasonal-naive":
        ref = metrics.get("baselines", {}).get("seasonal_naive", {}).get("mae")
        met = value is not None and ref is not None and value < ref
        target = f"MAE < seasonal naive ({ref:.2f})" if ref is not None else "MAE < seasonal naive"
        return metric, value, target, met
    if threshold is None:
        return metric, value, "– (smoke test)", None
    return metric, value, f"≥ {threshold:.0%}", value is not None and value >= threshold


def file_time_seconds(run_dir: Path) -> float:
    """Training wall time from the run directory's file times (config.yaml at the start, last.pt at the end)."""
    return (run_dir / "last.pt").stat().st_mtime - (run_dir / "config.yaml").stat().st_mtime


def make_row(name: str, recipe_path: Path, run_dir: Path, cfg: TrainConfig, *, produced: str,
             train_seconds: float | None, wall_source: str, evaluate: bool) -> dict[str, Any]:
    metrics_path = run_dir / "metrics.json"
    if evaluate or not metrics_path.is_file():
        metrics = evaluate_run(run_dir)
    else:
        metrics = json.loads(metrics_path.read_text())
    metric, value, target, met = judge(name, metrics)
    run_cfg = run_train_config(run_dir)
    differences = config_differences(cfg, run_cfg)
    equivalent = bool(differences) and all(d.startswith("modality_args:") for d in differences) and same_data(
        cfg, run_cfg)
    return {
        "recipe": name, "recipe_path": str(recipe_path), "run_dir": str(run_dir), "modality": run_cfg.modality,
        "data": run_cfg.data, "model": run_cfg.model, "custom_model": bool(run_cfg.model_args),
        "params": count_params(run_dir), "epochs": run_cfg.epochs, "train_seconds": train_seconds,
        "wall_source": wall_source, "metric": metric, "value": value, "num_samples": metrics.get("num_samples"),
        "baselines": metrics.get("baselines"), "target": target, "met": met, "produced": produced,
        "config_differences": differences, "equivalent_config": equivalent, "weights": metrics.get("weights", "model"),
    }


def train_recipe(name: str, path: Path, runs: Path) -> dict[str, Any]:
    from lkconv.engine.trainer import train

    out = runs / name
    cfg = load_config(path, {"out": str(out), "progress": False})
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    (out / "bench.json").write_text(json.dumps({
        "train_seconds": wall, "machine": machine_description(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "recipe": str(path)}, indent=2) + "\n")
    return make_row(name, path, out, cfg, produced="trained by this script", train_seconds=wall,
                    wall_source="measured", evaluate=True)


def collect_recipe(name: str, path: Path, run_dir: Path) -> dict[str, Any]:
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "model.safetensors").is_file():
        return {"recipe": name, "recipe_path": str(path), "run_dir": str(run_dir), "missing": True}
    cfg = load_config(path, {"out": str(run_dir)})
    bench = run_dir / "bench.json"
    if bench.is_file():
        wall, source = json.loads(bench.read_text())["train_seconds"], "measured"
    else:
        wall, source = file_time_seconds(run_dir), "file times"
    return make_row(name, path, run_dir, cfg, produced="collected from the run directory", train_seconds=wall,
                    wall_source=source, evaluate=False)


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.0f} K"


def _fmt_wall(seconds: float | None, source: str) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(int(round(seconds)), 60)
    text = f"{m} min {s:02d} s" if m else f"{s} s"
    return text + ("¹" if source == "file times" else "")


def _fmt_value(row: dict[str, Any]) -> str:
    v = row["value"]
    if v is None:
        return "–"
    if row["metric"] == "accuracy":
        return f"accuracy **{v:.2%}** ({row['num_samples']})"
    text = f"{row['metric'].upper()} **{v:.2f}**"
    base = row.get("baselines") or {}
    if row["metric"] == "mae" and base:
        text += f" (naive {base['naive']['mae']:.2f}, seasonal naive {base['seasonal_naive']['mae']:.2f})"
    return text


def format_page(rows: list[dict[str, Any]], *, machine: str, command: str) -> str:
    lines = [
        "# Universal perception: results",
        "",
        "One UniRepLKNet backbone trained on images, audio, time series, point clouds and video, each turned into a",
        "C×H×W map by its modality adapter. Every row is one recipe of `benchmarks/recipes/` (the YAML file is the",
        "whole configuration), evaluated with `lkconv eval` on the set's held-out split. This page is written by",
        "`benchmarks/bench_modalities.py`; the detailed pages describe the adapters, the data and the comparisons",
        "behind each recipe:",
        "",
        "* [audio and time series](modalities_audio_timeseries.md) (keywords, sonic-samples, UCR sets, airline;",
        "  which time-series mapping is better),",
        "* [point clouds and video](modalities_pointcloud_video.md) (cgal-shapes, moving-fashion; learned vs depth",
        "  projection, the three video layouts),",
        "* [images](modalities_image.md) (Fashion-MNIST: model size, image side and epochs against accuracy and",
        "  CPU time).",
        "",
        f"Machine: {machine}. Command that wrote this page:",
        "",
        "```sh",
        command,
        "```",
        "",
        "| recipe | data | model (params) | epochs | train wall | result | target | met? | row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['recipe']} | – | – | – | – | no run directory at `{r['run_dir']}` | "
                         f"{TARGETS.get(r['recipe'], ('', '', None))[2] or '–'} | not run | – |")
            continue
        model = r["model"] + (" (narrowed, `model_args`)" if r["custom_model"] else "")
        met = {True: "**yes**", False: "no", None: "–"}[r["met"]]
        how = "trained" if r["produced"].startswith("trained") else "collected"
        if r["config_differences"]:
            if r["equivalent_config"]:
                notes.append(f"* {r['recipe']}: the run's `modality_args` are written differently from the recipe's "
                             "but give the same data and adapter (same adapter configuration, preprocessing and split "
                             "sizes, equal first and last samples; checked): " + "; ".join(r["config_differences"]))
            else:
                notes.append(f"* {r['recipe']}: the run differs from the recipe: " + "; ".join(r["config_differences"]))
            how += " ²"
        lines.append(f"| {r['recipe']} | `{r['data']}` | {model}, {_fmt_params(r['params'])} | {r['epochs']} | "
                     f"{_fmt_wall(r['train_seconds'], r['wall_source'])} | {_fmt_value(r)} | {r['target']} | {met} | "
                     f"{how} |")
    lines += [
        "",
        "*row*: **trained** — trained and evaluated by this script in this invocation (wall time measured around",
        "`train`); **collected** — read from an existing run directory of the recipe (`metrics.json` of",
        "`lkconv eval`; parameters counted on the model rebuilt from the run's `config.json`; the run's resolved",
        "`config.yaml` checked against the recipe). Parameters: adapter + backbone in the training structure (before",
        "re-parameterisation).",
        "¹ wall time from the run directory's file times (`config.yaml` written when training starts, `last.pt` after",
        "the last epoch): the training time less the few seconds of start-up. Wall times depend on the machine's load",
        "while each run trained (the machine line above is the one that wrote this page); compare them only roughly.",
    ]
    if notes:
        lines += ["", "² the run directory's configuration is not written as the recipe file is:", ""] + notes
    else:
        lines += ["", "Every run's configuration equals its recipe file."]
    lines += ["", "## Commands", "", "Each recipe by hand (one torch thread; the run directory is any path):", "",
              "```sh", "export OMP_NUM_THREADS=1"]
    for r in rows:
        run = f"runs/{r['recipe']}"
        lines.append(f"lkconv train --config {_rel(r['recipe_path'])} --out {run} && lkconv eval --run {run}")
    total = sum(r["train_seconds"] or 0 for r in rows if not r.get("missing"))
    lines += ["```", "",
              "All recipes at once, re-training each one and rewriting this page (the runs above took "
              f"{total / 3600:.1f} h of training in total):", "",
              "```sh", "OMP_NUM_THREADS=1 python benchmarks/bench_modalities.py --runs runs/modalities "
              "--out docs/modalities.md", "```", "",
              "Data: `lkconv data list` shows what is installed; `make data` (or `lkconv data prepare NAME`) installs",
              "the built-in sets (see the detailed pages for the apt packages they read).", ""]
    return "\n".join(lines)


def _rel(path: str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=str(Path(__file__).parent / "recipes"), help="folder of recipe YAML files")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these recipes (file names without .yaml)")
    ap.add_argument("--runs", default="runs/bench_modalities", help="run directories: RUNS/NAME")
    ap.add_argument("--collect", action="store_true",
                    help="do not train: read each row from an existing run directory of the recipe")
    ap.add_argument("--run-dir", action="append", default=[], metavar="NAME=PATH",
                    help="with --collect: the run directory of recipe NAME, when it is not RUNS/NAME")
    ap.add_argument("--out", help="write the markdown page here (e.g. docs/modalities.md)")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.run_dir:
        name, sep, path = item.partition("=")
        if not sep:
            ap.error(f"--run-dir expects NAME=PATH, got {item!r}")
        overrides[name] = Path(path)
    paths = sorted(Path(args.recipes).glob("*.yaml"))
    if args.only:
        unknown = sorted(set(args.only) - {p.stem for p in paths})
        if unknown:
            ap.error(f"no recipe named {unknown} in {args.recipes}")
        paths = [p for p in paths if p.stem in args.only]
    rows = []
    for p in paths:
        print(f"== {p.stem}", flush=True)
        if args.collect:
            rows.append(collect_recipe(p.stem, p, overrides.get(p.stem, Path(args.runs) / p.stem)))
        else:
            rows.append(train_recipe(p.stem, p, Path(args.runs)))
        print(json.dumps(rows[-1]), flush=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = "OMP_NUM_THREADS=" + threads + " " if threads else ""
    command += "python benchmarks/bench_modalities.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = format_page(rows, machine=machine_description(), command=command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
