"""Every family's smallest variant trained the same way on three built-in tasks, side by side (issue 5).

Run (about 55 min on one thread with RepLKNet-31B trained on the time-series task; tables as in docs/families.md)::

    OMP_NUM_THREADS=1 python benchmarks/bench_families.py --train-31b-on timeseries --out /tmp/bench_families.md

For each task (an image, an audio and a time-series set) every family is trained through the real engine
(``lkconv.engine.trainer.train``) with the task's one recipe: same epochs, batch size, learning rate and schedule,
warm-up, label smoothing, drop path (0) and seed for every family. Per (family, task) the script records:

* validation accuracy of the final weights (the last epoch's evaluation),
* parameters of the whole model (modality adapter + backbone), training and deploy structure,
* MACs of one sample in the deploy structure, counted with :func:`lkconv.analysis.complexity.count_macs` on the
  ``meta`` device (where every block takes its plain module path, so no pointwise layer is missed); the sequence
  models cannot run on ``meta`` (FFT) and are counted on the CPU, their sequence-long convolutions as the
  multiply-adds of the equivalent direct convolution (C·L² per bidirectional layer) — the FFT does fewer,
* inference throughput in samples/s at batch 16: the trained model (adapter + backbone, re-parameterized into its
  deploy structure, eval mode, ``torch.no_grad``) on a batch of real validation samples, all families of a task
  timed round-robin in one process (:func:`_timing.interleaved_medians`), median of ``--repeats``,
* training wall time and process CPU time (training and the final evaluation, as ``train`` runs them).

RepLKNet's smallest registered variant, 31B (79 M parameters), costs ~18 s per training step of 32 samples on one
thread at 32×32, two orders of magnitude more than UniRepLKNet-A (2+ hours for the image or audio recipe), so by
default it is not trained (``--train-31b-on TASK ...`` trains it; on the small time-series set that takes ~13 min): its
row then has the parameters, MACs, throughput and the measured seconds per training step with the projected time.
The trained RepLKNet row is the same architecture (kernels 31-29-27-13 with the 5×5 branch, RepLK blocks + ConvFFNs)
at UniRepLKNet-A's widths and depths (40-80-160-320, 2-2-6-2).

The 2-D families read each task's 2-D map (image; log-mel map; Gramian angular fields of the series). The sequence
models read sequences: the series itself (time-series ``mapping: sequence``), the log-mel map as a sequence of
frames with the mel bins as channels, and an image as a sequence of columns with the rows as channels.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_medians, machine_description  # noqa: E402

from lkconv.analysis.complexity import count_macs, count_params  # noqa: E402
from lkconv.modalities import build_data  # noqa: E402
from lkconv.engine.config import TrainConfig  # noqa: E402
from lkconv.engine.recipe import resolve_recipe  # noqa: E402
from lkconv.engine.run_dir import load_run  # noqa: E402
from lkconv.engine.model import build_model_for_data  # noqa: E402
from lkconv.engine.trainer import train  # noqa: E402
from lkconv.layers.longconv import LongConv  # noqa: E402
from lkconv.layers.sgconv import SGConv  # noqa: E402
from lkconv.modalities import build_adapter  # noqa: E402
from lkconv.models import create_model, reparameterize_model  # noqa: E402

__all__ = ["Family", "Task", "FAMILIES", "TASKS", "REPLKNET_31B", "run_task", "macs_per_sample", "main"]


@dataclass(frozen=True)
class Family:
    label: str
    model: str
    model_args: dict = field(default_factory=dict)
    sequence: bool = False  # reads (B, C, L) sequences instead of 2-D maps
    train_on: tuple[str, ...] | None = None  # tasks it is trained on (None: all); on the others only parameters,
    # MACs, throughput and the measured cost of a training step are reported


@dataclass(frozen=True)
class Task:
    name: str
    config: dict  # TrainConfig keys shared by every family (data, modality, epochs, batch_size, lr, ...)
    map_args: dict = field(default_factory=dict)  # modality_args of the 2-D families
    sequence_args: dict = field(default_factory=dict)  # modality_args of the sequence models
    notes: str = ""


A_SIZE = {"dims": [40, 80, 160, 320], "depths": [2, 2, 6, 2]}
FAMILIES = [
    Family("UniRepLKNet-A", "unireplknet_a"),
    Family("UniRepLKNet-A + DCLS", "unireplknet_a_dcls"),
    Family("RepLKNet-31 (A-size)", "replknet_31b", A_SIZE),
    Family("InceptionNeXt-atto", "inception_next_atto"),
    Family("LSNet-T", "lsnet_t"),
    Family("SGConvNet-tiny", "sgconvnet_tiny", sequence=True),
    Family("LongConvNet-tiny", "longconvnet_tiny", sequence=True),
]
REPLKNET_31B = Family("RepLKNet-31B", "replknet_31b", train_on=())

# One recipe per task; only the families change. Drop path is 0 for all (the recipe's default depends on the
# model's size suffix, which would differ between families).
_COMMON = {"label_smoothing": 0.1, "drop_path_rate": 0.0, "weight_decay": 0.05, "seed": 0, "progress": False}
TASKS = {
    "image": Task(
        "image",
        {**_COMMON, "data": "builtin:fashion-mnist", "modality": "image", "img_size": 32, "max_train_samples": 3000,
         "max_val_samples": 1000, "epochs": 5, "batch_size": 32, "lr": 2e-3, "warmup_epochs": 0.5, "eval_every": 5},
        notes="Fashion-MNIST, 3000 train / 1000 test images (seeded subsets), 32×32, 10 classes",
    ),
    "audio": Task(
        "audio",
        {**_COMMON, "data": "builtin:keywords", "modality": "audio", "epochs": 5, "batch_size": 32, "lr": 2e-3,
         "warmup_epochs": 0.5, "eval_every": 5},
        map_args={"clip_seconds": 1.0, "num_mel_bins": 64, "freq_mask": 16, "time_mask": 20, "time_shift": 10,
                  "noise": 0.1},
        notes="keywords (10 spoken words), all 1620 train clips / 400 clips of unheard voices, 64 mel × 98 frames",
    ),
    "timeseries": Task(
        "timeseries",
        {**_COMMON, "data": "builtin:gunpoint", "modality": "timeseries", "epochs": 40, "batch_size": 16,
         "lr": 1e-3, "warmup_epochs": 4, "eval_every": 40},
        map_args={"mapping": "gaf", "map_size": 64},
        sequence_args={"mapping": "sequence"},
        notes="GunPoint (UCR), 50 train / 150 test series of length 150, 2 classes; 2-D: GAF 3×64×64",
    ),
}


def _config(task: Task, family: Family, out: Path, in_chans: int | None) -> TrainConfig:
    margs = dict(task.map_args)
    if family.sequence:
        margs.update(task.sequence_args)
    model_args = dict(family.model_args)
    if family.sequence and in_chans is not None:
        model_args["in_chans"] = in_chans
    return TrainConfig.from_dict({**task.config, "model": family.model, "model_args": model_args,
                                  "modality_args": margs, "out": str(out)})


def _data_shapes(cfg: TrainConfig):
    """The data bundle and the adapter's output shape for one sample (what the backbone reads)."""
    data = build_data(cfg)
    adapter = build_adapter(data.adapter, **data.adapter_args)
    return data, adapter.output_shape((1, *data.raw_shape))[1:]


