"""Process-group set-up for ``torchrun``: one process per GPU with nccl, or gloo on the CPU; sharding, shutdown.

:func:`plan_distributed` decides, from the environment ``torchrun`` sets and what the machine has, the backend, the
device of this process and which SyncBatchNorm to use; it touches nothing, so the decision is tested on any machine.
NCCL only moves CUDA tensors: it is chosen exactly when the model runs on a GPU, never merely because CUDA exists.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .device import CudaProbe, DeviceError, cuda_probe, resolve_device

__all__ = ["DistInfo", "DistPlan", "plan_distributed", "setup_distributed", "shutdown_distributed",
           "all_reduce_sum", "wrap_ddp", "sync_batchnorm"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        """Whether this process is in a process group (``torchrun`` started it; a group of one included)."""
        return self.world_size > 1 or self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class DistPlan:
    """What :func:`setup_distributed` will do: ``backend`` None for a single process; ``sync_bn`` is ``"torch"``
    (``nn.SyncBatchNorm``, CUDA only) or ``"lkconv"`` (:class:`~lkconv.layers.norm.SyncBatchNorm2d`, any device)."""

    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device
    sync_bn: str | None


def plan_distributed(device: str | torch.device | None = "auto", env: Mapping[str, str] | None = None,
                     probe: CudaProbe | None = None) -> DistPlan:
    """The backend, device and SyncBatchNorm for this process under ``env`` (default ``os.environ``).

    Under ``torchrun`` (any ``--nproc_per_node``, 1 included: a group of one runs the DDP path, which is how a
    one-GPU machine checks it) with ``auto`` or ``cuda`` and GPUs present, each process takes
    ``cuda:LOCAL_RANK`` and nccl; on the CPU (``--device cpu``, or no GPU with ``auto``) gloo. An explicit
    ``cuda:N`` would put every process on one GPU, so it is refused there.
    """
    env = os.environ if env is None else env
    probe = probe or cuda_probe()
    world = int(env.get("WORLD_SIZE", "1"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    launched = "TORCHELASTIC_RUN_ID" in env and "MASTER_ADDR" in env  # torchrun, even --nproc_per_node 1
    if world <= 1 and not launched:
        return DistPlan(1, 0, None, resolve_device(device, probe), None)
    text = "auto" if device is None else str(device).strip().lower()
    if text.startswith("cuda:"):
        raise DeviceError(f"device: {device!r} under torchrun would put every process on one GPU; pass --device "
                          "cuda (or auto): each process then uses cuda:LOCAL_RANK")
    target = resolve_device(text, probe)  # validates the name and CUDA's presence
    if target.type == "cuda":
        if local_rank >= probe.count:
            raise DeviceError(f"LOCAL_RANK {local_rank} has no GPU: {probe.count} CUDA device(s) visible; start "
                              f"torchrun with --nproc_per_node <= {probe.count}")
        return DistPlan(world, local_rank, "nccl", torch.device("cuda", local_rank), "torch")
    return DistPlan(world, local_rank, "gloo", torch.device("cpu"), "lkconv")


def setup_distributed(device: str | torch.device | None = "auto") -> DistInfo:
    """Joins the process group that ``torchrun`` describes in the environment; a single process otherwise.

    On GPUs it binds this process to ``cuda:LOCAL_RANK`` (``torch.cuda.set_device``) before nccl starts, so the
    collectives and every default-device allocation use that GPU.
    """
    plan = plan_distributed(device)
    if plan.backend is None:
        return DistInfo(device=plan.device)
    if plan.device.type == "cuda":
        torch.cuda.set_device(plan.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(plan.backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), plan.local_rank, plan.backend, plan.device)


def sync_batchnorm(model: nn.Module, info: DistInfo) -> nn.Module:
    """BatchNorms synchronised over the processes: PyTorch's on CUDA (nccl), lkconv's CPU-capable one on gloo."""
    from ..layers.norm import convert_sync_batchnorm

    return convert_sync_batchnorm(model, on_cuda=info.device.type == "cuda")


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """``model`` in DistributedDataParallel (one GPU per process: ``device_ids=[local_rank]``); as is when alone."""
    if not info.enabled:
        return model
    if info.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index],
                                                   output_device=info.device.index)
    return nn.parallel.DistributedDataParallel(model)


def shutdown_distributed(info: DistInfo, *objects_to_drop) -> None:
    """Tears the group down without the intermittent gloo abort at exit: drop references, collect, barrier."""
    if not info.enabled or not dist.is_initialized():
        return
    del objects_to_drop
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sums ``values`` over the processes (on the process's GPU under nccl, which reduces CUDA tensors only)."""
    if not info.enabled:
        return values
    device = info.device if info.backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
