import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lkconv.layers.dcls import DCLS_VERSIONS, DCLSConv2d


@pytest.mark.parametrize("version", DCLS_VERSIONS)
def test_kernel_mass_equals_weight_sum(version):
    m = DCLSConv2d(6, kernel_count=5, dilated_kernel_size=9, version=version)
    k = m.build_kernel()
    assert k.shape == (6, 1, 9, 9)
    torch.testing.assert_close(k.sum(dim=(1, 2, 3)), m.weight.sum(dim=1), rtol=1e-5, atol=1e-6)
    # Each weight alone puts exactly its own value on the grid.
    with torch.no_grad():
        m.weight.zero_()
        m.weight[2, 3] = 1.7
    torch.testing.assert_close(m.build_kernel().sum(), torch.tensor(1.7))


def test_bilinear_integer_position_is_one_hot():
    m = DCLSConv2d(1, kernel_count=1, dilated_kernel_size=7, version="v1", bias=False)
    with torch.no_grad():
        m.weight.fill_(2.5)
        m.P[:, 0, 0] = torch.tensor([-2.0, 1.0])  # row index 1, column index 4
    expected = torch.zeros(1, 1, 7, 7)
    expected[0, 0, 1, 4] = 2.5
    assert torch.equal(m.build_kernel(), expected)


def test_bilinear_fractional_position_splits_mass():
    m = DCLSConv2d(1, kernel_count=1, dilated_kernel_size=5, version="v1", bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
        m.P[:, 0, 0] = torch.tensor([0.25, 0.0])
    k = m.build_kernel()[0, 0]
    torch.testing.assert_close(k[2, 2], torch.tensor(0.75))
    torch.testing.assert_close(k[3, 2], torch.tensor(0.25))


@pytest.mark.parametrize("version", DCLS_VERSIONS)
def test_gradients_reach_weights_positions_sigma(version):
    m = DCLSConv2d(4, kernel_count=6, dilated_kernel_size=7, version=version)
    x = torch.randn(2, 4, 10, 10)
    m(x).square().sum().backward()
    assert m.weight.grad.abs().sum() > 0
    assert m.P.grad.abs().sum() > 0
    assert m.bias.grad.abs().sum() > 0
    if version == "gauss":
        assert m.SIG.grad.abs().sum() > 0


@pytest.mark.parametrize("version", DCLS_VERSIONS)
@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_dense_conversion_equals_forward(version, size):
    m = DCLSConv2d(5, kernel_count=4, dilated_kernel_size=size, version=version)
    dense = m.to_dense_conv()
    assert isinstance(dense, nn.Conv2d) and dense.groups == 5 and dense.kernel_size == (size, size)
    x = torch.randn(2, 5, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), m(x))
        expected = F.conv2d(x, m.build_kernel(), m.bias, padding="same", groups=5)
        torch.testing.assert_close(m(x), expected)


def test_clamp_parameters_keeps_positions_on_grid():
    m = DCLSConv2d(3, kernel_count=4, dilated_kernel_size=5)
    with torch.no_grad():
        m.P.mul_(100.0)
    m.clamp_parameters()
    assert m.P.abs().max() <= 2.0
    assert (m.P.abs() == 2.0).any()


def test_shared_positions_across_layers():
    shared = nn.Parameter(torch.zeros(2, 4, 3))
    a = DCLSConv2d(4, kernel_count=3, dilated_kernel_size=7, positions=shared)
    b = DCLSConv2d(4, kernel_count=3, dilated_kernel_size=7, positions=shared)
    assert a.P is shared and b.P is shared and torch.equal(shared, torch.zeros(2, 4, 3))
    model = nn.Sequential(a, b)
    assert sum(p is shared for p in model.parameters()) == 1
    model(torch.randn(1, 4, 8, 8)).sum().backward()
    assert shared.grad is not None and shared.grad.abs().sum() > 0


def test_position_init_statistics():
    m = DCLSConv2d(64, kernel_count=64, dilated_kernel_size=31)
    assert abs(m.P.std().item() - 0.5) < 0.05 and abs(m.P.mean().item()) < 0.05
    assert torch.equal(m.SIG, torch.full_like(m.SIG, 0.23))


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        DCLSConv2d(4, version="v3")
    with pytest.raises(ValueError):
        DCLSConv2d(4, kernel_count=3, positions=nn.Parameter(torch.zeros(2, 4, 2)))
