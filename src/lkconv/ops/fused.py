"""Fused element-wise operations on channels_last tensors, run by lkconv's C kernels when they are available.

* ``gelu_grn``: GELU followed by GRN in two passes;
* ``layer_norm_channels``: LayerNorm over the channels of every pixel (the channels-first LayerNorm), optionally
  followed by GELU, in one pass;
* ``se_gate``: Squeeze-and-Excitation, pooled in one pass and gated in place.

``gelu_grn`` and ``se_gate`` can also write their output as the uint8 codes of a per-tensor affine quantization
(``quantize=(scale, zero_point)``: the input of an int8 layer) instead of a float tensor, in the same pass, with the
codes ``torch.quantize_per_tensor`` gives for their float output.

Each has a plain torch path (any layout, differentiable) that it falls back to, and the tests check both agree.

``gelu_grn(y, gamma, beta)`` computes, for y of shape (B, C, H, W),

    g = GELU(y)  (exact, erf);   N = ‖g‖₂ over (H, W) / (mean over C of ‖g‖₂ + 1e-6);   out = (γ·N + 1)·g + β

which is UniRepLKNet's ``act`` (GELU then GRN) in the NCHW logical layout. Inference only: with the C kernels, a
channels_last fp32/bf16 input that needs no gradient is overwritten in place (one read+write for GELU and the
statistic, one for the scaling); otherwise the same formula runs in torch.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from . import native
from .grn import global_response_norm

__all__ = [
    "PW1_PATHS",
    "PW2_PATHS",
    "conv1x1_add",
    "conv1x1_gelu",
    "gelu_grn",
    "gelu_grn_reference",
    "layer_norm_channels",
    "layer_norm_channels_reference",
    "pointwise_add",
    "pointwise_gelu",
    "quantize_u8",
    "se_gate",
    "se_gate_reference",
]


def gelu_grn_reference(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
    """The plain torch computation (any layout, differentiable)."""
    return _grn_nchw(F.gelu(y), gamma, beta)


def _grn_nchw(g: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    return global_response_norm(g, gamma.reshape(1, -1, 1, 1), None if beta is None else beta.reshape(1, -1, 1, 1),
                                channel_dim=1)


_LN_KERNEL_MAX_CHANNELS = 128


def _kernel_applies(y: torch.Tensor) -> bool:
    return (y.dim() == 4 and y.device.type == "cpu" and y.dtype in (torch.float32, torch.bfloat16)
            and not (y.requires_grad and torch.is_grad_enabled())
            and y.is_contiguous(memory_format=torch.channels_last) and y.numel() > 0
            and not torch.compiler.is_compiling())


def quantize_u8(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """uint8 codes of ``x``: ``torch.quantize_per_tensor(x.float(), scale, zero_point, torch.quint8)``'s, as a new
    plain uint8 tensor. On x86 that is ``clamp(round_half_even(fma(x, 1 / scale, zero_point)), 0, 255)`` in fp32 (one
    rounding of ``x / scale + zero_point``), which the C kernels' ``quantize=`` outputs reproduce."""
    import warnings

    with warnings.catch_warnings():  # quantized tensor creation is "deprecated" in torch 2.13
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor(x.float(), scale, zero_point, torch.quint8).int_repr()


def _check_qparams(quantize: tuple[float, int]) -> tuple[float, int]:
    scale, zero_point = quantize
    if not 0 <= int(zero_point) <= 255 or not scale > 0:
        raise ValueError(f"quantize needs scale > 0 and a zero point in [0, 255], got {quantize!r}")
    return float(scale), int(zero_point)


