"""Stride-1 depthwise 2-D convolution with per-shape algorithm plans.

On a CPU the fastest way to run a depthwise convolution depends on the shape: PyTorch's oneDNN path is fast in NCHW
for mid-size kernels (9-15) and in channels_last for small and very large ones, and a large kernel over a small map
mostly multiplies padding. :func:`depthwise_conv2d` therefore picks an algorithm per shape:

``"nchw"``
    ``F.conv2d`` on an NCHW-contiguous input (oneDNN).
``"nhwc"``
    ``F.conv2d`` on a channels_last input (oneDNN).
``"fft"``
    real FFT (``torch.fft.rfft2``) of the padded input times the kernel's spectrum; only pays off for very large kernels
    on large maps.
``"direct:cols14"``, ``"direct:cols7"``, ``"direct:batch8"``, ``"direct:batch16"``
    lkconv's C kernel (:mod:`lkconv.ops.native`, compiled on first use): 16 channels per vector, a register block
    of up to 14/7 output columns or of up to 8/16 images, taps that fall wholly on padding skipped. It reads and writes
    NCHW and channels_last natively, so no layout round trip is paid; fp32 and bf16 (fp32 accumulation); no autograd.
``"direct"``
    alias: the direct variant the heuristic prefers for the shape.

A plan is keyed by (N, C, H, W, kernel, dilation, padding, dtype, input and output memory format, torch threads,
whether autograd is needed) and is chosen by measurement on first use (a warm-up call per candidate, slow ones
dropped, then a few round-robin repetitions, best of them), by :func:`tune` ahead of time, or by a heuristic when
autotuning is off (``LKCONV_AUTOTUNE=0`` or :func:`lkconv.ops.plans.set_autotune`). Measured plans persist in
:class:`lkconv.ops.plans.PlanCache`.

The output keeps the input's memory format unless ``out_format`` says otherwise; an algorithm whose native layout
differs from the input's pays (and is timed with) the conversions.

The parts, each readable alone: :mod:`~lkconv.ops.dwconv.spec` (names, argument checks, the plan key),
:mod:`~lkconv.ops.dwconv.backends` (the algorithms), :mod:`~lkconv.ops.dwconv.timing` (the stopwatch),
:mod:`~lkconv.ops.dwconv.planner` (choosing and tuning plans) and :mod:`~lkconv.ops.dwconv.functional` (the call).
The module form is :class:`lkconv.layers.planned_dwconv.PlannedDepthwiseConv2d`.
"""

from lkconv.ops.dwconv.backends import direct_available
from lkconv.ops.dwconv.functional import depthwise_conv2d
from lkconv.ops.dwconv.planner import CONFIRM_REPS, DIRECT_MARGIN, plan_for, tune
from lkconv.ops.dwconv.spec import ALGORITHMS, BF16_RTOL, DIRECT_VARIANTS, FP32_RTOL, DwConvShape, useful_macs
from lkconv.ops.dwconv.timing import measure

__all__ = [
    "ALGORITHMS",
    "BF16_RTOL",
    "CONFIRM_REPS",
    "DIRECT_MARGIN",
    "DIRECT_VARIANTS",
    "FP32_RTOL",
    "DwConvShape",
    "depthwise_conv2d",
    "direct_available",
    "measure",
    "plan_for",
    "tune",
    "useful_macs",
]
