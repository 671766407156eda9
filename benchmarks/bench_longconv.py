"""Long 1-D convolution on the CPU: FFT (``lkconv.ops.fftconv.fft_conv1d``) against direct depthwise ``F.conv1d``.

For each length L the kernel is as long as the sequence (the SGConv / long-conv setting) and the convolution is
causal: the direct path is ``F.conv1d(F.pad(u, (L - 1, 0)), flip(k), groups=H)``. Both run side by side in one
process, forward only under ``torch.no_grad()``, timed as the median over ``--repeats`` runs after a warm-up. The
direct path costs O(H L^2): a point whose projected time (from the previous length, x4 per doubling) exceeds
``--max-seconds`` is skipped and reported as such; one projected over 2 s is timed once, without warm-up.

Usage::

    .venv/bin/python benchmarks/bench_longconv.py [--channels 64] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lkconv.ops.fftconv import fft_conv1d

DEFAULT_LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)


def direct_causal_conv1d(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal depthwise convolution with ``F.conv1d`` (cross-correlation with the flipped kernel)."""
    return F.conv1d(F.pad(u, (k.shape[-1] - 1, 0)), k.flip(-1).unsqueeze(1), groups=u.shape[1])


def time_median(fn: Callable[[], torch.Tensor], repeats: int, warmup: bool = True) -> tuple[float, torch.Tensor]:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs (after one warm-up run), and its last output."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    parser.add_argument("--channels", type=int, default=64, help="H (depthwise channels)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is stable on a shared machine)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip direct runs projected above this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B={args.batch}, H={args.channels}, "
          f"float32, causal, kernel length = L, median of {args.repeats}")
    header = (f"{'L':>7} | {'direct conv1d (ms)':>18} | {'FFT (ms)':>9} | {'speed-up':>8} | {'max |diff|':>10} | "
              f"{'max |y|':>8}")
    print(header)
    print("-" * len(header))
    last_direct: tuple[int, float] | None = None
    with torch.no_grad():
        for length in args.lengths:
            u = torch.randn(args.batch, args.channels, length)
            k = torch.randn(args.channels, length) / length**0.5
            fft_t, y_fft = time_median(lambda u=u, k=k: fft_conv1d(u, k), args.repeats)
            projected = None if last_direct is None else last_direct[1] * (length / last_direct[0]) ** 2
            if projected is not None and projected > args.max_seconds:
                print(f"{length:>7} | {f'skipped (~{projected:.0f} s)':>18} | {fft_t * 1e3:>9.2f} | {'-':>8} | "
                      f"{'-':>10} | {y_fft.abs().max().item():>8.3g}")
                continue
            slow = projected is not None and projected > 2.0  # one cold run is accurate enough for seconds-long runs
            direct_t, y_direct = time_median(
                lambda u=u, k=k: direct_causal_conv1d(u, k), 1 if slow else args.repeats, not slow
            )
            last_direct = (length, direct_t)
            diff = (y_fft - y_direct).abs().max().item()
            print(f"{length:>7} | {direct_t * 1e3:>18.2f} | {fft_t * 1e3:>9.2f} | {direct_t / fft_t:>7.1f}x | "
                  f"{diff:>10.2e} | {y_direct.abs().max().item():>8.3g}")


if __name__ == "__main__":
    main()
