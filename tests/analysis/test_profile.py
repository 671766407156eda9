import json

import pytest
import torch
from torch import nn

import lkconv
from lkconv.analysis.profile import MachineRates, plot_profile, profile_model


def test_bounds_follow_the_definition():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Linear(16, 5))
    x = torch.randn(2, 4, 16, 16)
    machine = MachineRates(gemm_flops=1e9, bandwidth=1e8, threads=1)
    rep = profile_model(model, x, repeats=2, machine=machine)
    conv, relu, lin = rep.layers
    assert conv.macs == 2 * 8 * 16 * 16 * 4 * 9 and relu.macs == 0 and lin.macs == 2 * 8 * 16 * 5 * 16
    conv_bytes = (2 * 4 * 256 + 2 * 8 * 256 + 8 * 4 * 9 + 8) * 4
    assert conv.bytes == conv_bytes
    assert conv.bound_s == pytest.approx(max(2 * conv.macs / 1e9, conv_bytes / 1e8))
    assert rep.waterline_s == pytest.approx(sum(l.bound_s for l in rep.layers))
    assert rep.total_latency_s > 0 and all(l.latency_s > 0 for l in rep.layers)
    d = rep.to_dict()
    assert d["efficiency"] == pytest.approx(2 * rep.macs / (rep.total_latency_s * 1e9))
    json.dumps(d)


def test_profile_groups_blocks_and_plots(tmp_path):
    model = lkconv.create_model("unireplknet_a", deploy=True, num_classes=10)
    rep = profile_model(model, torch.randn(1, 3, 64, 64), repeats=1,
                        machine=MachineRates(gemm_flops=5e10, bandwidth=2e10, threads=2))
    blocks = [b["block"] for b in rep.blocks()]
    assert "stages.2.5" in blocks and "downsample_layers.0" in blocks and "head" in blocks
    assert sum(b["macs"] for b in rep.blocks()) == rep.macs
    plot_profile(rep, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000
