"""SGConv: a structured global convolution whose kernel is built from a few multi-scale sub-kernels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lkconv.ops.fftconv import fft_conv1d, fft_conv1d_bidirectional

__all__ = ["SGConv", "sgconv_num_scales"]

_INTERP_MODES = ("linear", "nearest")


def sgconv_num_scales(max_len: int, kernel_dim: int) -> int:
    """Number of sub-kernels ``N = 1 + ceil(log2(max_len / kernel_dim))`` (at least 1).

    Args:
        max_len: Longest sequence the kernel must cover.
        kernel_dim: Length ``d`` of each sub-kernel.

    Returns:
        ``N``; the concatenated kernel length ``d * 2^(N - 1)`` is then ``>= max_len``.
    """
    if max_len < 1 or kernel_dim < 1:
        raise ValueError(f"max_len and kernel_dim must be >= 1, got {max_len}, {kernel_dim}")
    return 1 + max(0, math.ceil(math.log2(max_len / kernel_dim)))


def _tracing() -> bool:
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return (torch.compiler.is_compiling() or exporting() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())


class SGConv(nn.Module):
    """Structured Global Convolution layer (SGConv, "What makes convolutional models great on long sequences").

    Per channel, ``N`` sub-kernels ``W_i`` of length ``d`` are upsampled by ``2^max(0, i-1)`` (lengths
    ``d, d, 2d, 4d, ...``), scaled by the decay ``alpha_i = m_h^(N-1-i)`` (``m_h`` from
    ``linspace(decay_min, decay_max, H)``, so with the default decay 2 the early, short-range parts weigh more) and
    concatenated; the result is cropped / zero padded to the sequence length ``L``. The kernel is divided by its L2
    norm, measured once (over the ``max_len``-long kernel) at the first forward pass and then frozen in the
    ``kernel_norm`` buffer. Output: ``Linear(dropout(GELU(fft_conv(u, k) + D * u)))``, with a GLU when ``glu``.
    The kernel costs ``N * d = O(d log L)`` parameters per channel (twice that when bidirectional).

    Args:
        d_model: Channel count ``H``.
        max_len: Longest sequence length ``L`` the kernel is built for; longer inputs see a zero-padded kernel.
        kernel_dim: Sub-kernel length ``d``.
        bidirectional: Adds an anti-causal kernel (a second set of sub-kernels).
        decay_min: Smallest per-channel decay base.
        decay_max: Largest per-channel decay base.
        interp_mode: Sub-kernel upsampling, ``"linear"`` or ``"nearest"``.
        glu: Output projection ``Linear(H, 2H)`` + GLU instead of ``Linear(H, H)``.
        dropout: Dropout after the activation.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        ``(B, H, L) -> (B, H, L)``.
    """

    def __init__(
        self,
        d_model: int,
        max_len: int,
        kernel_dim: int = 64,
        bidirectional: bool = False,
        decay_min: float = 2.0,
        decay_max: float = 2.0,
        interp_mode: str = "linear",
        glu: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        if interp_mode not in _INTERP_MODES:
            raise ValueError(f"interp_mode must be one of {_INTERP_MODES}, got {interp_mode!r}")
        if decay_min <= 0 or decay_max <= 0:
            raise ValueError(f"decay_min and decay_max must be > 0, got {decay_min}, {decay_max}")
        kw = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.max_len = max_len
        self.kernel_dim = kernel_dim
        self.num_scales = sgconv_num_scales(max_len, kernel_dim)
        self.bidirectional = bidirectional
        self.interp_mode = interp_mode
        directions = 2 if bidirectional else 1
        # Sub-kernels of all scales share the length d, so they fit one tensor: (N, directions, H, d).
        self.kernel = nn.Parameter(torch.randn(self.num_scales, directions, d_model, kernel_dim, **kw))
        self.D = nn.Parameter(torch.randn(d_model, **kw))
        self.register_buffer("multiplier", torch.linspace(decay_min, decay_max, d_model, **kw).unsqueeze(-1))
        self.register_buffer("kernel_norm", torch.ones(directions, d_model, 1, **kw))
        self.register_buffer("kernel_norm_ready", torch.zeros((), dtype=torch.bool, device=device))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(d_model, 2 * d_model if glu else d_model, **kw)
        self.output_glu = nn.GLU(dim=-1) if glu else nn.Identity()

    def raw_kernel(self) -> torch.Tensor:
        """The un-normalised kernel ``(directions, H, max_len)``."""
        parts = []
        for i in range(self.num_scales):
            part = self.kernel[i]
            scale = 2 ** max(0, i - 1)
            if scale > 1:
                part = F.interpolate(part, scale_factor=scale, mode=self.interp_mode)
            parts.append(part * self.multiplier ** (self.num_scales - 1 - i))
        return torch.cat(parts, dim=-1)[..., : self.max_len]

    def build_kernel(self, length: int) -> torch.Tensor:
        """The normalised kernel ``(directions, H, length)``; the first call freezes the normaliser."""
        k = self.raw_kernel()
        if _tracing():  # export/compile: no data-dependent branch, no buffer write; the same value either way
            norm = torch.where(self.kernel_norm_ready, self.kernel_norm, k.detach().norm(dim=-1, keepdim=True))
            k = k / norm
        elif not bool(self.kernel_norm_ready):
            with torch.no_grad():
                self.kernel_norm.copy_(k.norm(dim=-1, keepdim=True))
                self.kernel_norm_ready.fill_(True)
            k = k / self.kernel_norm
        else:
            k = k / self.kernel_norm
        if length <= k.shape[-1]:
            return k[..., :length]
        return F.pad(k, (0, length - k.shape[-1]))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Global convolution, skip, activation and output projection."""
        if u.dim() != 3 or u.shape[1] != self.d_model:
            raise ValueError(f"u must have shape (B, {self.d_model}, L), got {tuple(u.shape)}")
        k = self.build_kernel(u.shape[-1])
        if self.bidirectional:
            y = fft_conv1d_bidirectional(u, k[0], k[1], self.D)
        else:
            y = fft_conv1d(u, k[0], self.D)
        y = self.dropout(self.activation(y))
        y = self.output_glu(self.output_linear(y.transpose(1, 2)))
        return y.transpose(1, 2)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, max_len={self.max_len}, kernel_dim={self.kernel_dim}, "
                f"num_scales={self.num_scales}, bidirectional={self.bidirectional}")
