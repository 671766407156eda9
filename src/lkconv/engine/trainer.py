"""The training loop: ``train(config)`` → a run directory (see :mod:`lkconv.engine.run_dir`)."""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..data import DataBundle, build_data
from ..layers.norm import convert_sync_batchnorm
from ..modalities.base import PerceptionModel, build_adapter
from ..models import create_model
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_sum, setup_distributed, shutdown_distributed
from .mix import mix_batch
from .optim import ModelEma, cosine_lr, param_groups
from .recipe import resolve_recipe
from .run_dir import RunDir, RunError, rng_state, set_rng_state

__all__ = ["train", "TrainingDiverged", "evaluate_model", "epoch_batches"]

log = logging.getLogger("lkconv.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _as_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    if isinstance(config, TrainConfig):
        config.validate()
        return config
    return TrainConfig.from_dict(dict(config))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, *, shuffle: bool, drop_last: bool) -> list[list[int]]:
    """Global batches of dataset positions for one epoch; the order depends only on (seed, epoch)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def _shard(batches: list[list[int]], info: DistInfo) -> list[list[int]]:
    """Each process takes an equal contiguous slice of every global batch."""
    if not info.enabled:
        return batches
    out = []
    for b in batches:
        per = len(b) // info.world_size
        out.append(b[info.rank * per : (info.rank + 1) * per])
    return out


def _loader(dataset, batches: list[list[int]], num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, persistent_workers=False)


def _progress(cfg: TrainConfig, info: DistInfo, total: int, desc: str):
    from tqdm import tqdm

    show = cfg.progress if cfg.progress is not None else (sys.stderr.isatty() and not os.environ.get("CI"))
    return tqdm(total=total, desc=desc, disable=not (show and info.is_main), leave=False, dynamic_ncols=True)


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def build_model_for_data(cfg: TrainConfig, data: DataBundle, recipe: dict) -> tuple[PerceptionModel, dict]:
    """The adapter + backbone for this data, and the ``config.json`` content that rebuilds it."""
    adapter = build_adapter(data.adapter, **data.adapter_args)
    num_outputs = len(data.class_names) if data.task == "classify" else int(data.notes.get("num_outputs", 1))
    model_args = {"num_classes": num_outputs, "in_chans": adapter.out_chans,
                  "drop_path_rate": recipe["drop_path_rate"], **cfg.model_args}
    backbone = create_model(cfg.model, **model_args)
    model = PerceptionModel(adapter, backbone)
    model_config = {
        "model": cfg.model, "model_args": {**model_args, "drop_path_rate": 0.0}, "adapter": data.adapter,
        "adapter_args": adapter.config(), "task": data.task, "class_names": list(data.class_names),
        "modality": cfg.modality, "raw_shape": list(data.raw_shape), "preprocessing": data.preprocessing,
    }
    return model, model_config


def _loss(logits: torch.Tensor, target: torch.Tensor, task: str, smoothing: float) -> torch.Tensor:
    if task == "forecast":
        return F.mse_loss(logits.float(), target.float())
    if target.dim() == 2:  # soft targets from mixup/cutmix
        return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
    return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset, *, batch_size: int, task: str = "classify", info: DistInfo | None = None,
                   num_workers: int = 0, amp: bool = False) -> dict[str, float]:
    """Loss and accuracy (classification) or MSE/MAE (forecasting) over ``dataset``, summed over processes."""
    info = info or DistInfo()
    was = model.training
    model.eval()
    batches = epoch_batches(len(dataset), batch_size, 0, 0, shuffle=False, drop_last=False)
    mine = batches[info.rank :: info.world_size] if info.enabled else batches
    loss_sum = correct = abs_sum = n = 0.0
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext()
    for x, y in _loader(dataset, mine, num_workers):
        with ctx:
            out = model(x).float()
        if task == "forecast":
            err = out - y.float()
            loss_sum += err.square().sum().item()
            abs_sum += err.abs().sum().item()
            n += err.numel()
        else:
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(-1) == y).sum().item()
            n += y.numel()
    loss_sum, correct, abs_sum, n = all_reduce_sum([loss_sum, correct, abs_sum, n], info)
    model.train(was)
    if n == 0:
        return {"num_samples": 0}
    if task == "forecast":
        return {"mse": loss_sum / n, "mae": abs_sum / n, "loss": loss_sum / n, "num_samples": int(n)}
    return {"loss": loss_sum / n, "accuracy": correct / n, "num_samples": int(n)}


def _check_resume_compatible(saved: dict, model_config: dict, run: RunDir) -> None:
    diffs = []
    for key in ("model", "adapter", "task", "class_names"):
        if saved.get(key) != model_config.get(key):
            diffs.append(f"{key}: run has {saved.get(key)!r}, this configuration gives {model_config.get(key)!r}")
    saved_args = {k: v for k, v in saved.get("model_args", {}).items() if k != "drop_path_rate"}
    new_args = {k: v for k, v in model_config["model_args"].items() if k != "drop_path_rate"}
    if saved_args != new_args:
        diffs.append(f"model_args: run has {saved_args}, this configuration gives {new_args}")
    if diffs:
        raise RunError(f"cannot resume {run.path}: the run was made with another model or data:\n  " + "\n  ".join(diffs))


def train(config: TrainConfig | dict[str, Any]) -> Path:
    """Trains a model as configured and returns the run directory.

    With ``resume=True`` the run continues from ``last.pt`` exactly where it stopped (same data order,
    augmentation and RNG streams), so an interrupted and resumed run ends with the same weights as an
    uninterrupted one. Under ``torchrun`` it runs data-parallel; rank 0 alone writes.
    """
    cfg = _as_config(config)
    info = setup_distributed()
    try:
        return _train(cfg, info)
    finally:
        shutdown_distributed(info)


def _train(cfg: TrainConfig, info: DistInfo) -> Path:
    run = RunDir(cfg.out)
    if not cfg.resume and run.has_training_state():
        raise RunError(f"{run.path} already holds a run (last.pt); pass --resume to continue it or choose another --out")
    if info.enabled and cfg.batch_size % info.world_size:
        raise RunError(f"batch_size {cfg.batch_size} must be divisible by the number of processes ({info.world_size})")
    state = run.load_training_state() if cfg.resume else None
    _seed_everything(cfg.seed, cfg.deterministic)
    recipe = resolve_recipe(cfg)
    data = build_data(cfg)
    model, model_config = build_model_for_data(cfg, data, recipe)
    if state is not None:
        _check_resume_compatible(state["model_config"], model_config, run)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if info.enabled:
        model = convert_sync_batchnorm(model)
    groups = param_groups(model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=recipe["lr"], betas=(0.9, 0.999))
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    micro = epoch_batches(len(data.train), cfg.batch_size, cfg.seed, 0, shuffle=True, drop_last=True)
    if not micro:
        raise RunError(f"batch_size {cfg.batch_size} is larger than the training set ({len(data.train)} samples)")
    steps_per_epoch = math.ceil(len(micro) / cfg.accum_steps)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(round(recipe["warmup_epochs"] * steps_per_epoch))
    start_epoch, step, history, best = 0, 0, [], None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, step, history, best = state["epoch"] + 1, state["step"], list(state["history"]), state["best"]
        set_rng_state(state["rng"])
        if info.is_main:
            print(f"resuming {run.path} after epoch {state['epoch'] + 1}/{cfg.epochs}", flush=True)
    if info.is_main:
        run.write_config({**cfg.to_dict(), "resolved": recipe}, model_config)
    train_model: nn.Module = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(model)
    compiled = torch.compile(train_model, dynamic=False) if cfg.compile else train_model
    amp_ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if cfg.amp else nullcontext
    task = data.task

    tb = None
    if cfg.tensorboard and info.is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run.path / "tensorboard"))
        except ImportError as e:
            raise RunError("tensorboard logging needs: pip install 'lkconv[tensorboard]'") from e

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        data.train.set_epoch(epoch)
        batches = _shard(epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch, shuffle=True, drop_last=True),
                         info)
        model.train()
        loss_sum = correct = seen = 0.0
        bar = _progress(cfg, info, len(batches), f"epoch {epoch + 1}/{cfg.epochs}")
        for i, (x, y) in enumerate(_loader(data.train, batches, cfg.num_workers)):
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            mixing = task == "classify" and (recipe["mixup"] > 0 or recipe["cutmix"] > 0)
            target = y
            if mixing:
                x, target = mix_batch(x, y, len(data.class_names), mixup=recipe["mixup"], cutmix=recipe["cutmix"],
                                      smoothing=cfg.label_smoothing)
            boundary = (i + 1) % cfg.accum_steps == 0 or i + 1 == len(batches)
            sync = train_model.no_sync if (info.enabled and not boundary) else nullcontext
            with sync():
                with amp_ctx():
                    out = compiled(x)
                loss = _loss(out, target, task, cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; training stopped. The last "
                        f"good checkpoint ({run.path / 'last.pt'}) is kept; lower --lr or set --clip-grad")
                (loss / cfg.accum_steps).backward()
            if boundary:
                lr = cosine_lr(step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=recipe["lr"],
                               min_lr=cfg.min_lr)
                for g in optimizer.param_groups:
                    g["lr"] = lr * g["lr_scale"]
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                post_step = getattr(model.backbone, "post_step", None)
                if callable(post_step):  # e.g. clamp DCLS kernel positions to their grid
                    post_step()
                if ema is not None:
                    ema.update(model)
                step += 1
            loss_sum += loss.item() * y.shape[0]
            if task == "classify":
                correct += (out.detach().argmax(-1) == y).sum().item()
            seen += y.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info)
        elapsed = time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": cosine_lr(
            max(step - 1, 0), total_steps=total_steps, warmup_steps=warmup_steps, base_lr=recipe["lr"],
            min_lr=cfg.min_lr), "train_loss": loss_sum / seen}
        if task == "classify":
            row["train_accuracy"] = correct / seen
        eval_model = ema.module if ema is not None else model
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            val = evaluate_model(eval_model, data.val, batch_size=cfg.batch_size, task=task, info=info,
                                 num_workers=cfg.num_workers, amp=cfg.amp)
            row.update({f"val_{k}": v for k, v in val.items() if k != "num_samples"})
        row["train_samples_per_s"] = seen / elapsed
        row["epoch_seconds"] = elapsed
        history.append(row)
        metric_key = "val_accuracy" if task == "classify" else "val_mae"
        improved = False
        if metric_key in row:
            value = row[metric_key]
            improved = best is None or (value > best if task == "classify" else value < best)
            if improved:
                best = value
        if info.is_main:
            weights = eval_model.state_dict()
            run.save_weights(weights)
            if improved:
                run.save_weights(weights, "best.safetensors")
            run.write_metrics(history)
            run.save_training_state({
                "format_version": 1, "epoch": epoch, "step": step, "history": history, "best": best,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "rng": rng_state(),
                "model_config": model_config, "config": cfg.to_dict(),
            })
            run.plot_curves(history)
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)):
                        tb.add_scalar(k, v, epoch + 1)
            _print_epoch(row, cfg.epochs)
    if tb is not None:
        tb.close()
    if info.is_main:
        print(f"run directory: {run.path.resolve()}", flush=True)
    return run.path


def _print_epoch(row: dict[str, Any], epochs: int) -> None:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.4f}"]
    if "train_accuracy" in row:
        parts.append(f"acc {row['train_accuracy']:.2%}")
    if "val_loss" in row:
        parts.append(f"val loss {row['val_loss']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"acc {row['val_accuracy']:.2%}")
    if "val_mae" in row:
        parts.append(f"mae {row['val_mae']:.4f}")
    parts.append(f"{row['train_samples_per_s']:.1f} samples/s")
    print("  ".join(parts), flush=True)
