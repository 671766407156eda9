"""ONNX export of a deployed (re-parameterized) model with a dynamic batch dimension (extra ``lkconv[onnx]``)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from ..engine.device import model_device
from ..models._reparam import reparameterize_model

__all__ = ["export_onnx", "check_onnx"]


def _need(module: str, extra: str = "onnx"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"ONNX export needs {module}: pip install 'lkconv[{extra}]'") from e


@torch.no_grad()
def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path, *, opset: int = 18,
                dynamic_batch: bool = True) -> Path:
    """Fuses a copy of ``model`` and writes it as one self-contained ONNX file.

    Args:
        model: Any lkconv model or a run's :class:`~lkconv.modalities.base.PerceptionModel` (left unchanged).
        example_input: A batch with the input shape (its batch size does not matter with ``dynamic_batch``).
        path: Output ``.onnx`` file.
        opset: ONNX opset version.
        dynamic_batch: Make the batch dimension dynamic.
    """
    _need("onnx")
    _need("onnxscript")
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
                                    output_names=["output"], verbose=False)
    noisy.setLevel(level)
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(str(tmp), external_data=False)
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
