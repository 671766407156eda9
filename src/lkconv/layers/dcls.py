"""Depthwise Dilated Convolution with Learnable Spacings (DCLS).

Each channel has ``m`` weights placed at real-valued, learnable positions inside an ``S x S`` grid
(``S = dilated_kernel_size``). Every forward pass scatters the weights onto a dense ``S x S`` kernel by
interpolation and runs an ordinary depthwise ``F.conv2d``, so the gradient reaches weights *and* positions.

Positions are stored in grid-centred units: a coordinate ``p`` sits at (fractional) grid index ``p + (S - 1) / 2``,
so ``p = 0`` is the centre and the grid spans ``[-(S - 1) / 2, (S - 1) / 2]``. ``positions[0]`` is the row
(height) coordinate and ``positions[1]`` the column (width) one.

Interpolations, both separable (``phi_t(a, b) = phi_t^row(a) * phi_t^col(b)``) and normalised so each weight puts
exactly its value on the grid, ``K[a, b] = sum_t w_t phi_t(a, b) / sum_{a', b'} phi_t(a', b')``:

* ``"gauss"`` (default): ``phi(a) = exp(-0.5 ((a - p) / sigma)^2)``, ``sigma = |SIG| + 0.27``, learnable ``SIG``
  initialised to 0.23;
* ``"v1"``: bilinear, ``phi(a) = relu(1 - |a - p|)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DCLSConv2d", "DCLS_VERSIONS"]

DCLS_VERSIONS = ("gauss", "v1")
_SIGMA_FLOOR = 0.27
_SIGMA_INIT = 0.23
_POS_STD = 0.5


class DCLSConv2d(nn.Module):
    """Depthwise DCLS convolution with "same" padding and stride 1.

    Args:
        channels: Channel count ``C``.
        kernel_count: Number ``m`` of weights per channel.
        dilated_kernel_size: Side ``S`` of the dense grid the weights live in.
        version: ``"gauss"`` or ``"v1"`` (bilinear).
        bias: Whether to add a learnable bias.
        positions: Optional external positions ``Parameter`` of shape ``(2, C, m)`` to share across layers (e.g. all
            blocks of a stage); a new one initialised ``N(0, 0.5)`` is created otherwise.
        sigma: Optional external ``SIG`` ``Parameter`` of shape ``(2, C, m)`` to share (gauss only uses it).
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        kernel_count: int = 34,
        dilated_kernel_size: int = 17,
        version: str = "gauss",
        bias: bool = True,
        positions: nn.Parameter | None = None,
        sigma: nn.Parameter | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if version not in DCLS_VERSIONS:
            raise ValueError(f"version must be one of {DCLS_VERSIONS}, got {version!r}")
        if channels < 1 or kernel_count < 1 or dilated_kernel_size < 1:
            raise ValueError(
                f"channels, kernel_count and dilated_kernel_size must be >= 1, got {channels}, {kernel_count}, "
                f"{dilated_kernel_size}"
            )
        shape = (2, channels, kernel_count)
        for name, param in (("positions", positions), ("sigma", sigma)):
            if param is not None and tuple(param.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(param.shape)}")
        kw = {"device": device, "dtype": dtype}
        self.channels = channels
        self.kernel_count = kernel_count
        self.dilated_kernel_size = dilated_kernel_size
        self.version = version
        self.weight = nn.Parameter(torch.empty(channels, kernel_count, **kw))
        if bias:
            self.bias = nn.Parameter(torch.empty(channels, **kw))
        else:
            self.register_parameter("bias", None)
        self.P = positions if positions is not None else nn.Parameter(torch.empty(shape, **kw))
        self.SIG = sigma if sigma is not None else nn.Parameter(torch.empty(shape, **kw))
        self.reset_parameters(reset_positions=positions is None, reset_sigma=sigma is None)

    @property
    def limit(self) -> float:
        """Largest absolute grid-centred coordinate, ``(S - 1) / 2``."""
        return (self.dilated_kernel_size - 1) / 2

    def reset_parameters(self, reset_positions: bool = True, reset_sigma: bool = True) -> None:
        """Re-initialises weights (fan-in uniform as a depthwise conv with ``m`` taps), bias, positions and sigma.

        Args:
            reset_positions: Also draw new positions (skip for shared positions owned elsewhere).
            reset_sigma: Also reset ``SIG`` to 0.23.
        """
        bound = self.kernel_count ** -0.5
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)
            if reset_positions:
                self.P.normal_(0.0, _POS_STD)
                self.P.clamp_(-self.limit, self.limit)
            if reset_sigma:
                self.SIG.fill_(_SIGMA_INIT)

    def clamp_parameters(self) -> None:
        """Clamps the positions to the grid; call after every optimiser step."""
        with torch.no_grad():
            self.P.clamp_(-self.limit, self.limit)

    def _axis_weights(self, coord: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Normalised 1-D interpolation weights ``(C, m, S)`` for centred coordinates ``coord`` ``(C, m)``."""
        grid = torch.arange(self.dilated_kernel_size, device=coord.device, dtype=coord.dtype) - self.limit
        diff = grid - coord.unsqueeze(-1)
        if self.version == "gauss":
            phi = torch.exp(-0.5 * (diff / sigma.unsqueeze(-1)) ** 2)
        else:
            phi = torch.relu(1.0 - diff.abs())
        return phi / phi.sum(dim=-1, keepdim=True).clamp_min(1e-12)

    def build_kernel(self) -> torch.Tensor:
        """Builds the dense depthwise kernel ``(C, 1, S, S)`` from weights, positions (and sigma)."""
        sigma = self.SIG.abs() + _SIGMA_FLOOR
        rows = self._axis_weights(self.P[0], sigma[0])  # (C, m, S)
        cols = self._axis_weights(self.P[1], sigma[1])  # (C, m, S)
        # K[c, a, b] = sum_t w[c, t] rows[c, t, a] cols[c, t, b]
        kernel = torch.bmm((rows * self.weight.unsqueeze(-1)).transpose(1, 2), cols)
        return kernel.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise convolution with the freshly built dense kernel."""
        size = self.dilated_kernel_size
        if size % 2 == 1:
            return F.conv2d(x, self.build_kernel(), self.bias, padding=size // 2, groups=self.channels)
        # Even grid: pad like F.conv2d's "same" (extra pixel bottom / right) without its copy warning.
        lo, hi = (size - 1) // 2, size // 2
        return F.conv2d(F.pad(x, (lo, hi, lo, hi)), self.build_kernel(), self.bias, groups=self.channels)

    @torch.no_grad()
    def to_dense_conv(self) -> nn.Conv2d:
        """A plain depthwise ``nn.Conv2d`` holding the current dense kernel (for deployment)."""
        size = self.dilated_kernel_size
        conv = nn.Conv2d(self.channels, self.channels, size, padding=size // 2 if size % 2 else "same",
                         groups=self.channels, bias=self.bias is not None, device=self.weight.device,
                         dtype=self.weight.dtype)
        conv.weight.copy_(self.build_kernel())
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_count={self.kernel_count}, "
                f"dilated_kernel_size={self.dilated_kernel_size}, version={self.version!r}, "
                f"bias={self.bias is not None}")
