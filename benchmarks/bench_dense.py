"""Dense prediction with the defaults (issue 16): ``lkconv train --task segment|detect --data builtin:... --out RUN``.

Why: the issue's targets are stated for what a user gets with no options on the built-in sets — mIoU >= 0.75 on
``builtin:fashion-on-photos`` and mAP@0.5 >= 0.75 on ``builtin:fashion-detect``, each within ~15 minutes on 2
cores. This script trains each with the defaults (plus whatever options follow ``--``), reads the run's
``metrics.csv`` (best and last validation metric, epochs), the wall time and the training process's peak RSS
(``os.wait4``), and writes a markdown page with the command, the machine line and the load.

Usage::

    python benchmarks/bench_dense.py --scratch /tmp/dense --out docs/dense.md
    python benchmarks/bench_dense.py --only segment -- --budget 20      # options after -- go to lkconv train
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import machine_description  # noqa: E402
from bench_defaults import run_train  # noqa: E402

#: task -> (built-in set, metric columns of metrics.csv to report, the target's column, the target)
SETS = {
    "segment": ("fashion-on-photos", ("val_miou", "val_pixel_accuracy"), "val_miou", 0.75),
    "detect": ("fashion-detect", ("val_map50", "val_map"), "val_map50", 0.75),
}


def read_columns(run: Path, columns: tuple[str, ...]) -> tuple[dict[str, tuple[float, float] | None], int]:
    """Best and last value of each column of ``metrics.csv`` (None when never written), and the epochs logged."""
    path = run / "metrics.csv"
    if not path.is_file():
        return {c: None for c in columns}, 0
    rows = list(csv.DictReader(path.read_text().splitlines()))
    out = {}
    for c in columns:
        vals = [float(r[c]) for r in rows if r.get(c) not in (None, "")]
        out[c] = (max(vals), vals[-1]) if vals else None
    return out, len(rows)


def page(rows: list[dict], command: str, load: str) -> str:
    lines = [
        "# Dense prediction with the defaults: results",
        "",
        f"Made by `benchmarks/bench_dense.py` on {datetime.date.today().isoformat()}: each built-in set trained with "
        "`lkconv train --task TASK --data builtin:SET --out RUN` and nothing else (the automatic recipe and its "
        "default time budget). Targets of issue 16: mIoU >= 0.75 (segmentation) and mAP@0.5 >= 0.75 (detection) "
        "within ~15 minutes on 2 cores.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {machine_description()}. Load average when the runs ended: {load} (other jobs shared the cores; "
        "wall times are upper bounds).",
        "",
        "| task | set | metric | best | last | target | met | epochs | wall s | peak RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for col in r["columns"]:
            v = r["values"].get(col)
            best, last = ("-", "-") if v is None else (f"{v[0]:.3f}", f"{v[1]:.3f}")
            is_target = col == r["target_col"]
            met = "-" if not is_target or v is None else ("yes" if v[0] >= r["target"] else "**no**")
            lines.append(f"| {r['task']} | {r['set']} | {col.removeprefix('val_')} | {best} | {last} | "
                         f"{r['target'] if is_target else ''} | {met} | {r['epochs']} | {r['wall']:.0f} | "
                         f"{r['rss']:.0f} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/lkconv-dense"))
    ap.add_argument("--only", nargs="+", choices=sorted(SETS), default=sorted(SETS, reverse=True))
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run before it is stopped")
    ap.add_argument("--out", type=Path, help="write the markdown page here (default: print it)")
    args = ap.parse_args(argv)
    rows = []
    for task in args.only:
        name, columns, target_col, target = SETS[task]
        run = args.scratch / f"{task}-{name}"
        res = run_train("image", Path(f"builtin:{name}"), run, ["--task", task, *extra], args.timeout)
        values, epochs = read_columns(run, columns)
        note = "" if res.rc == 0 else (f"stopped after {args.timeout:.0f} s" if res.rc < 0 else
                                       f"failed (rc {res.rc}): {res.error}")
        rows.append({"task": task, "set": name, "columns": columns, "values": values, "target_col": target_col,
                     "target": target, "epochs": epochs, "wall": res.wall_s, "rss": res.peak_rss_mb, "note": note})
        print(f"{task} {name}: {values} epochs {epochs} wall {res.wall_s:.0f} s rss {res.peak_rss_mb:.0f} MB {note}",
              flush=True)
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = f"{threads}PYTHONPATH=src python benchmarks/bench_dense.py " + " ".join(argv) + (
        " -- " + " ".join(extra) if extra else "")
    text = page(rows, command, " ".join(f"{x:.1f}" for x in os.getloadavg()))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
