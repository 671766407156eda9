"""Keeping a run inside its ``--budget`` once the cost of its evaluations is known.

The trainer plans the epochs from the first steps' time (and re-plans early in the second epoch); evaluation's cost
is only guessed then (a forward pass over the validation set, ~1/3 of a training step per sample). Some tasks cost far
more to evaluate: detection's post-processing and COCO evaluation grow as the detector learns to propose boxes
(builtin:fashion-detect: a few seconds per evaluation at the start, ~16 s at the end, against ~15 s of training per
epoch), and that default run ended 6.5 % over its 15 minutes. After every epoch the trainer now projects the rest of
the run from measured costs and, with auto epochs and a budget:

1. evaluates less often when an evaluation costs more than :data:`EVAL_SHARE` of a training epoch (auto
   ``eval_every`` only; at least 5 evaluations per run; the last epoch is always evaluated), and
2. cuts the remaining epochs when the projection passes the budget (the cosine schedule is re-planned; never more
   epochs than planned).

Pure functions here; :class:`lkconv.engine.trainer.Trainer` measures and applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EVAL_SHARE", "FILL", "EpochCosts", "eval_interval", "evals_left", "projected_seconds", "replan"]

#: Auto ``eval_every`` keeps one evaluation at most this share of a training epoch's time, averaged over the
#: epochs between evaluations.
EVAL_SHARE = 1 / 3
#: A re-plan fills this share of the time left (the first plan leaves 10 %; a late re-plan needs less room).
FILL = 0.95


@dataclass(frozen=True)
class EpochCosts:
    """Seconds per epoch: training (``train_s``), the rest of the epoch's end (checkpoint, curves: ``other_s``) and
    one evaluation (``eval_s``)."""

    train_s: float
    other_s: float
    eval_s: float


def eval_interval(costs: EpochCosts, every: int, epochs: int) -> int:
    """Auto ``eval_every``: ``every``, raised until one evaluation costs at most :data:`EVAL_SHARE` of the training
    epochs between two of them, but never so far that a run of ``epochs`` epochs has fewer than 5 evaluations."""
    if costs.train_s <= 0 or costs.eval_s <= EVAL_SHARE * costs.train_s:
        return every
    need = math.ceil(costs.eval_s / (EVAL_SHARE * costs.train_s))
    return max(every, min(need, epochs // 5))


def evals_left(done: int, epochs: int, every: int) -> int:
    """Evaluations in epochs ``done + 1 .. epochs`` (1-based): every ``every``-th epoch and the last."""
    if epochs <= done:
        return 0
    return epochs // every - done // every + (epochs % every != 0)


def projected_seconds(done: int, epochs: int, every: int, costs: EpochCosts) -> float:
    """Seconds the epochs after ``done`` take at ``costs``."""
    return (epochs - done) * (costs.train_s + costs.other_s) + evals_left(done, epochs, every) * costs.eval_s


def replan(done: int, epochs: int, every: int, costs: EpochCosts, seconds: float, *,
           auto_every: bool) -> tuple[int, int]:
    """``(epochs, eval_every)`` for the rest of a run that has ``seconds`` left after ``done`` epochs: unchanged when
    the rest fits; else, with ``auto_every``, evaluations spaced by :func:`eval_interval`; and if that does not fit
    either, the most epochs that fit in :data:`FILL` of ``seconds`` (at least one more; with ``auto_every`` each
    candidate count with its own interval: the rule's ``epochs // 20``, raised where evaluation is dear)."""
    if projected_seconds(done, epochs, every, costs) <= seconds:
        return epochs, every
    if auto_every:
        spaced = eval_interval(costs, every, epochs)
        if projected_seconds(done, epochs, spaced, costs) <= seconds:
            return epochs, spaced
    for n in range(epochs - 1, done, -1):
        k = eval_interval(costs, max(1, n // 20), n) if auto_every else every
        if projected_seconds(done, n, k, costs) <= seconds * FILL:
            return n, k
    n = done + 1
    return n, (eval_interval(costs, max(1, n // 20), n) if auto_every else every)
