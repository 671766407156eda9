"""The training loop: ``train(config)`` → a run directory (see :mod:`lkconv.engine.run_dir`).

:class:`Trainer` splits a run into setup (data, model, optimizer, resumed state), one epoch of optimizer steps, and
the end of an epoch (evaluation, best epoch, checkpoint, logs). What depends on the task — loss, metrics, which
metric is better — is asked of the run's :class:`~lkconv.engine.tasks.Task`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.datasets import skipped_files_warning
from .batches import EpochFeeder, epoch_batches, shard
from .budget import EpochCosts, replan
from .config import TrainConfig
from .device import choose_precision, configure_backends, loader_settings, move_batch
from .distributed import (DistInfo, all_reduce_sum, setup_distributed, shutdown_distributed, sync_batchnorm,
                          wrap_ddp)
from .evaluate import evaluate_model
from .mix import mix_batch
from .model import build_model_for_data
from .optim import ModelEma, cosine_lr, make_adamw, param_groups
from .recipe import resolve_run
from .summary import baseline_lines, summary_lines
from .run_dir import RunDir, RunError, rng_state, set_rng_state
from .tasks import get_task

__all__ = ["train", "Trainer", "TrainingDiverged"]

log = logging.getLogger("lkconv.train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _as_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    if isinstance(config, TrainConfig):
        config.validate()
        return config
    return TrainConfig.from_dict(dict(config))


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
    info = setup_distributed(cfg.device)
    try:
        return Trainer(cfg, info).fit()
    finally:
        shutdown_distributed(info)


#: Set by :func:`interrupt_guard`'s SIGINT handler. Python raises KeyboardInterrupt wherever the signal lands, and
#: one raised inside a weakref callback or a finalizer is printed and dropped ("Exception ignored in ..."): the run
#: then trained on to its last epoch (seen in CI). Inside the training loop the handler only sets this flag and the
#: loop raises at the next step boundary; elsewhere, or on a second Ctrl-C, it raises at once.
INTERRUPTED = threading.Event()
_IN_LOOP = threading.Event()


@contextmanager
def interrupt_guard():
    """Ctrl-C handling for ``lkconv train`` (see :data:`INTERRUPTED`). Main thread only (else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    INTERRUPTED.clear()

    def handler(signum, frame):
        first = not INTERRUPTED.is_set()
        INTERRUPTED.set()
        if not (first and _IN_LOOP.is_set()):
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        INTERRUPTED.clear()


#: A run whose epochs spend more than this fraction of their time waiting for batches is reported as data-bound.
DATA_BOUND_FRACTION = 0.3


class Trainer:
    """One training run. ``Trainer(cfg, info).fit()`` is :func:`train` without the process-group handling.

    It computes on ``info.device`` (see :mod:`lkconv.engine.device`): on CUDA the model and every batch live on the
    GPU, activations are channels_last and autocast is on (bf16, or fp16 with a gradient scaler) unless ``amp`` is
    False; on the CPU everything is as configured (fp32 unless ``amp``), bit-exact across resumes.
    """

    def __init__(self, cfg: TrainConfig, info: DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.run = RunDir(cfg.out)
        if not cfg.resume and self.run.has_training_state():
            raise RunError(f"{self.run.path} already holds a run (last.pt); pass --resume to continue it or choose "
                           "another --out")
        state = self.run.load_training_state() if cfg.resume else None
        _seed_everything(cfg.seed, cfg.deterministic)
        self.epochs_auto = cfg.epochs is None
        if state is not None and self.epochs_auto:  # keep the epochs the interrupted run had settled on (--budget)
            cfg = cfg.replace(epochs=state["config"]["epochs"])
        self.resolved = resolve_run(cfg)
        self.cfg = cfg = self.resolved.cfg
        self.recipe, self.data = self.resolved.recipe, self.resolved.data
        self.task = get_task(self.data.task)
        if info.enabled and cfg.batch_size % info.world_size:
            raise RunError(f"batch_size {cfg.batch_size} must be divisible by the number of processes "
                           f"({info.world_size})")
        self.device = info.device
        configure_backends(self.device, cfg.deterministic)
        self.precision = choose_precision(self.device, cfg.amp)
        self.scaler = self.precision.make_scaler()
        self.channels_last = cfg.channels_last or self.device.type == "cuda"
        self.loader = loader_settings(self.device, cfg.num_workers)
        self._said_data_bound = False
        self.feeder = EpochFeeder(self.data.train, self.loader)
        self.device_record = {"device": str(self.device), "precision": self.precision.describe(),
                              "num_workers": self.loader.num_workers, "backend": info.backend}
        self.model, self.model_config = build_model_for_data(cfg, self.data, self.recipe)
        if state is not None:
            _check_resume_compatible(state["model_config"], self.model_config, self.run)
        self._prepare_model()
        groups = param_groups(self.model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
        self.optimizer = make_adamw(groups, lr=self.recipe["lr"])
        self.ema = ModelEma(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self._plan_schedule()
        self.start_epoch, self.step, self.history, self.best = 0, 0, [], None
        self._timing: tuple[float | None, int, float] | None = (None, 0, 0.0)  # for check_budget
        # --budget is checked twice: after the first steps, and again early in the second epoch, when the first
        # epoch's one-off costs (decoding into the video/audio caches, warm-up of the kernels) are paid: video-pan's
        # first steps said 58 epochs, the run then took 137 s of its 10 minutes
        self._planned_epochs = cfg.epochs
        self._recheck = state is None and self.epochs_auto and cfg.budget > 0
        self._rechecking = False
        # after every epoch from then on: the rest of the run projected from measured costs (evaluation included,
        # which the first looks only guess), cut to the budget (lkconv.engine.budget)
        self._watching = self._recheck
        self._costs: list[tuple[float, float, float | None]] = []  # train, end-of-epoch rest, evaluation seconds
        self._started: float | None = None
        if state is not None:
            self._restore(state)
        if info.is_main:
            self._write_config()
            if state is None:
                print("\n".join(summary_lines(self.resolved, self.model)), flush=True)
        self.train_model: nn.Module = wrap_ddp(self.model, info)
        self.forward = torch.compile(self.train_model, dynamic=False) if cfg.compile else self.train_model
        self.tb = self._tensorboard()
        self._caught: list = []  # warnings of the current epoch, printed with its line
        self._warned: set[str] = set()

    # --- setup ------------------------------------------------------------------------------------------------
    def _write_config(self, extra: dict[str, Any] | None = None) -> None:
        resolved = {**self.resolved.record(), **self.device_record, **(extra or {})}
        if "pretrained_cfg" in self.model_config:  # where the starting weights came from, how they expect inputs
            resolved["pretrained_cfg"] = self.model_config["pretrained_cfg"]
        self.run.write_config({**self.cfg.to_dict(), "resolved": resolved}, self.model_config)

    def _prepare_model(self) -> None:
        if self.cfg.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        if self.device.type != "cpu":
            self.model = self.model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.info.enabled:
            self.model = sync_batchnorm(self.model, self.info)

    def _plan_schedule(self) -> None:
        cfg = self.cfg
        micro = epoch_batches(len(self.data.train), cfg.batch_size, cfg.seed, 0, shuffle=True, drop_last=True)
        if not micro:
            raise RunError(f"batch_size {cfg.batch_size} is larger than the training set ({len(self.data.train)} "
                           "samples)")
        steps_per_epoch = math.ceil(len(micro) / cfg.accum_steps)
        self.total_steps = steps_per_epoch * cfg.epochs
        self.warmup_steps = int(round(self.recipe["warmup_epochs"] * steps_per_epoch))

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        self.start_epoch, self.step = state["epoch"] + 1, state["step"]
        self.history, self.best = list(state["history"]), state["best"]
        set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if not self.info.is_main:
            return
        if self.start_epoch >= self.cfg.epochs:
            print(f"{self.run.path} is complete: {self.start_epoch}/{self.cfg.epochs} epochs trained, nothing to do "
                  f"(to train longer: lkconv train --out {self.run.path} --resume --epochs N)", flush=True)
        else:
            print(f"resuming {self.run.path} after epoch {state['epoch'] + 1}/{self.cfg.epochs}", flush=True)

    def _tensorboard(self):
        if not (self.cfg.tensorboard and self.info.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise RunError("tensorboard logging needs: pip install 'lkconv[tensorboard]'") from e
        return SummaryWriter(str(self.run.path / "tensorboard"))

    def _time_steps(self, now: float) -> None:
        """Times the optimizer steps after the first (which pays one-off costs); after 8 calls :meth:`check_budget`."""
        if self._timing is None:
            return
        last, steps, spent = self._timing
        if last is not None:
            steps, spent = steps + 1, spent + now - last
        self._timing = (now, steps, spent)
        if steps >= 8:
            self._timing = None
            self.check_budget(steps, spent)

    def check_budget(self, steps_done: int, elapsed: float) -> None:
        """After the first steps: print the time estimate and, with auto epochs and a budget, cut the epochs to fit
        (the cosine schedule is re-planned; config.yaml records the cut)."""
        spent = time.perf_counter() - self._started if self._started is not None else 0.0
        if self.info.enabled:  # every process must reach the same decision
            elapsed, spent = (v / self.info.world_size for v in all_reduce_sum([elapsed, spent], self.info))
        steps_per_epoch = self.total_steps // self.cfg.epochs
        per_epoch = elapsed / max(steps_done, 1) * steps_per_epoch
        evals = math.ceil(self.cfg.epochs / self.cfg.eval_every)
        eval_s = per_epoch / 3 * len(self.data.val) / max(len(self.data.train), 1)  # forward only: ~1/3 of a step
        total = per_epoch * self.cfg.epochs + eval_s * evals
        budget_s = self.cfg.budget * 60
        if self._rechecking:
            self._rechecking = False
            self._recheck_budget(per_epoch, eval_s, spent, budget_s)
            return
        msg = f"time estimate: {per_epoch:.1f} s/epoch, ~{total / 60:.1f} min for {self.cfg.epochs} epochs"
        if self.epochs_auto and budget_s > 0 and total > budget_s and self.cfg.epochs > 1:
            fit = int(budget_s * 0.9 / (per_epoch + eval_s / self.cfg.eval_every))
            epochs = max(1, min(self.cfg.epochs, fit), self.start_epoch + 1)
            if epochs < self.cfg.epochs:
                msg += f"; over the --budget of {self.cfg.budget:g} min: {epochs} epochs instead"
                self._cut_epochs(epochs)
        if self.info.is_main:
            print(msg, flush=True)

    def _recheck_budget(self, per_epoch: float, eval_s: float, spent: float, budget_s: float) -> None:
        """The second look (early in the second epoch): the epochs that fit in what is left of the budget at the
        rate measured now, between the current epoch and the rule's own number; the schedule is re-planned when
        that differs from the first look's."""
        done = self.start_epoch + 1  # epochs finished; the current one counts among those to fit
        fit = int(max(budget_s * 0.9 - spent, 0.0) / (per_epoch + eval_s / self.cfg.eval_every))
        epochs = max(done + 1, min(self._planned_epochs, done + fit))
        msg = f"time estimate after the first epoch: {per_epoch:.1f} s/epoch"
        if epochs != self.cfg.epochs:
            msg += f"; {epochs} epochs fit the --budget of {self.cfg.budget:g} min (was {self.cfg.epochs})"
            self._cut_epochs(epochs)
        if self.info.is_main:
            print(msg, flush=True)

    def _watch_budget(self, epoch: int) -> None:
        """After epoch ``epoch`` (once both early looks are done), with auto epochs and a budget: when the rest of
        the run, projected from the measured costs of the last epochs, would pass the budget, evaluate less often
        where evaluation is dear (auto ``eval_every``) and, if that is not enough, cut the epochs left."""
        done = epoch + 1
        if not self._watching or self._recheck or self._rechecking or done >= self.cfg.epochs or not self._costs:
            return
        recent = self._costs[1:][-3:] or self._costs  # the first epoch pays one-off costs (caches, warm-up)
        train_s = float(np.median([c[0] for c in recent]))
        other_s = float(np.median([c[1] for c in recent]))
        evals = [c[2] for c in self._costs if c[2] is not None]
        eval_s = evals[-1] if evals else train_s / 3 * len(self.data.val) / max(len(self.data.train), 1)
        spent = time.perf_counter() - self._started
        if self.info.enabled:  # every process must reach the same decision
            train_s, other_s, eval_s, spent = (v / self.info.world_size for v in
                                               all_reduce_sum([train_s, other_s, eval_s, spent], self.info))
        costs = EpochCosts(train_s, other_s, eval_s)
        epochs, every = replan(done, self.cfg.epochs, self.cfg.eval_every, costs, self.cfg.budget * 60 - spent,
                               auto_every="eval_every" in self.resolved.auto)
        if (epochs, every) == (self.cfg.epochs, self.cfg.eval_every):
            return
        msg = [f"after epoch {done}: {train_s:.1f} s/epoch, {eval_s:.1f} s per evaluation"]
        if every != self.cfg.eval_every:
            msg.append(f"evaluating every {every} epochs (was {self.cfg.eval_every})")
        if epochs != self.cfg.epochs:
            msg.append(f"{epochs} epochs fit the --budget of {self.cfg.budget:g} min (was {self.cfg.epochs})")
        self._cut_epochs(epochs, eval_every=every)
        if self.info.is_main:
            print("; ".join(msg), flush=True)

    def _cut_epochs(self, epochs: int, eval_every: int | None = None) -> None:
        changes: dict[str, Any] = {"epochs": epochs}
        if "eval_every" in self.resolved.auto:
            changes["eval_every"] = max(1, epochs // 20) if eval_every is None else eval_every
        if "warmup_epochs" in self.resolved.auto:
            changes["warmup_epochs"] = round(min(2.0, epochs / 20), 4)
            self.recipe["warmup_epochs"] = changes["warmup_epochs"]
        self.cfg = self.resolved.cfg = self.cfg.replace(**changes)
        self.resolved.auto.update(changes)
        self._plan_schedule()
        if self.info.is_main:
            self._write_config({"budget_cut": True})

    def lr_at(self, step: int) -> float:
        return cosine_lr(step, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                         base_lr=self.recipe["lr"], min_lr=self.cfg.min_lr)

    # --- the run ----------------------------------------------------------------------------------------------
    def fit(self) -> Path:
        epoch = self.start_epoch
        trained = epoch < self.cfg.epochs
        _IN_LOOP.set()
        try:
            self._epochs(epoch)
        finally:
            _IN_LOOP.clear()
        if trained:
            self.report_baselines()
        if self.tb is not None:
            self.tb.close()
        if self.info.is_main:
            print(f"run directory: {self.run.path.resolve()}", flush=True)
        return self.run.path

    def _epochs(self, epoch: int) -> None:
        while epoch < self.cfg.epochs:  # --budget may lower cfg.epochs during the first epoch
            # warnings raised during the epoch are printed once, with the epoch's line, not in the middle of the output
            with warnings.catch_warnings(record=True) as self._caught:
                warnings.simplefilter("default")
                row, timing = self.train_epoch(epoch)
                self.end_epoch(epoch, row, timing)
            self._watch_budget(epoch)
            epoch += 1
            if INTERRUPTED.is_set():  # Ctrl-C during evaluation or the checkpoint: stop now it is written
                raise KeyboardInterrupt

    def train_epoch(self, epoch: int) -> tuple[dict[str, Any], dict[str, float]]:
        """One pass over the training set: the epoch's history row so far (training metrics) and its timing."""
        cfg, info = self.cfg, self.info
        t0 = time.perf_counter()
        if self._started is None:
            self._started = t0
        if self._timing is not None:  # the gap since the last epoch (evaluation, checkpoint) is not a step
            self._timing = (None, *self._timing[1:])
        elif self._recheck and epoch == self.start_epoch + 1 and epoch < self.cfg.epochs:
            self._recheck, self._rechecking = False, True
            self._timing = (None, 0, 0.0)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.data.train.set_epoch(epoch)
        batches = shard(epoch_batches(len(self.data.train), cfg.batch_size, cfg.seed, epoch, shuffle=True,
                                      drop_last=True), info)
        self.model.train()
        loss_sum = seen = 0.0
        sums = [0.0] * len(self.task.train_sum_names)
        bar = _progress(cfg, info, len(batches), f"epoch {epoch + 1}/{cfg.epochs}")
        waited = 0.0
        loader = iter(self.feeder(batches, epoch))
        for i in range(len(batches)):
            t_wait = time.perf_counter()
            x, y = next(loader)
            waited += time.perf_counter() - t_wait
            x, y = move_batch(x, y, self.device, non_blocking=self.loader.non_blocking)
            boundary = (i + 1) % cfg.accum_steps == 0 or i + 1 == len(batches)
            out, loss = self.forward_backward(x, y, epoch, sync=boundary)
            if boundary:
                self.optimizer_step()
            if INTERRUPTED.is_set():
                raise KeyboardInterrupt
            loss_sum += loss.item() * y.shape[0]
            sums = [s + b for s, b in zip(sums, self.task.train_sums(out, y))]
            seen += y.shape[0]
            bar.update(1)
            self._time_steps(time.perf_counter())
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        loss_sum, *sums, seen = all_reduce_sum([loss_sum, *sums, seen], info)
        elapsed = time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "lr": self.lr_at(max(self.step - 1, 0)),
                               "train_loss": loss_sum / seen, **self.task.train_metrics(sums, seen)}
        timing = {"train_samples_per_s": seen / elapsed, "epoch_seconds": elapsed, "data_wait_seconds": waited}
        if cuda:
            timing["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        if info.is_main and elapsed > 0 and waited / elapsed > DATA_BOUND_FRACTION and not self._said_data_bound:
            self._said_data_bound = True  # once per run; the column in metrics.csv has every epoch
            print(f"note: data-bound: epoch {epoch + 1} waited {waited:.1f} s of {elapsed:.1f} s for batches "
                  f"({self.loader.num_workers} loader workers); raise --num-workers or cache/resize the data",
                  flush=True)
        return row, timing

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, epoch: int, *,
                         sync: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of one micro-batch and its gradients (accumulated; DDP all-reduces only when ``sync``)."""
        cfg = self.cfg
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if self.task.mixes_batches and (self.recipe["mixup"] > 0 or self.recipe["cutmix"] > 0):
            x, target = mix_batch(x, y, len(self.data.class_names), mixup=self.recipe["mixup"],
                                  cutmix=self.recipe["cutmix"], smoothing=cfg.label_smoothing)
        no_sync = self.train_model.no_sync if (self.info.enabled and not sync) else nullcontext
        amp = self.precision.autocast()
        with no_sync():
            with amp:
                try:
                    out = self.forward(x)
                except ValueError as e:  # BatchNorm statistics of a single value per channel
                    if "more than 1 value per channel" not in str(e):
                        raise
                    raise RunError(f"a training batch of {x.shape[0]} sample(s) per process leaves BatchNorm one "
                                   f"value per channel ({e}); use --batch-size 2 or more (per process) or a larger "
                                   "input size") from None
            # on CUDA the loss is taken in fp32 (autocast's fp16/bf16 logits lose digits in the softmax)
            loss = self.task.loss(_fp32(out) if self.device.type == "cuda" else out, target, cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {self.step + 1}; training stopped. The "
                    f"last good checkpoint ({self.run.path / 'last.pt'}) is kept; lower --lr or set --clip-grad")
            scaled = loss / cfg.accum_steps
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return out, loss

    def optimizer_step(self) -> None:
        lr = self.lr_at(self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clipping and the step see the true gradients
        if self.cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when fp16 gradients overflowed; the scale then shrinks
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        post_step = getattr(self.model.backbone, "post_step", None)
        if callable(post_step):  # e.g. clamp DCLS kernel positions to their grid
            post_step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1

    def end_epoch(self, epoch: int, row: dict[str, Any], timing: dict[str, float]) -> None:
        """Validation (when due), the best epoch, checkpoint, metrics, curves and the printed line; ``timing`` ends
        the row."""
        cfg = self.cfg
        t0 = time.perf_counter()
        eval_s = None
        eval_model = self.ema.module if self.ema is not None else self.model
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            val = evaluate_model(eval_model, self.data.val, batch_size=cfg.batch_size, task=self.task.name,
                                 info=self.info, num_workers=self.loader.num_workers, amp=cfg.amp,
                                 device=self.device)
            row.update({f"val_{k}": v for k, v in val.items() if k != "num_samples"})
            eval_s = time.perf_counter() - t0
        row.update(timing)
        self.history.append(row)
        improved = self.task.best_metric in row and self.task.improved(row[self.task.best_metric], self.best)
        if improved:
            self.best = row[self.task.best_metric]
        if self.info.is_main:
            self.save(epoch, eval_model, improved)
            self.log_row(row, epoch)
        rest_s = time.perf_counter() - t0 - (eval_s or 0.0)
        self._costs.append((timing["epoch_seconds"], rest_s, eval_s))

    def report_baselines(self) -> None:
        """Majority class and 1-NN on the same validation split, printed beside the network's result and recorded
        in the last metrics row and config.yaml's ``resolved``."""
        if not self.info.is_main or self.data.task != "classify" or not self.history:
            return
        from .baselines import classification_baselines

        t0 = time.perf_counter()
        base = classification_baselines(self.data)
        self.history[-1].update({f"baseline_{k}": v for k, v in base.items()})
        self.run.write_metrics(self.history)
        self._write_config({"baselines": base})
        print("\n".join(baseline_lines(self.history, base, time.perf_counter() - t0)), flush=True)

    def save(self, epoch: int, eval_model: nn.Module, improved: bool) -> None:
        weights = eval_model.state_dict()
        if self.device.type != "cpu":  # the run directory loads anywhere: CPU tensors on disk
            weights = {k: v.detach().cpu() for k, v in weights.items()}
        self.run.save_weights(weights)
        if improved:
            self.run.save_weights(weights, "best.safetensors")
        self.run.write_metrics(self.history)
        self.run.save_training_state({
            "format_version": 1, "epoch": epoch, "step": self.step, "history": self.history, "best": self.best,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None, "rng": rng_state(),
            "model_config": self.model_config, "config": self.cfg.to_dict(),
            **({"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
        })
        self.run.plot_curves(self.history)

    def _warning_lines(self) -> list[str]:
        lines = _warning_lines_of(self._caught, self._warned)
        skipped = skipped_files_warning(self.data)
        return lines + ([skipped] if skipped else [])

    def log_row(self, row: dict[str, Any], epoch: int) -> None:
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, epoch + 1)
        for line in self._warning_lines():  # once per epoch, in order with the epoch lines (stdout)
            print(line, flush=True)
        _print_epoch(row, self.cfg.epochs)


def _fp32(out):
    """The model's output in fp32: a tensor, or a tuple of them (e.g. segmentation's main and auxiliary logits)."""
    return tuple(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()


def _warning_lines_of(caught: list, seen: set[str]) -> list[str]:
    """``warning: ...`` lines of the recorded warnings whose text was not printed before in the run."""
    lines = []
    for w in caught:
        text = f"warning: {w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            lines.append(text)
    return lines


def _print_epoch(row: dict[str, Any], epochs: int) -> None:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.4f}"]
    if "train_accuracy" in row:
        parts.append(f"acc {row['train_accuracy']:.2%}")
    if "val_loss" in row:
        parts.append(f"val loss {row['val_loss']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"acc {row['val_accuracy']:.2%}")
    if "val_miou" in row:
        parts.append(f"miou {row['val_miou']:.4f}")
    if "val_map" in row:
        parts.append(f"mAP {row['val_map']:.3f} mAP50 {row['val_map50']:.3f}")
    if "val_mae" in row:
        parts.append(f"mae {row['val_mae']:.4f}")
    parts.append(f"{row['train_samples_per_s']:.1f} samples/s")
    print("  ".join(parts), flush=True)