def _global_conv_macs(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Direct-convolution MACs of the sequence-long (FFT) convolutions, which module hooks do not see."""
    total = 0

    def hook(m, args, out):
        nonlocal total
        u = args[0]
        b, c, length = u.shape
        total += b * c * (length * length if m.bidirectional else length * (length + 1) // 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (SGConv, LongConv))]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
    return total


def macs_per_sample(family: Family, in_shape: tuple[int, ...], num_classes: int) -> int:
    """MACs of one sample in the deploy structure: on ``meta`` for 2-D families, on the CPU for sequence models."""
    args = {**family.model_args, "num_classes": num_classes, "in_chans": in_shape[0]}
    if family.sequence:
        model = create_model(family.model, **{**args, "in_chans": math.prod(in_shape[:-1])})
        x = torch.zeros(1, *in_shape)
        return count_macs(model, x) + _global_conv_macs(model, x)
    with torch.device("meta"):
        try:
            model = create_model(family.model, deploy=True, **args)
        except TypeError:
            model = create_model(family.model, **args)
        return count_macs(model, torch.empty(1, *in_shape))


def _train_step_seconds(model: torch.nn.Module, batch: torch.Tensor, target: torch.Tensor, steps: int = 1) -> float:
    """Thread CPU seconds of one AdamW training step (after one warm-up step)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 1):
        t0 = time.thread_time()
        loss = torch.nn.functional.cross_entropy(model(batch), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.thread_time() - t0)
    return sorted(times)[len(times) // 2]


def _final_accuracy(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_accuracy")]
    return float(rows[-1]["val_accuracy"])


def _raw_batch(dataset, n: int) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])


