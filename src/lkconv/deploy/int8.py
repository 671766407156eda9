"""int8 inference: post-training static quantization of the dense (pointwise) layers (issue 17).

``optimize_for_inference(model, example, dtype=torch.int8, calibration=...)`` lands here (:func:`optimize_int8`).
What is quantized, and why:

* **the FFN's two pointwise layers of every UniRepLKNet block** (``pwconv1``: C → 4C, ``pwconv2``: 4C → C), ~80 % of
  the multiply-adds. Weights: int8, **per output channel, symmetric** (zero point 0, ±127). Activations: uint8,
  **per tensor, asymmetric** (scale and zero point from ranges calibrated on user data: a percentile of each
  batch's values, or min/max). They run on oneDNN's int8 GEMM (``torch.ops.onednn.qlinear_pointwise``: AMX-INT8 /
  VNNI where the CPU has them), which reads the uint8 input and writes the float output directly (no output
  requantization), ``pwconv1`` with the exact GELU in its epilogue, ``pwconv2`` with the residual addition in
  its. Their uint8 input is written by the C kernels that produce it, in the same pass: the SE gating before
  ``pwconv1`` and the GRN scaling before ``pwconv2`` (``quantize=`` of :func:`~lkconv.ops.fused.se_gate` /
  :func:`~lkconv.ops.fused.gelu_grn`: the codes ``torch.quantize_per_tensor`` gives, no float tensor written and
  re-read by a separate quantization);
* **everything else stays float** (``float_dtype``: bf16 by default where the CPU runs it natively, else fp32): the
  stem and downsampling layers, the depthwise convolutions (bandwidth-bound: int8 halves bytes only where the map is read once), the norms, SE,
  GRN, the head. Their share of time is the bound on what int8 can gain (see ``docs/int8.md``).

The int8 layer is exact to a plain *fake-quant* reference: quantize the input with the same scale and zero point
(``torch.quantize_per_tensor``, round half to even), dequantize it and the int8 weight, and multiply in fp32. That
reference, as a plain torch module, is also what ``lkconv export --int8`` writes as QDQ ONNX (:func:`qdq_model`:
QuantizeLinear/DequantizeLinear around the quantized layers, per-channel int8 weight initializers).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fused import gelu_grn, se_gate
from .fast_unireplknet import FastUniRepLKNetBlock

__all__ = ["Int8Pointwise", "Int8UniRepLKNetBlock", "QDQUniRepLKNetBlock", "RangeObserver", "activation_qparams",
           "calibration_batches", "int8_gemm_saturates", "optimize_int8", "qdq_model", "quantize_weight", "DEFAULT_PERCENTILE"]

#: Calibration range: this percentile (and 100 minus it) of each batch's values, the widest over the batches.
#: min/max (``percentile=None``) lets a handful of outliers of the GRN output set the step of every value.
DEFAULT_PERCENTILE = 99.99
#: Values sampled per batch for the percentile (torch.quantile's input limit is 16M; a strided sample is enough).
_PERCENTILE_SAMPLES = 1 << 20
#: Calibration stops after this many batches by default.
DEFAULT_CALIBRATION_BATCHES = 8
#: Samples per batch when calibration data comes as a dataset or a run directory (8 x 32 = 256 images).
CALIBRATION_BATCH_SIZE = 32


def _quiet_quantize(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """uint8 codes of ``x`` (fp32): ``clamp(round_half_even(x / scale) + zero_point, 0, 255)``, in x's layout.

    ``torch.quantize_per_tensor`` is the one vectorised single-pass quantizer in eager torch (4x faster than the
    same formula in four element-wise ops here); its codes are read through a plain uint8 tensor on the same
    storage. Not ``.view(torch.uint8)``: on a quantized tensor that corrupts the heap in torch 2.13 (measured:
    segfaults a few layers later), while ``int_repr()`` costs a second pass.
    """
    with warnings.catch_warnings():  # quantized tensor creation is "deprecated" in torch 2.13
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.shape, q.stride())


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8 codes of a (out, in) weight, and their fp32 scales (max |w| / 127)."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)
    return (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8), scale


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of a uint8 grid covering [lo, hi] (widened to include 0, so zero is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255
    return scale, int(min(255, max(0, round(-lo / scale))))


class RangeObserver:
    """Records the range of the values a layer sees during calibration."""

    def __init__(self, percentile: float | None = DEFAULT_PERCENTILE) -> None:
        if percentile is not None and not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100] or None (min/max), got {percentile!r}")
        self.percentile = percentile
        self.lo, self.hi, self.batches = float("inf"), float("-inf"), 0

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1).float()
        if self.percentile is None or self.percentile == 100:
            lo, hi = torch.aminmax(flat)
        else:
            if flat.numel() > _PERCENTILE_SAMPLES:
                flat = flat[:: -(-flat.numel() // _PERCENTILE_SAMPLES)]
            q = self.percentile / 100
            lo, hi = torch.quantile(flat, torch.tensor([1 - q, q]))
        self.lo, self.hi = min(self.lo, float(lo)), max(self.hi, float(hi))
        self.batches += 1

    def qparams(self) -> tuple[float, int]:
        if not self.batches:
            raise RuntimeError("no calibration batch reached this layer")
        return activation_qparams(self.lo, self.hi)


_QLINEAR: list = []  # [op or None], decided once per process by _qlinear_op


def _qlinear_exact(op) -> bool:
    """Whether oneDNN's int8 GEMM is exact on this CPU. Without VNNI (AVX2 only, e.g. the AMD EPYC some of our
    machines have) oneDNN multiplies uint8 by int8 with ``vpmaddubsw``, which saturates the sum of two adjacent
    products at int16: codes of 255 against weights of 127 (2 x 32 385 > 32 767) come out wrong (1.37 off on outputs
    of range 8.4 in our tests) or the primitive is missing. Probed on exactly that case."""
    gen = torch.Generator().manual_seed(0)
    k, n = 64, 8
    q = torch.full((4, k), 255, dtype=torch.uint8)
    q[1] = torch.randint(0, 256, (k,), generator=gen, dtype=torch.uint8)
    w = torch.full((n, k), 127, dtype=torch.int8)
    w[1::2] = torch.randint(-127, 128, (n // 2, k), generator=gen).to(torch.int8)
    scale = torch.full((n,), 1e-3)
    try:
        y = op(q, 1e-2, 3, torch.ops.onednn.qlinear_prepack(w, None), scale, torch.zeros(n, dtype=torch.long), None,
               1.0, 0, torch.float32, "none", [], "none")
    except RuntimeError:
        return False
    exact = ((q.double() - 3) * 1e-2) @ (w.double() * 1e-3).T
    return bool(torch.allclose(y.double(), exact, rtol=1e-4, atol=1e-4))


def int8_gemm_saturates() -> bool:
    """True where this torch has oneDNN's int8 linear but it is not exact on this CPU (no VNNI): lkconv's int8
    layers then dequantize instead, and engines that run u8 x s8 GEMMs the same way (onnxruntime's CPU kernels on
    AVX2) differ from exact int8 arithmetic by the saturated sums."""
    op = getattr(torch.ops.onednn, "qlinear_pointwise", None)
    return op is not None and torch.backends.mkldnn.is_available() and _qlinear_op() is None


def _qlinear_op():
    """oneDNN's int8 linear, or None where it is missing or not exact on this CPU (:func:`_qlinear_exact`): the
    layers then compute the same int8 arithmetic by dequantizing (exact, no faster than float)."""
    if not _QLINEAR:
        op = getattr(torch.ops.onednn, "qlinear_pointwise", None)
        ok = op is not None and torch.backends.mkldnn.is_available() and _qlinear_exact(op)
        _QLINEAR.append(op if ok else None)
    return _QLINEAR[0]


class Int8Pointwise(nn.Module):
    """A pointwise (linear) layer on the last dimension of an NHWC tensor, calibrated then int8.

    Before :meth:`freeze` it computes in float and records its input range; after, it quantizes the input (uint8,
    per tensor) and runs oneDNN's int8 GEMM with the per-channel int8 weight, writing ``out_dtype``. The scales
    and the bias are plain attributes, not buffers, so ``model.to(bfloat16)`` leaves them fp32.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, percentile: float | None) -> None:
        super().__init__()
        self.weight_fp32 = weight.detach().float().clone()
        self.bias_fp32 = None if bias is None else bias.detach().float().clone()
        self.observer: RangeObserver | None = RangeObserver(percentile)
        self.register_buffer("qweight", torch.empty(0, dtype=torch.int8))
        self.weight_scale = torch.empty(0)
        self.x_scale, self.x_zero_point = 1.0, 0
        self._packed: torch.Tensor | None = None
        self._bias: dict[torch.dtype, torch.Tensor | None] = {}

    @property
    def frozen(self) -> bool:
        return self.observer is None

    def freeze(self) -> None:
        """Fixes the input's scale and zero point from the calibration and quantizes and packs the weight."""
        self.x_scale, self.x_zero_point = self.observer.qparams()
        self.qweight, self.weight_scale = quantize_weight(self.weight_fp32)
        self.observer = None
        self.weight_fp32 = None
        op = _qlinear_op()
        self._packed = torch.ops.onednn.qlinear_prepack(self.qweight, None) if op is not None else None

    def dequantized_weight(self) -> torch.Tensor:
        return self.qweight.float() * self.weight_scale[:, None]

    def forward(self, x: torch.Tensor, gelu: bool = False, out_dtype: torch.dtype | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: float, or (frozen layer only) uint8 codes already quantized with this layer's ``x_scale`` and
        ``x_zero_point`` (e.g. written by :func:`~lkconv.ops.fused.se_gate` / ``gelu_grn`` with ``quantize=``):
        no quantization pass then. ``out_dtype``: default ``x``'s float dtype (fp32 for uint8 codes).
        ``residual``: a tensor of the output's shape added to it (after GELU), in oneDNN's epilogue when it is
        contiguous and of ``out_dtype`` and there is no GELU (the sum rounded once to ``out_dtype``), else as a
        separate addition."""
        codes = x.dtype == torch.uint8
        out_dtype = out_dtype or (torch.float32 if codes else x.dtype)
        if codes and not self.frozen:
            raise ValueError("uint8 input needs a frozen layer (its scale and zero point); calibrate on float input")
        if not self.frozen:
            self.observer.update(x)
            y = F.linear(x.float(), self.weight_fp32, self.bias_fp32)
            y = F.gelu(y) if gelu else y
            return (y if residual is None else y + residual.float()).to(out_dtype)
        q = x.contiguous() if codes else _quiet_quantize(x.float().contiguous(), self.x_scale, self.x_zero_point)
        op = _qlinear_op()
        if op is None:  # no oneDNN: the reference arithmetic (dequantize, fp32 GEMM)
            y = F.linear((q.float() - self.x_zero_point) * self.x_scale, self.dequantized_weight(), self.bias_fp32)
            y = F.gelu(y) if gelu else y
            return (y if residual is None else y + residual.float()).to(out_dtype)
        if out_dtype not in self._bias:
            self._bias[out_dtype] = None if self.bias_fp32 is None else self.bias_fp32.to(out_dtype)
        zeros = torch.zeros(self.qweight.shape[0], dtype=torch.long)
        unary = "gelu" if gelu else "none"
        # (oneDNN's qlinear has no GELU before a binary post-op: "unsupported unary post op gelu with binary ...")
        if (residual is not None and not gelu and residual.dtype == out_dtype and residual.is_contiguous()
                and _BINARY_EPILOGUE.get(out_dtype, True)):
            try:
                return op.binary(q, self.x_scale, self.x_zero_point, self._packed, self.weight_scale, zeros,
                                 residual, self._bias[out_dtype], 1.0, 0, out_dtype, 1.0, 0, "add", 1.0, "none", [],
                                 "none")
            except RuntimeError:  # the CPU's oneDNN has no such primitive: the separate addition below
                _BINARY_EPILOGUE[out_dtype] = False
        y = op(q, self.x_scale, self.x_zero_point, self._packed, self.weight_scale, zeros, self._bias[out_dtype],
               1.0, 0, out_dtype, unary, [], "none")
        return y if residual is None else y.add_(residual)

    def extra_repr(self) -> str:
        if not self.frozen:
            return "calibrating"
        return f"{self.qweight.shape[1]}→{self.qweight.shape[0]}, x_scale={self.x_scale:.3g}, zp={self.x_zero_point}"


#: Output dtypes whose residual addition oneDNN's qlinear cannot fuse on this CPU (an AVX2-only AMD EPYC: "could
#: not create a primitive descriptor for the matmul primitive" for the binary "add" post-op with fp32 output).
_BINARY_EPILOGUE: dict[torch.dtype, bool] = {}

#: Whether int8 beat the float block, per (input shape, float dtype, pw1 weight shape, threads), in this process.
_INT8_CHOICES: dict[tuple, bool] = {}


class Int8UniRepLKNetBlock(nn.Module):
    """UniRepLKNet's block with int8 pointwise layers: mixer → [BN] → SE (float) → int8 pw1 + GELU → GRN (float) →
    int8 pw2 → + x. Built from a :class:`FastUniRepLKNetBlock` (same parameters), calibrating until frozen.

    The SE gating and the GRN scaling write the int8 layers' uint8 input in their own pass (no separate quantization
    pass); still, on the wide early-stage maps the GEMMs' gain is small against the rest of the block and int8 can
    lose (measured on UniRepLKNet-T, batch 16, one thread: stages 0-1 ~1.0x the bf16 block, stage 2 ~1.15x, stage 3
    1.6x; docs/int8.md). So with ``choose`` set for one forward (as :func:`optimize_int8` does on
    ``example_input``) the block times itself both ways on its real input and keeps the faster one (``use_int8``);
    the float way is the fused block it was built from (``float_form``).
    """

    def __init__(self, block: FastUniRepLKNetBlock, percentile: float | None = DEFAULT_PERCENTILE) -> None:
        super().__init__()
        self.dwconv, self.norm, self.se, self.grn_gamma = block.dwconv, block.norm, block.se, block.grn_gamma
        self.pw1 = Int8Pointwise(block.pw1.weight[:, :, 0, 0], block.pw1.bias, percentile)
        self.pw2 = Int8Pointwise(block.pw2.weight[:, :, 0, 0], block.pw2.bias, percentile)
        self.float_form = block
        self.use_int8 = True
        self.choose = False

    def freeze(self) -> None:
        self.pw1.freeze()
        self.pw2.freeze()

    def _choose(self, x: torch.Tensor) -> None:
        from ..ops.dwconv.timing import measure
        from .fast_unireplknet import POINTWISE_REPS

        key = (tuple(x.shape), x.dtype, tuple(self.pw1.qweight.shape), torch.get_num_threads())
        if key not in _INT8_CHOICES:
            times = measure({"int8": lambda: self._int8_forward(x), "float": lambda: self.float_form(x)},
                            POINTWISE_REPS)
            _INT8_CHOICES[key] = times["int8"] < times["float"]
        self.use_int8 = _INT8_CHOICES[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.choose and self.pw1.frozen:
            self._choose(x)
            self.choose = False
        if not self.use_int8:
            return self.float_form(x)
        return self._int8_forward(x)

    def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        if self.norm is not None:
            y = self.norm(y)
        se, pw1, pw2 = self.se, self.pw1, self.pw2
        # frozen: the SE gating and the GRN scaling write the int8 layers' uint8 input codes themselves (one pass, no
        # float tensor written and re-read by a separate quantization); calibrating: float, for the observers
        q1 = (pw1.x_scale, pw1.x_zero_point) if pw1.frozen else None
        q2 = (pw2.x_scale, pw2.x_zero_point) if pw2.frozen else None
        y = se_gate(y, se.down.weight, se.down.bias, se.up.weight, se.up.bias, quantize=q1)
        h = pw1(y.permute(0, 2, 3, 1), gelu=True, out_dtype=x.dtype)  # NHWC in, NHWC out
        h = gelu_grn(h.permute(0, 3, 1, 2), self.grn_gamma, gelu_done=True, quantize=q2)
        # + x in pw2's epilogue (x channels_last: its NHWC view is contiguous), else a separate addition
        return pw2(h.permute(0, 2, 3, 1), out_dtype=x.dtype, residual=x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"use_int8={self.use_int8}"


class QDQUniRepLKNetBlock(nn.Module):
    """The fake-quant reference of an :class:`Int8UniRepLKNetBlock` on a plain (re-parameterized)
    ``UniRepLKNetBlock``: the same scales, quantize → dequantize around each pointwise layer, the int8 weight
    dequantized per channel, fp32 arithmetic. Plain torch ops only, so it exports to ONNX in QDQ form."""

    def __init__(self, block: nn.Module, int8_block: Int8UniRepLKNetBlock) -> None:
        super().__init__()
        self.dwconv, self.norm, self.se = block.dwconv, block.norm, block.se
        _, self.grn, _ = block.pointwise_layers()
        for i, layer in ((1, int8_block.pw1), (2, int8_block.pw2)):
            self.register_buffer(f"qweight{i}", layer.qweight.clone())
            self.register_buffer(f"weight_scale{i}", layer.weight_scale.clone())
            self.register_buffer(f"bias{i}", layer.bias_fp32.clone())
            self.register_buffer(f"x_scale{i}", torch.tensor(layer.x_scale, dtype=torch.float32))
            self.register_buffer(f"x_zero_point{i}", torch.tensor(layer.x_zero_point, dtype=torch.long))

    def _qdq_linear(self, x: torch.Tensor, i: int) -> torch.Tensor:
        import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers torch.ops.quantized_decomposed)

        qd = torch.ops.quantized_decomposed
        # the .tensor overloads (scale and zero point as 0-d tensors): the ONNX exporter's dispatcher finds no
        # function for the float-scalar overload of quantize_per_tensor in torch 2.13 / onnxscript 0.7
        scale, zp = getattr(self, f"x_scale{i}"), getattr(self, f"x_zero_point{i}")
        x = qd.dequantize_per_tensor.tensor(qd.quantize_per_tensor.tensor(x, scale, zp, 0, 255, torch.uint8), scale,
                                            zp, 0, 255, torch.uint8)
        ws = getattr(self, f"weight_scale{i}")
        w = qd.dequantize_per_channel(getattr(self, f"qweight{i}"), ws, torch.zeros_like(ws, dtype=torch.long), 0,
                                      -127, 127, torch.int8)
        return F.linear(x, w, getattr(self, f"bias{i}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.dwconv(x))).permute(0, 2, 3, 1)
        y = self.grn(F.gelu(self._qdq_linear(y, 1)))
        return x + self._qdq_linear(y, 2).permute(0, 3, 1, 2)


def _replace(module: nn.Module, kind: type, make) -> dict[str, nn.Module]:
    """Replaces every descendant of type ``kind`` by ``make(child, name)``; returns the new modules by name."""
    done: dict[str, nn.Module] = {}

    def walk(m: nn.Module, prefix: str) -> None:
        for name, child in list(m.named_children()):
            full = f"{prefix}{name}"
            if isinstance(child, kind):
                new = make(child, full)
                setattr(m, name, new)
                done[full] = new
            else:
                walk(child, full + ".")

    walk(module, "")
    return done


def calibration_batches(calibration, batch_size: int = CALIBRATION_BATCH_SIZE) -> Iterator[torch.Tensor]:
    """Input batches from what a user passes as ``calibration``.

    Accepted: a run directory (``str``/``Path``: the run's own training images, as it was trained on them), an
    iterable of batches (tensors, or tuples/lists/dicts whose first element / ``"input"`` is the batch, e.g. a
    ``DataLoader``), or a map-style dataset of ``(sample, target)`` pairs (batched here by ``batch_size``).
    """
    if isinstance(calibration, (str, Path)):
        from ..engine.evaluate import run_train_config
        from ..modalities import build_data

        cfg = run_train_config(calibration)
        calibration = build_data(cfg).train
    if isinstance(calibration, torch.Tensor):
        raise TypeError("calibration must be an iterable of batches, a dataset or a run directory, not one tensor: "
                        "pass [tensor] for a single batch")
    if hasattr(calibration, "__getitem__") and hasattr(calibration, "__len__") and not isinstance(
            calibration, (list, tuple)):
        data = calibration

        def batched() -> Iterator[torch.Tensor]:
            g = torch.Generator().manual_seed(0)
            order = torch.randperm(len(data), generator=g).tolist()
            for i in range(0, len(order), batch_size):
                samples = [data[j] for j in order[i:i + batch_size]]
                yield torch.stack([s[0] if isinstance(s, (tuple, list)) else s for s in samples])

        return batched()
    if not isinstance(calibration, Iterable):
        raise TypeError(f"calibration must be an iterable of input batches, a dataset or a run directory, got "
                        f"{type(calibration).__name__}")

    def items() -> Iterator[torch.Tensor]:
        for item in calibration:
            if isinstance(item, dict):
                item = item.get("input", next(iter(item.values())))
            elif isinstance(item, (tuple, list)):
                item = item[0]
            if not isinstance(item, torch.Tensor):
                raise TypeError(f"a calibration batch must be a tensor (or a tuple/dict holding one), got "
                                f"{type(item).__name__}")
            yield item

    return items()


@torch.no_grad()
def optimize_int8(model: nn.Module, example_input: torch.Tensor, calibration, *,
                  float_dtype: torch.dtype | None = None, percentile: float | None = DEFAULT_PERCENTILE,
                  calibration_batches_max: int = DEFAULT_CALIBRATION_BATCHES, channels_last: bool = True,
                  plan_depthwise: bool = True, micro_batch: int | str | None = "auto", choose: bool = True):
    """The int8 deploy model of ``model`` (see the module docstring); CPU only.

    Args:
        model: An lkconv model or a run's model containing UniRepLKNet blocks (left unchanged).
        example_input: A batch of the shape you will run (depthwise plans are measured on it).
        calibration: Data to calibrate the activation ranges on (see :func:`calibration_batches`).
        float_dtype: The precision of the layers kept in float (bf16 or fp32); None: bf16 where oneDNN runs bf16
            on this CPU (:func:`lkconv.ops.fused.onednn_bf16`), else fp32 (emulated bf16 is slower than fp32).
        percentile: Calibrated range of each quantized layer's input; None for min/max.
        calibration_batches_max: At most this many calibration batches are run.
        choose: Let each block time int8 against its float form on ``example_input``'s activations and keep the
            faster (:class:`Int8UniRepLKNetBlock`); False runs every block in int8.
    """
    from ..engine.device import model_device
    from ..layers.planned_dwconv import PlannedDepthwiseConv2d  # noqa: F401  (pass 4 below)
    from ..models._reparam import reparameterize_model
    from .optimize import (OptimizedModel, _auto_micro_batch, _runs_by_stages, apply_inference_forms, fuse_norms,
                           plan_depthwise_convs)

    if model_device(model).type != "cpu":
        raise ValueError("dtype=torch.int8 runs on the CPU (oneDNN's int8 GEMM); move the model to the CPU first")
    if float_dtype is None:
        from ..ops.fused import onednn_bf16

        float_dtype = torch.bfloat16 if onednn_bf16() else torch.float32
    if float_dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"float_dtype must be torch.float32 or torch.bfloat16, got {float_dtype}")
    if calibration is None:
        raise ValueError("dtype=torch.int8 needs calibration=: an iterable of input batches (e.g. a DataLoader), a "
                         "dataset of (sample, target) pairs, or a run directory (its training images)")
    net = copy.deepcopy(model).eval()
    reparameterize_model(net)
    apply_inference_forms(net)
    fuse_norms(net)
    blocks = _replace(net, FastUniRepLKNetBlock, lambda b, _: Int8UniRepLKNetBlock(b, percentile))
    if not blocks:
        raise ValueError(f"dtype=torch.int8 quantizes UniRepLKNet blocks' pointwise layers; {type(model).__name__} "
                         "has none (use dtype=torch.bfloat16)")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout) if channels_last else net
    seen = 0
    for batch in calibration_batches(calibration, batch_size=CALIBRATION_BATCH_SIZE):
        if seen >= calibration_batches_max:
            break
        if batch.dim() == 4:
            batch = batch.contiguous(memory_format=layout)
        net(batch.float())
        seen += 1
    if not seen:
        raise ValueError("calibration gave no batch")
    for b in blocks.values():
        b.freeze()
    if plan_depthwise:
        plan_depthwise_convs(net)
    net = net.to(dtype=float_dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    if not _runs_by_stages(net):
        micro_batch = None
    elif micro_batch == "auto":
        micro_batch = _auto_micro_batch(net, example_input.to(float_dtype))
    wrapped = OptimizedModel(net, float_dtype, channels_last, micro_batch)
    wrapped.eval()
    wrapped(example_input)  # measures the depthwise plans for these shapes (or reads them from the cache)
    if choose:
        for b in blocks.values():
            b.choose = True
        wrapped(example_input)
    wrapped.int8_blocks = blocks
    used = sum(b.use_int8 for b in blocks.values())
    wrapped.quantization = {"layers": 2 * used, "blocks_int8": used, "blocks": len(blocks),
                            "float_dtype": str(float_dtype), "percentile": percentile, "calibration_batches": seen}
    return wrapped


def qdq_model(model: nn.Module, int8_model: nn.Module) -> nn.Module:
    """A re-parameterized copy of ``model`` whose UniRepLKNet blocks that run in int8 compute the fake-quant reference
    of ``int8_model`` (the result of :func:`optimize_int8` on ``model``): plain torch, fp32, ONNX-exportable in QDQ
    form, and equal to the int8 model up to float rounding."""
    from ..models._reparam import reparameterize_model

    blocks = getattr(int8_model, "int8_blocks", None)
    if not blocks:
        raise ValueError("int8_model must be what optimize_for_inference(..., dtype=torch.int8) returned")
    net = reparameterize_model(copy.deepcopy(model).eval())
    for name, int8_block in blocks.items():
        if not int8_block.use_int8:  # the block chose its float form: the plain block computes it
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, attr, QDQUniRepLKNetBlock(getattr(parent, attr), int8_block))
    return net


def onnx_translation_table() -> dict:
    """ONNX functions for the quantize/dequantize ops of :class:`QDQUniRepLKNetBlock` (for ``torch.onnx.export``'s
    ``custom_translation_table``): QuantizeLinear/DequantizeLinear with a uint8 activation zero point and per-channel
    int8 weights. onnxscript 0.7's own functions for these ops do not match the exported nodes (the exporter stops
    with "No ONNX function found ... quantize_per_tensor")."""
    import onnxscript
    import torch.ao.quantization.fx._decomposed  # noqa: F401
    from onnxscript import opset18 as op

    u8, i8 = onnxscript.ir.DataType.UINT8, onnxscript.ir.DataType.INT8

    def quantize(x, scale, zero_point, quant_min: int, quant_max: int, dtype: int):
        return op.QuantizeLinear(x, scale, op.Cast(zero_point, to=u8))

    def dequantize(x, scale, zero_point, quant_min: int, quant_max: int, dtype: int, out_dtype: int = -1):
        return op.DequantizeLinear(x, scale, op.Cast(zero_point, to=u8))

    def dequantize_channels(x, scales, zero_points, axis: int, quant_min: int, quant_max: int, dtype: int,
                            out_dtype: int = -1):
        return op.DequantizeLinear(x, scales, op.Cast(zero_points, to=i8), axis=axis)

    qd = torch.ops.quantized_decomposed
    return {qd.quantize_per_tensor.tensor: quantize, qd.dequantize_per_tensor.tensor: dequantize,
            qd.dequantize_per_channel.default: dequantize_channels}
