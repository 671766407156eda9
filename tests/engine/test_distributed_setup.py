"""The DDP set-up decisions (backend, device, SyncBatchNorm, DDP arguments) for given environments and machines,
checked on the CPU with a stand-in :class:`CudaProbe` and recording fakes instead of GPUs and process groups."""

import pytest
import torch
from torch import nn

import lkconv.engine.distributed as distributed
from lkconv.engine.device import CudaProbe, DeviceError
from lkconv.engine.distributed import DistInfo, plan_distributed, sync_batchnorm, wrap_ddp
from lkconv.layers.norm import SyncBatchNorm2d

NO_GPU = CudaProbe(built=True, count=0)
CPU_TORCH = CudaProbe(built=False, count=0)
FOUR_GPUS = CudaProbe(built=True, count=4, bf16=(True,) * 4)
TORCHRUN = {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}
ONE_PROCESS_TORCHRUN = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "x",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("device, env, probe, backend, want_device, sync_bn", [
    ("auto", {}, FOUR_GPUS, None, "cuda:0", None),                  # one process: no group
    ("cpu", {"WORLD_SIZE": "1"}, FOUR_GPUS, None, "cpu", None),
    ("auto", TORCHRUN, FOUR_GPUS, "nccl", "cuda:2", "torch"),       # one GPU per process
    ("cuda", TORCHRUN, FOUR_GPUS, "nccl", "cuda:2", "torch"),
    ("cpu", TORCHRUN, FOUR_GPUS, "gloo", "cpu", "lkconv"),          # CUDA present but unused: never nccl
    ("auto", TORCHRUN, NO_GPU, "gloo", "cpu", "lkconv"),
    ("auto", TORCHRUN, CPU_TORCH, "gloo", "cpu", "lkconv"),
    ("auto", {**ONE_PROCESS_TORCHRUN}, FOUR_GPUS, "nccl", "cuda:0", "torch"),  # a group of one: the DDP path
    ("cpu", {**ONE_PROCESS_TORCHRUN}, FOUR_GPUS, "gloo", "cpu", "lkconv"),
    ("auto", {"WORLD_SIZE": "1", "MASTER_ADDR": "h"}, FOUR_GPUS, None, "cuda:0", None),  # not torchrun
])
def test_plan(device, env, probe, backend, want_device, sync_bn):
    plan = plan_distributed(device, env, probe)
    assert (plan.backend, str(plan.device), plan.sync_bn) == (backend, want_device, sync_bn)
    assert plan.world_size == int(env.get("WORLD_SIZE", "1")) and plan.local_rank == int(env.get("LOCAL_RANK", "0"))


def test_plan_refuses_one_gpu_for_every_process():
    with pytest.raises(DeviceError, match="every process on one GPU"):
        plan_distributed("cuda:1", TORCHRUN, FOUR_GPUS)


def test_plan_refuses_more_processes_than_gpus():
    with pytest.raises(DeviceError, match="LOCAL_RANK 2 has no GPU: 2 CUDA device"):
        plan_distributed("cuda", TORCHRUN, CudaProbe(True, 2, (True, True)))


def test_plan_refuses_cuda_without_cuda():
    with pytest.raises(DeviceError, match="built without CUDA"):
        plan_distributed("cuda", TORCHRUN, CPU_TORCH)


@pytest.fixture
def fake_group(monkeypatch):
    """torchrun's rank 2 of 4 on a 4-GPU node; records set_device and init_process_group calls in order."""
    calls = []
    monkeypatch.setattr(distributed, "plan_distributed", lambda device: plan_distributed(device, TORCHRUN, FOUR_GPUS))
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 4)
    return calls


def test_setup_binds_the_gpu_before_nccl(fake_group):
    info = distributed.setup_distributed("auto")
    assert fake_group == [("set_device", 2), ("init", "nccl")]
    assert (info.rank, info.world_size, info.local_rank, info.backend, str(info.device)) == (2, 4, 2, "nccl", "cuda:2")


def test_setup_on_cpu_uses_gloo_and_no_gpu(fake_group):
    info = distributed.setup_distributed("cpu")
    assert fake_group == [("init", "gloo")] and info.device == torch.device("cpu")


def test_single_process_setup_joins_nothing(monkeypatch):
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: pytest.fail("no group for one process"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    info = distributed.setup_distributed("cpu")
    assert not info.enabled and info.backend is None and info.device.type == "cpu"


def test_a_group_of_one_is_enabled():
    assert DistInfo(0, 1, 0, "nccl", torch.device("cuda", 0)).enabled and not DistInfo().enabled


def _bn_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))


def test_sync_batchnorm_choice():
    gloo = sync_batchnorm(_bn_net(), DistInfo(0, 2, 0, "gloo", torch.device("cpu")))
    assert [type(m) for m in gloo.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [SyncBatchNorm2d] * 2
    nccl = sync_batchnorm(_bn_net(), DistInfo(0, 2, 0, "nccl", torch.device("cuda", 0)))
    assert [type(m) for m in nccl.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [nn.SyncBatchNorm] * 2


def test_sync_batchnorm_keeps_the_statistics():
    net = _bn_net()
    with torch.no_grad():
        net[1].running_mean.uniform_()
    want = {k: v.clone() for k, v in net.state_dict().items()}
    got = sync_batchnorm(net, DistInfo(0, 2, 0, "nccl", torch.device("cuda", 0))).state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_wrap_ddp_arguments(monkeypatch):
    seen = []

    class FakeDDP(nn.Module):
        def __init__(self, module, **kw):
            super().__init__()
            seen.append(kw)

    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", FakeDDP)
    model = nn.Linear(2, 2)
    assert wrap_ddp(model, DistInfo()) is model
    wrap_ddp(model, DistInfo(1, 4, 1, "nccl", torch.device("cuda", 1)))
    wrap_ddp(model, DistInfo(1, 4, 1, "gloo", torch.device("cpu")))
    assert seen == [{"device_ids": [1], "output_device": 1}, {}]