def _scale_channels(lib, y: torch.Tensor, s: torch.Tensor, quantize: tuple[float, int] | None) -> torch.Tensor:
    """``y * s[:, :, None, None]`` by the C kernel: in place, or (``quantize``) as uint8 codes in a new tensor of
    y's shape, channels_last (y unchanged)."""
    b, c, h, w = y.shape
    bf, threads = int(y.dtype == torch.bfloat16), torch.get_num_threads()
    if quantize is None:
        lib.lk_scale_channels(y.data_ptr(), s.data_ptr(), b, h * w, c, bf, threads)
        return y
    scale, zero_point = quantize
    # torch's quantizer multiplies by the fp32 reciprocal of the fp32 scale (not a division): the same value here
    # (the kernel adds the zero point in the same fused multiply-add, as torch's x86 quantizer does)
    inv_scale = (1 / torch.tensor(scale, dtype=torch.float32)).item()
    q = torch.empty(b, h, w, c, dtype=torch.uint8)
    lib.lk_scale_channels_u8(y.data_ptr(), s.data_ptr(), q.data_ptr(), b, h * w, c, bf, inv_scale, zero_point,
                             threads)
    return q.permute(0, 3, 1, 2)


def gelu_grn(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None = None, *,
             gelu_done: bool = False, quantize: tuple[float, int] | None = None) -> torch.Tensor:
    """GELU then GRN (see above). May overwrite ``y``: pass a tensor you no longer need.

    ``gelu_done=True``: ``y`` already holds GELU's output (e.g. from :func:`conv1x1_gelu`); only GRN is applied.
    ``quantize=(scale, zero_point)``: return the uint8 codes of the result (:func:`quantize_u8`), written by the
    scaling pass itself where the C kernel runs (no float result written); ``y`` may still be overwritten.
    """
    if quantize is not None:
        quantize = _check_qparams(quantize)
    lib = native.load() if _kernel_applies(y) and (quantize is None or beta is None) else None
    if lib is None:
        out = _grn_nchw(y, gamma, beta) if gelu_done else gelu_grn_reference(y, gamma, beta)
        return out if quantize is None else quantize_u8(out, *quantize)
    b, c, h, w = y.shape
    bf = int(y.dtype == torch.bfloat16)
    threads = torch.get_num_threads()
    sumsq = torch.empty(b, c, dtype=torch.float32)
    if lib.lk_channel_stats(y.data_ptr(), b, h * w, c, bf, int(not gelu_done), sumsq.data_ptr(), threads):
        raise MemoryError("lk_channel_stats: out of memory for the per-thread partial sums")
    gx = sumsq.sqrt_()
    nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
    scale = torch.addcmul(torch.ones(()), gamma.reshape(1, c).float(), nx).contiguous()
    y = _scale_channels(lib, y, scale, quantize)
    return y + beta.reshape(1, -1, 1, 1).to(y.dtype) if beta is not None else y


def se_gate_reference(y: torch.Tensor, down_weight: torch.Tensor, down_bias: torch.Tensor | None,
                      up_weight: torch.Tensor, up_bias: torch.Tensor | None) -> torch.Tensor:
    """Squeeze-and-Excitation in torch (UniRepLKNet's SEBlock): ``y * σ(up(ReLU(down(mean_HW y))))``."""
    s = y.mean(dim=(2, 3), keepdim=True)
    s = torch.sigmoid(F.conv2d(F.relu(F.conv2d(s, down_weight, down_bias)), up_weight, up_bias))
    return y * s


