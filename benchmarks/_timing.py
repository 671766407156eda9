"""Shared timing helpers for the benchmark scripts: interleaved repeats, medians, machine description."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import torch


def machine_description() -> str:
    cpu = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    return f"{cpu}; torch {torch.__version__}; {torch.get_num_threads()} threads"


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                        clock: str = "wall") -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin so load changes hit all of them alike.

    ``clock="thread"`` times the calling thread's CPU time: with one torch thread this is immune to preemption by
    other processes on a shared machine (use it with ``torch.set_num_threads(1)``).
    """
    now = CLOCKS[clock]
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = now()
            fn()
            times[k].append(now() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def steady_allocator(no_mmap: bool = False) -> bool:
    """Make glibc's malloc keep freed memory in the heap (``mallopt``), for every method of the process alike.

    By default glibc serves blocks over its *dynamic* mmap threshold with fresh mappings, returned to the OS on free,
    and trims the heap top; a multi-megabyte tensor or scratch buffer then page-faults on every call or not,
    depending on what the process allocated before. Measured on the depthwise grid: PyTorch's NCHW depthwise conv on
    B16 C640 7x7 k3 took 0.27 ms or 2.9 ms in the same process for that reason alone. Fixing the mmap threshold at
    its maximum (32 MiB) and never trimming removes that state, so a comparison measures the operators.
    ``no_mmap=True`` also serves blocks over 32 MiB from the heap (whole-network activations at batch 16 are 32-64
    MiB), so no call of a steady loop page-faults. Returns whether it was applied (glibc only).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold, m_mmap_max = -1, -3, -4
        ok = bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
        return ok and (not no_mmap or bool(libc.mallopt(m_mmap_max, 0)))
    except (OSError, AttributeError):
        return False
