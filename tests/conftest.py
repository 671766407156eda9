import os

import pytest
import torch

# Tests are sized for 2 cores; keep torch from oversubscribing when pytest runs beside other work.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Training on a shared 2-core machine is many times faster on one thread (no OpenMP barrier spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def randomize_bn_and_scales(model: torch.nn.Module) -> None:
    """Gives every BatchNorm random statistics and every γ/β random values, so fusion tests are not trivial."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
        for n, p in model.named_parameters():
            if n.endswith((".gamma", ".beta")):
                p.copy_(torch.rand(p.shape, generator=g) - 0.5)


@pytest.fixture(scope="session")
def randomize():
    return randomize_bn_and_scales
