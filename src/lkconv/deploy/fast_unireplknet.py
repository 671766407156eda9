"""UniRepLKNet's fast inference block: one memory format, fused element-wise kernels, measured pointwise paths.

:meth:`lkconv.models.unireplknet.UniRepLKNetBlock.inference_form` returns a :class:`FastUniRepLKNetBlock`; this
module holds it because it is deploy machinery (C kernels from :mod:`lkconv.ops.fused`, path timing), not part of
the model's definition. It is exact in real arithmetic: the same parameters, the same formula, another schedule.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers.dilated_reparam import DilatedReparamBlock
from ..ops.dwconv import measure as _measure
from ..ops.fused import PW1_PATHS, PW2_PATHS, gelu_grn, pointwise_add, pointwise_gelu, se_gate

__all__ = ["FastUniRepLKNetBlock", "POINTWISE_REPS"]

#: Timed bursts per pointwise path when a block chooses its paths (the minimum decides; 3 was too few to choose the
#: same paths twice in a row on a shared 2-core machine).
POINTWISE_REPS = 7
#: Pointwise paths chosen in this process, per (activation shapes, dtype, pw1 weight shape, threads).
_POINTWISE_CHOICES: dict[tuple, tuple[str, str]] = {}


def _linear_to_conv1x1(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


class FastUniRepLKNetBlock(nn.Module):
    """A fused UniRepLKNet block in one memory format: mixer → [BN] → SE → 1×1 conv → GELU → GRN → 1×1 conv → + x.

    ``norm`` is the BatchNorm after the mixer where it could not fold into it (``mixers="inception"`` /
    ``"lsconv"``), else None. Built from a re-parameterized block (its deploy structure), sharing no parameters
    with it that the caller will still train.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if not block.deploy:
            raise ValueError("FastUniRepLKNetBlock needs a re-parameterized block (call reparameterize_model first)")
        dw = block.dwconv.lk_origin if isinstance(block.dwconv, DilatedReparamBlock) else block.dwconv
        self.dwconv = dw
        self.norm: nn.Module | None = None if isinstance(block.norm, nn.Identity) else block.norm
        self.se = block.se
        lin1, grn, lin2 = block.pointwise_layers()
        if grn.beta is not None:
            raise ValueError("FastUniRepLKNetBlock needs GRN beta folded into pwconv2 (call reparameterize_model)")
        self.pw1 = _linear_to_conv1x1(lin1)
        self.grn_gamma = nn.Parameter(grn.gamma.detach().reshape(1, -1, 1, 1).clone())
        self.pw2 = _linear_to_conv1x1(lin2)

        self.pw1_path, self.pw2_path = "conv_gelu", "conv_add"
        self.calibrate = False  # set by optimize_for_inference for its example forward

    def _ffn_in(self, y: torch.Tensor, path: str) -> torch.Tensor:
        y, gelu_done = pointwise_gelu(y, self.pw1.weight, self.pw1.bias, path)
        return gelu_grn(y, self.grn_gamma, gelu_done=gelu_done)  # (γ·N(x) + 1)·GELU(x): C kernels when available

    def _choose_paths(self, y: torch.Tensor, x: torch.Tensor) -> None:
        """Measure the ways of running the two pointwise layers on these inputs; keep the fastest of each.

        Blocks with the same activation and weight shapes (most blocks of a stage) share one measurement per process.
        """
        key = (tuple(y.shape), tuple(x.shape), y.dtype, tuple(self.pw1.weight.shape), torch.get_num_threads())
        if key not in _POINTWISE_CHOICES:
            times = _measure({p: (lambda p=p: self._ffn_in(y, p)) for p in PW1_PATHS}, POINTWISE_REPS)
            pw1 = min(times, key=times.__getitem__)
            z = self._ffn_in(y, pw1)
            times = _measure({p: (lambda p=p: pointwise_add(z, self.pw2.weight, self.pw2.bias, x, p))
                              for p in PW2_PATHS}, POINTWISE_REPS)
            _POINTWISE_CHOICES[key] = (pw1, min(times, key=times.__getitem__))
        self.pw1_path, self.pw2_path = _POINTWISE_CHOICES[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        if self.norm is not None:
            y = self.norm(y)
        se = self.se
        y = se_gate(y, se.down.weight, se.down.bias, se.up.weight, se.up.bias)  # in place when it can
        if self.calibrate:
            self._choose_paths(y, x)
            self.calibrate = False
        y = self._ffn_in(y, self.pw1_path)
        return pointwise_add(y, self.pw2.weight, self.pw2.bias, x, self.pw2_path)  # x + pw2(y)

    def extra_repr(self) -> str:
        return f"pw1={self.pw1_path}, pw2={self.pw2_path}"
