"""The planner's stopwatch: :func:`measure` times competing candidates fairly on a busy machine.

Also used outside the depthwise planner (``lkconv.deploy`` times the ways of running the pointwise layers with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["BURST_MAX_CALLS", "BURST_SECONDS", "SETTLE_BELOW_SECONDS", "measure", "time_call"]


def time_call(fn: Callable[[], Any], calls: int = 1, settle: bool = False) -> float:
    """Run ``fn`` ``calls`` times back to back and return the seconds per call (the planner's only timing primitive);
    with ``settle``, one more untimed call first.

    With one torch thread all the work runs on the calling thread, so its CPU time is used: it does not count the time
    the thread spends preempted by other processes. With more threads it is wall-clock time.
    """
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    if settle:
        fn()  # untimed: absorbs the switch from whatever ran before (see BURST_SECONDS)
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


#: A timed sample is a burst of back-to-back calls lasting about this long (at most :data:`BURST_MAX_CALLS` calls),
#: after an untimed one. Measured at 2 threads: a sub-millisecond call right after a *different* candidate can take
#: 2x its steady time (identical oneDNN calls 0.11 vs 0.19 ms after PyTorch's slow NCHW path: allocator and cache
#: state), which decided plans by noise.
BURST_SECONDS = 1e-3
BURST_MAX_CALLS = 16
#: Bursts of candidates faster than this start with an untimed call (slower ones: the switch is a small fraction).
SETTLE_BELOW_SECONDS = 0.02


def measure(fns: Mapping[str, Callable[[], Any]], reps: int | None, prune: float = 4.0) -> dict[str, float]:
    """Time each candidate: two warm-up calls each (the first absorbs one-off costs such as oneDNN primitive creation;
    candidates whose second call is over ``prune`` x the best are dropped), then ``reps`` round-robin bursts of the
    rest (see :data:`BURST_SECONDS`; None: as many bursts as fit in about 0.1 s, between 3 and 10).

    Returns milliseconds per call per candidate: the minimum over the bursts (the warm-up for dropped ones). The
    minimum, not the median, decides: on a shared machine preemption only ever adds time, and with few repetitions a
    median can land on a preempted sample and pick the wrong algorithm.
    """
    warm: dict[str, float] = {}
    for name, fn in fns.items():
        fn()
        warm[name] = time_call(fn)
    best = min(warm.values())
    keep = [n for n, t in warm.items() if t <= prune * best + 1e-4]
    calls = {n: int(min(BURST_MAX_CALLS, max(1, BURST_SECONDS // max(warm[n], 1e-9)))) for n in keep}
    samples: dict[str, list[float]] = {n: [] for n in keep}
    if reps is None:
        reps = int(min(10, max(3, 0.1 / max(sum(warm[n] * calls[n] for n in keep), 1e-9))))
    for r in range(max(1, reps)):
        for i in range(len(keep)):  # rotate the order so no candidate always runs right after the same one
            name = keep[(i + r) % len(keep)]
            samples[name].append(time_call(fns[name], calls[name], settle=warm[name] < SETTLE_BELOW_SECONDS))
    return {n: 1e3 * (min(samples[n]) if n in samples else warm[n]) for n in fns}
