"""Counting parameters and multiply-accumulates (MACs) per layer, on any device including ``meta``.

MACs count the multiply-adds of convolutions (any dimension, grouped, dilated) and linear layers, as the
reference's numbers do; norms, activations and pooling are not counted (they are reported as zero-MAC layers by
:func:`layer_costs` so memory traffic can still be attributed to them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["LayerCost", "layer_costs", "count_macs", "count_params"]


@dataclass
class LayerCost:
    name: str
    type: str
    macs: int  # for the whole batch
    params: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    weight_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _module_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, nn.modules.conv._ConvNd):
        per_out = (m.in_channels // m.groups) * math.prod(m.kernel_size)
        return out.numel() * per_out
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


@torch.no_grad()
def layer_costs(model: nn.Module, example_input: torch.Tensor, *, leaves_only: bool = True) -> list[LayerCost]:
    """Runs one forward pass and records, per leaf module, MACs, parameters and activation sizes.

    Works on the ``meta`` device (no memory, no compute) so the largest variants can be counted anywhere.
    """
    records: list[LayerCost] = []
    handles = []
    names = {m: n for n, m in model.named_modules()}

    def hook(m, args, out):
        x, y = _first_tensor(args), _first_tensor(out)
        if x is None or y is None:
            return
        params = sum(p.numel() for p in m.parameters(recurse=False))
        records.append(
            LayerCost(
                name=names[m], type=type(m).__name__, macs=int(_module_macs(m, x, y)), params=params,
                input_shape=tuple(x.shape), output_shape=tuple(y.shape),
                input_bytes=x.numel() * x.element_size(), output_bytes=y.numel() * y.element_size(),
                weight_bytes=sum(p.numel() * p.element_size() for p in m.parameters(recurse=False)),
            )
        )

    for m in model.modules():
        if not leaves_only or next(m.children(), None) is None:
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return records


def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Total MACs of one forward pass over ``example_input`` (the whole batch)."""
    return sum(r.macs for r in layer_costs(model, example_input))