def se_gate(y: torch.Tensor, down_weight: torch.Tensor, down_bias: torch.Tensor | None, up_weight: torch.Tensor,
            up_bias: torch.Tensor | None, *, quantize: tuple[float, int] | None = None) -> torch.Tensor:
    """Squeeze-and-Excitation with 1×1-conv weights (hidden, C, 1, 1) and (C, hidden, 1, 1). May overwrite ``y``.

    With the C kernels (channels_last fp32/bf16, no gradient): the pooling is one read of ``y`` summed in fp32, the
    two small layers run in one C loop on the (B, C) means in fp32 (a GEMM library call this small took 0.4–1 ms
    between the large convolutions; bf16 GEMMs this small cost more than the casts), and the gating multiplies ``y``
    in place: two passes over ``y`` and no new activation-sized tensor.

    ``quantize=(scale, zero_point)``: return the uint8 codes of the gated tensor (:func:`quantize_u8`) instead,
    written by the gating pass itself where the C kernel runs (``y`` then stays unchanged).
    """
    if quantize is not None:
        quantize = _check_qparams(quantize)
    lib = native.load() if _kernel_applies(y) else None
    if lib is None:
        out = se_gate_reference(y, down_weight, down_bias, up_weight, up_bias)
        return out if quantize is None else quantize_u8(out, *quantize)
    b, c, h, w = y.shape
    threads = torch.get_num_threads()
    sums = torch.empty(b, c, dtype=torch.float32)
    if lib.lk_channel_stats(y.data_ptr(), b, h * w, c, int(y.dtype == torch.bfloat16), 2, sums.data_ptr(), threads):
        raise MemoryError("lk_channel_stats: out of memory for the per-thread partial sums")
    w1, w2 = down_weight.flatten(1).float().contiguous(), up_weight.flatten(1).float().contiguous()
    b1 = None if down_bias is None else down_bias.float().contiguous()
    b2 = None if up_bias is None else up_bias.float().contiguous()
    hidden = torch.empty(b, w1.shape[0], dtype=torch.float32)
    gate = torch.empty(b, c, dtype=torch.float32)
    lib.lk_se_excite(sums.data_ptr(), 1.0 / (h * w), w1.data_ptr(), None if b1 is None else b1.data_ptr(),
                     w2.data_ptr(), None if b2 is None else b2.data_ptr(), b, c, w1.shape[0], hidden.data_ptr(),
                     gate.data_ptr())
    return _scale_channels(lib, y, gate, quantize)


def _onednn_pointwise():
    """oneDNN's fused convolution op (the one inductor uses on CPU), or None where this torch build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


@functools.cache
def onednn_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU (AVX512-BW/VL/DQ or AVX-NE-CONVERT). Without (an AVX2-only AMD EPYC) its
    fused convolution raises "bf16 path needs the cpu support ..." and plain bf16 convolutions are emulated."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and probe is not None and probe())


def _onednn_applies(x: torch.Tensor) -> bool:
    return (x.dim() == 4 and x.device.type == "cpu"
            and (x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and onednn_bf16()))
            and not (x.requires_grad and torch.is_grad_enabled()) and not torch.compiler.is_compiling()
            and x.is_contiguous(memory_format=torch.channels_last))


def conv1x1_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
    """``GELU(conv1x1(x))`` with the GELU in oneDNN's epilogue when possible.

    Returns (output, gelu_applied): where the fused op is unavailable, the plain convolution's output with
    ``gelu_applied=False`` (the caller applies GELU, e.g. fused into :func:`gelu_grn`).
    """
    op = _onednn_pointwise() if _onednn_applies(x) else None
    if op is None:
        return F.conv2d(x, weight, bias), False
    return op(x, weight, bias, [0, 0], [1, 1], [1, 1], 1, "gelu", [], "none"), True


def conv1x1_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
    """``residual + conv1x1(x)`` with the addition in oneDNN's epilogue when possible."""
    op = _onednn_pointwise() if _onednn_applies(x) and residual.dtype == x.dtype else None
    if op is None or not residual.is_contiguous(memory_format=torch.channels_last):
        return residual + F.conv2d(x, weight, bias)
    return op.binary(x, residual, weight, bias, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None)


#: Ways to run the FFN's first pointwise layer with its GELU (see :func:`pointwise_gelu`).
PW1_PATHS = ("conv_gelu", "conv", "linear")
#: Ways to run the FFN's second pointwise layer with the residual addition (see :func:`pointwise_add`).
PW2_PATHS = ("conv_add", "conv", "linear")


