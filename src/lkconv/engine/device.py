"""Where a run computes: the device, its mixed precision, the data-loading settings and cuDNN's autotuner.

lkconv is CPU-first, not CPU-only. Every command takes ``--device auto|cpu|cuda|cuda:N`` (config key ``device``);
:func:`resolve_device` turns it into a ``torch.device`` or a clear error naming what was found. The other choices
follow from the device:

* :func:`choose_precision`: on CUDA, bf16 autocast where the GPU supports it, else fp16 autocast with a
  ``GradScaler``, unless ``amp`` is switched off; on the CPU, bf16 autocast only when ``amp`` is asked for (CPU
  training stays fp32 and bit-exact by default).
* :func:`loader_settings`: worker processes from the cores each process may use (``num_workers: None``), pinned
  memory and non-blocking copies towards a GPU, persistent workers and prefetching when there are workers.
* :func:`configure_backends`: ``cudnn.benchmark`` unless the run is ``deterministic``.

The CUDA availability is read through :class:`CudaProbe` so that the decisions are testable without a GPU.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

__all__ = ["DEVICE_CHOICES", "CudaProbe", "DeviceError", "LoaderSettings", "Precision", "choose_precision",
           "configure_backends", "cores_per_process", "cuda_probe", "default_num_workers", "loader_settings",
           "model_device", "move_batch", "resolve_device"]

#: What ``--device`` accepts, for error messages and ``--help``.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


class DeviceError(ValueError):
    """``--device`` names a device this machine does not have, or is not a device name at all."""


@dataclass(frozen=True)
class CudaProbe:
    """What this process can see of CUDA: whether torch was built with it, how many devices, and which of them
    support bf16 (by index)."""

    built: bool
    count: int
    bf16: tuple[bool, ...] = ()
    version: str | None = None

    def bf16_supported(self, index: int) -> bool:
        return index < len(self.bf16) and self.bf16[index]


def cuda_probe() -> CudaProbe:
    """The real :class:`CudaProbe` of this process (initialises nothing when torch has no CUDA)."""
    built = torch.backends.cuda.is_built()
    count = torch.cuda.device_count() if built and torch.cuda.is_available() else 0
    bf16 = tuple(torch.cuda.get_device_capability(i)[0] >= 8 for i in range(count))
    return CudaProbe(built, count, bf16, torch.version.cuda)


def resolve_device(spec: str | torch.device | None = "auto", probe: CudaProbe | None = None) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` (the current CUDA device) or ``cuda:N``.

    Raises:
        DeviceError: an unknown name, or CUDA asked for where torch was built without it, no device is visible,
            or the index is out of range; the message says which, and what is accepted.
    """
    probe = probe or cuda_probe()
    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        return _cuda(None, probe) if probe.count > 0 else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = None
        if text != "cuda":
            tail = text.split(":", 1)[1]
            if not tail.isdigit():
                raise DeviceError(f"device: {spec!r} is not accepted; choose one of {DEVICE_CHOICES} (N a GPU index)")
            index = int(tail)
        return _cuda(index, probe)
    raise DeviceError(f"device: {spec!r} is not accepted; choose one of {DEVICE_CHOICES}")


def _cuda(index: int | None, probe: CudaProbe) -> torch.device:
    if not probe.built:
        raise DeviceError(f"device: CUDA was asked for, but this torch ({torch.__version__}) was built without CUDA; "
                          "install a CUDA build of torch, or use --device cpu (or auto)")
    if probe.count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else " (no driver or no GPU visible)"
        raise DeviceError(f"device: CUDA was asked for, but torch (CUDA {probe.version}) found no CUDA device{why}; "
                          "use --device cpu (or auto)")
    if index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
    if index >= probe.count:
        raise DeviceError(f"device: cuda:{index} is out of range: {probe.count} CUDA device(s) found "
                          f"(cuda:0 .. cuda:{probe.count - 1}); accepted: {DEVICE_CHOICES}")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Precision:
    """The arithmetic of a run: autocast to ``dtype`` on ``device_type`` (None: plain fp32), with a gradient
    scaler when that dtype is fp16 (its narrow exponent range underflows small gradients)."""

    device_type: str
    dtype: torch.dtype | None
    grad_scaler: bool = False

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    def make_scaler(self) -> "torch.amp.GradScaler | None":
        return torch.amp.GradScaler(self.device_type) if self.grad_scaler else None

    def describe(self) -> str:
        if self.dtype is None:
            return "fp32"
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return f"{name} autocast" + (" + grad scaler" if self.grad_scaler else "")


