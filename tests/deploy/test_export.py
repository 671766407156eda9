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


def _tiny_run(root):
    """A 32 px image run directory written without training (config.json + weights)."""
    from lkconv.engine.model import build_model as build_run_model
    from lkconv.engine.run_dir import RunDir

    cfg = {"model": "unireplknet_a", "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64],
                                                     "kernel_sizes": [[3], [7], [7], [7]], "num_classes": 3,
                                                     "in_chans": 3},
           "adapter": "image", "adapter_args": {"in_chans": 3}, "task": "classify", "class_names": ["cat", "dog", "owl"],
           "modality": "image", "raw_shape": [3, 32, 32], "preprocessing": {"img_size": 32, "channels": 3}}
    run = RunDir(root / "tiny_run")
    run.write_config({"model": "unireplknet_a"}, cfg)
    run.save_weights({k: v.contiguous() for k, v in build_run_model(cfg).state_dict().items()})
    return run.path


def test_export_of_a_run_records_metadata_and_says_where_it_wrote(tmp_path, capsys, monkeypatch):
    """Issue 14, items 17 and 18: class names, input layout and range, version and source run in metadata_props;
    the printed path is absolute even for a relative --out into a folder that did not exist."""
    import json

    from lkconv import __version__
    from lkconv.deploy.export import read_onnx_metadata

    run = _tiny_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--run", "tiny_run", "--out", "new_dir/m.onnx", "--no-check"]) == 0
    written = tmp_path / "new_dir" / "m.onnx"
    assert f"written: {written.resolve()} " in capsys.readouterr().out  # was: nothing said about the new folder
    meta = read_onnx_metadata(written)  # was: no metadata_props at all
    assert json.loads(meta["class_names"]) == ["cat", "dog", "owl"]
    assert meta["output_layout"].startswith("(batch, classes) logits in class_names order")
    assert meta["input_layout"] == "NCHW" and json.loads(meta["input_shape"]) == ["batch", 3, 32, 32]
    assert meta["normalization_in_model"] == "true" and "[0, 1]" in meta["input_range"]
    assert meta["lkconv_version"] == __version__ and meta["source_run"] == str(run.resolve())
    assert meta["modality"] == "image" and meta["task"] == "classify" and meta["model"] == "unireplknet_a"
    assert json.loads(meta["preprocessing"]) == {"img_size": 32, "channels": 3}


def test_a_bare_model_says_its_input_is_not_normalized_in_the_graph(tmp_path):
    from lkconv.deploy.export import onnx_metadata, read_onnx_metadata

    model = lkconv.create_model("unireplknet_a", num_classes=4).eval()
    meta = onnx_metadata(model, torch.randn(1, 3, 64, 64))
    assert meta["normalization_in_model"] == "false" and meta["source_run"] == "" and meta["class_names"] == "[]"
    assert meta["input_layout"] == "NCHW" and "normalization is not in the graph" in meta["input_range"]
    from lkconv.deploy.export import export_onnx

    path = export_onnx(model, torch.randn(1, 3, 64, 64), tmp_path / "bare.onnx")
    assert read_onnx_metadata(path) == meta  # export_onnx records the same by default


def test_a_video_run_with_motion_channels_exports_and_matches(tmp_path, randomize):
    """The video adapter's frame differences and motion energy (slices, products, signed square roots) are part of
    the exported graph: onnxruntime on the raw clip equals PyTorch."""
    from lkconv.deploy.export import check_onnx, export_onnx
    from lkconv.engine.model import build_model as build_run_model

    cfg = {"model": "unireplknet_a", "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64],
                                                     "kernel_sizes": [[3], [7], [7], [7]], "num_classes": 4,
                                                     "in_chans": 4},
           "adapter": "video", "adapter_args": {"num_frames": 4, "in_chans": 1, "layout": "grid",
                                                "temporal_diff": True, "motion": True},
           "task": "classify", "class_names": ["l", "r", "u", "d"], "modality": "video", "raw_shape": [4, 1, 16, 16]}
    model = build_run_model(cfg).eval()
    randomize(model)
    clip = torch.rand(2, 4, 1, 16, 16)
    path = export_onnx(model, clip, tmp_path / "v.onnx")
    assert check_onnx(path, model, torch.rand(3, 4, 1, 16, 16)) < 1e-4
