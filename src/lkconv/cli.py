"""The ``lkconv`` command: a thin argparse layer over the library (nothing below imports this module)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _fmt_count(n: float, unit: str = "") -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def cmd_list_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for name in list_models(args.pattern or ""):
        print(name)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .models.describe import describe_model

    info = describe_model(args.name, img_size=args.img_size, in_chans=args.in_chans, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['model']}  (input {args.in_chans}x{args.img_size}x{args.img_size}, {args.num_classes} classes)")
    print(f"  params  train structure  {_fmt_count(info['params_train'])}")
    print(f"          deploy structure {_fmt_count(info['params_deploy'])}")
    print(f"  MACs    deploy {info['macs_deploy'] / 1e9:.3f}G   train {info['macs_train'] / 1e9:.3f}G")
    print()
    rows = info["stages"]
    print(f"  {'stage':>5} {'depth':>5} {'width':>6} {'stride':>6} {'LarK':>5} {'SmaK':>5}  kernel sizes")
    for r in rows:
        ks = r.get("kernel_sizes", [])
        print(f"  {r['stage']:>5} {r.get('depth', ''):>5} {r['width']:>6} {r['reduction']:>6} {r.get('lark', ''):>5} "
              f"{r.get('smak', ''):>5}  {','.join(map(str, ks))}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, model_name=args.model)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lkconv", description="Large-kernel ConvNets with universal perception.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list-models", help="list registered model names")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'unireplknet_*'")
    p.set_defaults(func=cmd_list_models)

    p = sub.add_parser("info", help="parameters, MACs and the stage table of a model")
    p.add_argument("name")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="the built-in end-to-end job (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default="unireplknet_a")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"lkconv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