def choose_precision(device: torch.device, amp: bool | None, probe: CudaProbe | None = None) -> Precision:
    """Mixed precision for ``device``: ``amp=None`` means on for CUDA, off for the CPU.

    CUDA: bf16 where the GPU supports it (compute capability 8.0+: same range as fp32, no scaler needed), else fp16
    with a ``GradScaler``. CPU: bf16 autocast only when ``amp`` is True.
    """
    if device.type == "cuda":
        if amp is False:
            return Precision("cuda", None)
        probe = probe or cuda_probe()
        index = device.index if device.index is not None else 0
        if probe.bf16_supported(index):
            return Precision("cuda", torch.bfloat16)
        return Precision("cuda", torch.float16, grad_scaler=True)
    return Precision(device.type, torch.bfloat16 if amp else None)


def cores_per_process() -> int:
    """The cores this process may use (its CPU affinity), divided among the processes ``torchrun`` started on
    this node (``LOCAL_WORLD_SIZE``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores // local)


#: At most this many loader workers per process by default (more rarely helps and each holds a dataset copy).
MAX_DEFAULT_WORKERS = 8


def default_num_workers(device: torch.device, cores: int | None = None) -> int:
    """Worker processes for ``num_workers: None``.

    On CUDA the model runs on the GPU, so the process's cores can decode and augment: one core stays with the main
    process (it launches the kernels), the rest load, up to :data:`MAX_DEFAULT_WORKERS`. On the CPU the model's own
    threads use every core, and a worker takes cores from them; only on large machines (16+ cores per process) a
    few workers pay for themselves, one per 8 cores. 0 loads in the main process (always allowed explicitly).
    """
    cores = cores_per_process() if cores is None else cores
    if device.type == "cuda":
        return max(0, min(MAX_DEFAULT_WORKERS, cores - 1))
    return min(4, cores // 8) if cores >= 16 else 0


@dataclass(frozen=True)
class LoaderSettings:
    """How batches reach ``device``: ``num_workers`` processes (0: the main process), pinned (page-locked) host
    memory and non-blocking copies towards a GPU, workers kept between epochs, ``prefetch_factor`` batches queued
    per worker."""

    num_workers: int
    pin_memory: bool = False
    non_blocking: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None


def loader_settings(device: torch.device, num_workers: int | None, cores: int | None = None) -> LoaderSettings:
    """The :class:`LoaderSettings` for ``device``; ``num_workers=None`` chooses with :func:`default_num_workers`."""
    if num_workers is None:
        num_workers = default_num_workers(device, cores)
    if num_workers < 0:
        raise ValueError(f"num_workers: must be >= 0 or None (auto), got {num_workers}")
    gpu = device.type == "cuda"
    workers = num_workers > 0
    return LoaderSettings(num_workers, pin_memory=gpu, non_blocking=gpu, persistent_workers=workers,
                          prefetch_factor=4 if workers else None)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def move_batch(x: torch.Tensor, y: torch.Tensor, device: torch.device, *, non_blocking: bool = False,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` on ``device`` (a no-op for CPU tensors bound for the CPU), ``x`` channels_last when asked."""
    x = x.to(device, non_blocking=non_blocking)
    y = y.to(device, non_blocking=non_blocking)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """``cudnn.benchmark`` (cuDNN times its algorithms per shape and keeps the fastest) on CUDA unless the run is
    ``deterministic``, where the choice could vary between runs."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            torch.backends.cudnn.deterministic = True
            # cuBLAS is deterministic only with a fixed workspace; read when its first handle is created
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
