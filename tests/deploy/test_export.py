import pytest
import torch

import lkconv
from lkconv.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path, randomize):
    from lkconv.deploy.export import check_onnx, export_onnx

    model = lkconv.create_model("unireplknet_a", num_classes=10).eval()
    randomize(model)
    path = export_onnx(model, torch.randn(2, 3, 64, 64), tmp_path / "a.onnx")
    for batch in (1, 5):
        assert check_onnx(path, model, torch.randn(batch, 3, 64, 64)) < 1e-4
    assert not any(p.name.endswith(".data") for p in tmp_path.iterdir())  # one self-contained file


def test_export_command(tmp_path, capsys):
    assert main(["export", "--model", "unireplknet_a", "--img-size", "64", "--num-classes", "7",
                 "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max relative difference" in out and (tmp_path / "m.onnx").stat().st_size > 1e6