def run_task(task: Task, families: list[Family], runs: Path, *, repeats: int = 10, batch: int = 16,
             clock: str = "thread", log=print) -> list[dict[str, Any]]:
    """Trains every family on ``task``, then measures them side by side; one row per family."""
    runs.mkdir(parents=True, exist_ok=True)
    probe = _config(task, Family("probe", "unireplknet_a"), runs / "_probe", None)
    data, map_shape = _data_shapes(probe)
    seq_cfg = _config(task, Family("probe", "sgconvnet_tiny", sequence=True), runs / "_probe", None)
    seq_shape = _data_shapes(seq_cfg)[1] if any(f.sequence for f in families) else None
    num_classes = len(data.class_names)
    x = _raw_batch(data.val, batch)
    rows, models = [], {}
    for i, fam in enumerate(families):
        shape = seq_shape if fam.sequence else map_shape
        in_chans = math.prod(shape[:-1]) if fam.sequence else None
        out = runs / f"{task.name}-{i}-{fam.model}"
        cfg = _config(task, fam, out, in_chans)
        row: dict[str, Any] = {"task": task.name, "family": fam.label, "model": fam.model,
                               "model_args": fam.model_args, "input": list(shape)}
        if fam.train_on is None or task.name in fam.train_on:
            if out.exists():
                shutil.rmtree(out)
            log(f"== {task.name}: training {fam.label}", flush=True)
            w0, c0 = time.perf_counter(), time.process_time()
            train(cfg)
            row["train_wall_s"], row["train_cpu_s"] = time.perf_counter() - w0, time.process_time() - c0
            row["val_accuracy"] = _final_accuracy(out)
            model = load_run(out)
        else:
            model, _ = build_model_for_data(cfg, data, resolve_recipe(cfg))
            target = torch.randint(0, num_classes, (task.config["batch_size"],))
            xb = _raw_batch(data.train, task.config["batch_size"])
            row["train_step_s"] = _train_step_seconds(model, xb, target)
            steps = len(data.train) // task.config["batch_size"]
            row["projected_train_cpu_s"] = row["train_step_s"] * steps * task.config["epochs"]
            row["val_accuracy"] = None
        row["params_train"] = count_params(model)
        model.eval()
        reparameterize_model(model)
        row["params_deploy"] = count_params(model)
        row["macs"] = macs_per_sample(fam, shape, num_classes)
        models[fam.label] = model
        rows.append(row)
        log(json.dumps({k: v for k, v in row.items() if k != "model_args"}), flush=True)
    log(f"== {task.name}: throughput, batch {len(x)}, {repeats} interleaved repeats", flush=True)
    with torch.no_grad():
        fns = {k: (lambda m=m: m(x)) for k, m in models.items()}
        med = interleaved_medians(fns, repeats=repeats, warmup=1, clock=clock)
    for row in rows:
        row["samples_per_s"] = len(x) / med[row["family"]]
        row["batch"] = len(x)
    return rows


