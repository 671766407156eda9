"""A segmentation run's network through the generic deploy paths: optimize_for_inference and ONNX export."""

from __future__ import annotations

import pytest
import torch

from lkconv.deploy.optimize import optimize_for_inference
from lkconv.engine.model import build_model

SMALL = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": [[3], [7], [7, 7], [7]]}


def _model():
    torch.manual_seed(0)
    config = {"model": "unireplknet_a", "model_args": {"num_classes": 4, "in_chans": 3, **SMALL},
              "adapter": "image", "adapter_args": {"in_chans": 3}, "task": "segment"}
    model = build_model(config)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters everywhere
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_optimize_for_inference_equals_eager():
    model = _model()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        want = model(x)
    fast = optimize_for_inference(model, x)
    got = fast(x)
    assert got.shape == want.shape == (2, 4, 64, 96)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel < 1e-4, rel
    # the decode head's conv-BN units were folded (no BatchNorm left in it)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.backbone.decode_head.modules())


def test_onnx_export_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lkconv.deploy.export import check_onnx, export_onnx

    model = _model()
    x = torch.rand(2, 3, 64, 64)
    path = export_onnx(model, x, tmp_path / "seg.onnx")
    assert check_onnx(path, model, x) < 1e-4
