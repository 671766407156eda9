"""ONNX export of a deployed (re-parameterized) model with a dynamic batch dimension (extra ``lkconv[onnx]``)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from ..engine.device import model_device
from ..models._reparam import reparameterize_model

__all__ = ["export_onnx", "check_onnx", "onnx_metadata", "read_onnx_metadata"]

_LAYOUTS = {"image": "NCHW", "video": "NTCHW", "audio": "NL (mono waveform samples)",
            "pointcloud": "NPD (points x coordinates[+normals])"}


def _need(module: str, extra: str = "onnx"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"ONNX export needs {module}: pip install 'lkconv[{extra}]'") from e


def onnx_metadata(model: nn.Module, example_input: torch.Tensor, *, source_run: str | Path | None = None
                  ) -> dict[str, str]:
    """What a consumer of the ONNX file needs besides the graph: the class names, the input's layout, shape and value
    range (and whether normalization is baked in), the lkconv version and where the weights came from."""
    import json

    from .. import __version__

    meta = {"lkconv_version": __version__, "input_shape": json.dumps(["batch", *example_input.shape[1:]])}
    run_config = getattr(model, "run_config", None)
    if run_config is not None:  # a run's model: the adapter (normalization, features) is part of the graph
        modality = run_config.get("modality", "image")
        meta.update({
            "source_run": str(Path(source_run).resolve()) if source_run else "",
            "model": str(run_config.get("model", "")), "task": str(run_config.get("task", "classify")),
            "modality": modality, "class_names": json.dumps(list(getattr(model, "class_names", []) or [])),
            "input_layout": _LAYOUTS.get(modality, f"batch first, then {modality} samples as lkconv reads them"),
            "input_range": ("float32 in [0, 1] (pixel / 255), RGB or grey; normalization is baked in (inside the "
                            "graph)" if modality in ("image", "video") else
                            "float32 samples as `lkconv predict` reads a file with the preprocessing below; the "
                            "modality's normalization and features are baked in (inside the graph)"),
            "normalization_in_model": "true",
            "preprocessing": json.dumps(run_config.get("preprocessing", {})),
            "output_layout": _output_layout(str(run_config.get("task", "classify"))),
        })
    else:  # a bare backbone: inputs must already be normalized as in training
        cfg = getattr(model, "pretrained_cfg", None)
        if cfg:  # published weights: their origin and the preprocessing they expect
            meta["pretrained_cfg"] = json.dumps(cfg)
        meta.update({
            "source_run": "", "model": type(model).__name__, "class_names": "[]", "input_layout": "NCHW"
            if example_input.dim() == 4 else "NCL", "normalization_in_model": "false",
            "input_range": "normalized float32 (e.g. ImageNet mean/std for images); normalization is not in the graph",
        })
    return meta


def _output_layout(task: str) -> str:
    from ..engine.tasks import get_task

    return get_task(task).output_layout


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    onnx = _need("onnx")
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@torch.no_grad()
def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path, *, opset: int = 18,
                dynamic_batch: bool = True, metadata: dict[str, str] | None = None,
                int8: nn.Module | None = None) -> Path:
    """Fuses a copy of ``model`` and writes it as one self-contained ONNX file.

    Args:
        model: Any lkconv model or a run's :class:`~lkconv.modalities.base.PerceptionModel` (left unchanged).
        example_input: A batch with the input shape (its batch size does not matter with ``dynamic_batch``).
        path: Output ``.onnx`` file.
        opset: ONNX opset version.
        dynamic_batch: Make the batch dimension dynamic.
        metadata: ONNX ``metadata_props``; default :func:`onnx_metadata` of ``model`` (no source run).
        int8: ``optimize_for_inference(model, ..., dtype=torch.int8, calibration=...)``'s result: write its quantized
            layers in QDQ form (QuantizeLinear/DequantizeLinear around them, per-channel int8 weight initializers;
            :func:`lkconv.deploy.int8.qdq_model`), with its calibrated scales.
    """
    _need("onnx")
    _need("onnxscript")
    table = None
    if int8 is not None:
        from .int8 import onnx_translation_table, qdq_model

        net, table = qdq_model(model, int8), onnx_translation_table()
    else:
        net = reparameterize_model(copy.deepcopy(model).eval())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_shapes = None
    if dynamic_batch:
        if example_input.shape[0] == 1:  # a batch of 1 would be specialised as a constant
            example_input = example_input.repeat(2, *([1] * (example_input.dim() - 1)))
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    import logging

    noisy = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example_input,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                    opset_version=opset, external_data=False, input_names=["input"],
                                    output_names=["output"], verbose=False, custom_translation_table=table)
    noisy.setLevel(level)
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(str(tmp), external_data=False)
    onnx = _need("onnx")
    proto = onnx.load(str(tmp))
    for key, value in (metadata if metadata is not None else onnx_metadata(model, example_input)).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def check_onnx(path: str | Path, model: nn.Module, example_input: torch.Tensor) -> float:
    """Runs the file with onnxruntime (CPU) and returns the max relative difference to PyTorch's output."""
    ort = _need("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    got = torch.from_numpy(sess.run(None, {name: example_input.detach().cpu().float().numpy()})[0])
    with torch.no_grad():  # PyTorch on the model's device (a CUDA model included), compared on the CPU
        want = model.eval()(example_input.to(model_device(model))).float().cpu()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