def _linear_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1×1 convolution of a channels_last tensor as ``F.linear`` on its NHWC view; the result is channels_last."""
    return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)


def pointwise_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   path: str = "conv_gelu") -> tuple[torch.Tensor, bool]:
    """The 1×1 convolution ``weight`` (N, K, 1, 1) of ``x``, by ``path``; returns (output, gelu_applied).

    ``conv_gelu``: oneDNN with GELU in its epilogue (:func:`conv1x1_gelu`); ``conv``: oneDNN alone; ``linear``:
    ``F.linear`` on the NHWC view (MKL's GEMM). With ``gelu_applied=False`` the caller applies GELU (fused into
    :func:`gelu_grn`). Which is fastest depends on the shape and dtype (measured: oneDNN's GELU epilogue costs up to
    a third of the GEMM in bf16, and MKL wins some small-K fp32 layers), hence the choice per layer.
    """
    if path == "conv_gelu":
        return conv1x1_gelu(x, weight, bias)
    if path == "linear" and _onednn_applies(x):
        return _linear_nhwc(x, weight, bias), False
    if path in PW1_PATHS:
        op = _onednn_pointwise() if _onednn_applies(x) else None
        if op is None:
            return F.conv2d(x, weight, bias), False
        return op(x, weight, bias, [0, 0], [1, 1], [1, 1], 1, "none", [], "none"), False
    raise ValueError(f"path must be one of {PW1_PATHS}, got {path!r}")


def pointwise_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor,
                  path: str = "conv_add") -> torch.Tensor:
    """``residual + conv1x1(x)`` by ``path``: ``conv_add`` (the addition in oneDNN's epilogue, :func:`conv1x1_add`),
    ``conv`` (oneDNN, then an in-place addition) or ``linear`` (``F.linear`` on the NHWC view, then the addition).
    Measured: the epilogue is often *slower* than a separate in-place addition (up to 1.3x on a 40-channel layer)."""
    if path == "conv_add":
        return conv1x1_add(x, weight, bias, residual)
    if path not in PW2_PATHS:
        raise ValueError(f"path must be one of {PW2_PATHS}, got {path!r}")
    if not _onednn_applies(x) or residual.dtype != x.dtype or not residual.is_contiguous(
            memory_format=torch.channels_last):
        return residual + F.conv2d(x, weight, bias)
    if path == "linear":
        return _linear_nhwc(x, weight, bias).add_(residual)
    op = _onednn_pointwise()
    y = F.conv2d(x, weight, bias) if op is None else op(x, weight, bias, [0, 0], [1, 1], [1, 1], 1, "none", [], "none")
    return y.add_(residual)


def layer_norm_channels_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                                  gelu: bool = False) -> torch.Tensor:
    """LayerNorm over dim 1 of an (B, C, H, W) tensor (then GELU), in torch."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, eps).permute(0, 3, 1, 2)
    return F.gelu(y) if gelu else y


def layer_norm_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                        gelu: bool = False) -> torch.Tensor:
    """LayerNorm over the channels of each pixel of ``x`` (B, C, H, W), then GELU if ``gelu``; a new tensor."""
    # The kernel normalises 16 pixels at a time with one vector lane each: it beats F.layer_norm on the few channels
    # of the stem and the early downsampling layers (up to ~2x at 20-80 channels), not on wide maps.
    fits = _kernel_applies(x) and weight is not None and bias is not None and x.shape[1] <= _LN_KERNEL_MAX_CHANNELS
    lib = native.load() if fits else None
    if lib is None:
        return layer_norm_channels_reference(x, weight, bias, eps, gelu)
    b, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    wf, bf32 = weight.float().contiguous(), bias.float().contiguous()
    if lib.lk_layernorm_rows(x.data_ptr(), y.data_ptr(), wf.data_ptr(), bf32.data_ptr(), b * h * w, c, float(eps),
                             int(x.dtype == torch.bfloat16), int(gelu), torch.get_num_threads()):
        raise MemoryError("lk_layernorm_rows: out of memory for the row buffers")
    return y
