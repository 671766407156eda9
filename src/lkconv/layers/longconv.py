"""Long convolution layer: a free, sequence-long kernel kept simple by smoothing and squashing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lkconv.ops.fftconv import fft_conv1d, fft_conv1d_bidirectional

__all__ = ["LongConv"]


class LongConv(nn.Module):
    """Long convolution ("Simple Hardware-Efficient Long Convolutions for Sequence Modeling").

    The kernel ``K`` of shape ``(directions, H, max_len)`` is a free parameter initialised ``randn * 0.002``. Each
    forward pass optionally smooths it (moving average over ``smooth_window`` taps, zero "same" padding), squashes it
    with the soft threshold ``sign(K) * relu(|K| - lam)`` and applies kernel dropout, then computes
    ``Linear(dropout(GELU(fft_conv(u, K) + D * u)))`` (with a GLU when ``glu``).

    Args:
        d_model: Channel count ``H``.
        max_len: Kernel length; inputs may be shorter (kernel cropped) or longer (kernel zero padded).
        bidirectional: Adds an anti-causal kernel.
        smooth: Apply the moving-average smoothing.
        smooth_window: Odd window of the smoothing.
        squash_lambda: Soft-threshold ``lam >= 0`` (0 disables the squash). The default is 1e-3, not the 0.1 of
            the reference code: with the ``randn * 0.002`` init, ``lam = 0.1`` (indeed anything above ~0.003)
            zeroes every tap *and its gradient*, so the kernel could never leave zero. With 1e-3 about half of the
            raw taps receive gradient at init (all of them once they grow past the threshold).
        kernel_dropout: Dropout probability on kernel taps (training only).
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
        bidirectional: bool = False,
        smooth: bool = True,
        smooth_window: int = 7,
        squash_lambda: float = 1e-3,
        kernel_dropout: float = 0.0,
        glu: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"d_model and max_len must be >= 1, got {d_model}, {max_len}")
        if smooth_window < 1 or smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be a positive odd integer, got {smooth_window}")
        if squash_lambda < 0:
            raise ValueError(f"squash_lambda must be >= 0, got {squash_lambda}")
        kw = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.max_len = max_len
        self.bidirectional = bidirectional
        self.smooth = smooth
        self.smooth_window = smooth_window
        self.squash_lambda = squash_lambda
        directions = 2 if bidirectional else 1
        self.kernel = nn.Parameter(torch.randn(directions, d_model, max_len, **kw) * 0.002)
        self.D = nn.Parameter(torch.randn(d_model, **kw))
        self.kernel_dropout = nn.Dropout(kernel_dropout)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(d_model, 2 * d_model if glu else d_model, **kw)
        self.output_glu = nn.GLU(dim=-1) if glu else nn.Identity()

    def build_kernel(self) -> torch.Tensor:
        """The effective kernel ``(directions, H, max_len)``: smoothed, squashed, kernel-dropped."""
        k = self.kernel
        if self.smooth:
            k = F.avg_pool1d(k, self.smooth_window, stride=1, padding=self.smooth_window // 2)
        if self.squash_lambda > 0:
            k = torch.sign(k) * torch.relu(k.abs() - self.squash_lambda)
        return self.kernel_dropout(k)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Long convolution, skip, activation and output projection."""
        if u.dim() != 3 or u.shape[1] != self.d_model:
            raise ValueError(f"u must have shape (B, {self.d_model}, L), got {tuple(u.shape)}")
        k = self.build_kernel()
        if self.bidirectional:
            y = fft_conv1d_bidirectional(u, k[0], k[1], self.D)
        else:
            y = fft_conv1d(u, k[0], self.D)
        y = self.dropout(self.activation(y))
        y = self.output_glu(self.output_linear(y.transpose(1, 2)))
        return y.transpose(1, 2)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, max_len={self.max_len}, bidirectional={self.bidirectional}, "
                f"smooth={self.smooth}, squash_lambda={self.squash_lambda}")