# --- report ----------------------------------------------------------------------------------------------------
def _fmt_time(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def format_tables(rows: list[dict], tasks: dict[str, Task]) -> str:
    lines = []
    for name, task in tasks.items():
        trs = [r for r in rows if r["task"] == name]
        if not trs:
            continue
        c = TrainConfig.from_dict({"model": trs[0]["model"], **task.config, "out": "-"})
        rec = resolve_recipe(c)
        lines += [f"### {name}: {task.notes}", "",
                  f"{c.epochs} epochs, batch {c.batch_size}, AdamW lr {rec['lr']:g} (cosine, {rec['warmup_epochs']:g} "
                  f"warm-up epochs), weight decay {c.weight_decay:g}, label smoothing {c.label_smoothing:g}, "
                  f"drop path {rec['drop_path_rate']:g}, seed {c.seed}.", "",
                  "| family | model | input | val acc | params train / deploy | MACs / sample | samples/s (b16) | "
                  "train wall (CPU) |", "|---|---|---|---|---|---|---|---|"]
        for r in trs:
            acc = f"{100 * r['val_accuracy']:.2f} %" if r["val_accuracy"] is not None else "not trained"
            if r.get("train_wall_s") is not None:
                t = f"{_fmt_time(r['train_wall_s'])} ({_fmt_time(r['train_cpu_s'])})"
            else:
                t = f"{r['train_step_s']:.1f} s / step → ~{_fmt_time(r['projected_train_cpu_s'])} CPU (projected)"
            model = r["model"] + (" (40-80-160-320, 2-2-6-2)" if r["model_args"] else "")
            lines.append(f"| {r['family']} | `{model}` | {'×'.join(map(str, r['input']))} | {acc} | "
                         f"{r['params_train'] / 1e6:.3f}M / {r['params_deploy'] / 1e6:.3f}M | {r['macs'] / 1e6:.1f}M | "
                         f"{r['samples_per_s']:.1f} | {t} |")
        lines.append("")
    fams = list(dict.fromkeys(r["family"] for r in rows))
    names = [n for n in tasks if any(r["task"] == n for r in rows)]
    lines += ["### Accuracy side by side", "", "| family | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for f in fams:
        cells = []
        for n in names:
            r = next((r for r in rows if r["task"] == n and r["family"] == f), None)
            cells.append("–" if r is None or r["val_accuracy"] is None else f"{100 * r['val_accuracy']:.2f} %")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--families", nargs="+", help="model names to keep (default: all)")
    ap.add_argument("--runs", default="runs/bench_families")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["wall", "thread"], default="thread",
                    help="thread: the calling thread's CPU time (immune to preemption; needs --threads 1)")
    ap.add_argument("--no-31b", action="store_true", help="skip the (untrained) RepLKNet-31B row")
    ap.add_argument("--train-31b-on", nargs="+", default=[], choices=list(TASKS), metavar="TASK",
                    help="also train RepLKNet-31B on these tasks (timeseries: ~11 min; image, audio: hours)")
    ap.add_argument("--quick", action="store_true", help="1 epoch on 64 samples: checks the pipeline, no result")
    ap.add_argument("--json", help="write the rows here (after every task)")
    ap.add_argument("--out", help="write the markdown tables here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    fams = [f for f in FAMILIES if not args.families or f.model in args.families]
    if not args.no_31b:
        fams.append(Family(REPLKNET_31B.label, REPLKNET_31B.model, train_on=tuple(args.train_31b_on)))
    a_macs = macs_per_sample(Family("A", "unireplknet_a"), (3, 224, 224), 1000)  # the counter's sanity check
    tasks = {n: TASKS[n] for n in args.tasks}
    if args.quick:  # a check of the whole pipeline in minutes, not a result
        tasks = {n: Task(n, {**t.config, "epochs": 1, "eval_every": 1, "warmup_epochs": 0.5, "max_train_samples": 64,
                             "max_val_samples": 32}, t.map_args, t.sequence_args, t.notes + " (--quick)")
                 for n, t in tasks.items()}
    t0 = time.perf_counter()
    rows, load0 = [], os.getloadavg()
    for name, task in tasks.items():
        new = run_task(task, fams, Path(args.runs), repeats=args.repeats, clock=args.clock)
        rows += new
        for r in new:
            print(json.dumps({k: v for k, v in r.items() if k != "model_args"}), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    total = time.perf_counter() - t0
    text = "\n".join([
        f"Machine: {machine_description()}; clock: {args.clock}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        f"Total wall time: {total / 60:.1f} min; load average (1 min) {load0[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. MAC counter check: unireplknet_a deploy at 224 = "
        f"{a_macs / 1e9:.3f} GMACs (reference 0.6).", "", format_tables(rows, tasks)])
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
