"""Conv-BatchNorm building blocks that fold into plain convolutions, and a large depthwise conv that runs by FFT.

* :class:`ConvBN` -- ``conv -> BatchNorm [-> activation]`` as an ``nn.Sequential`` whose child names are chosen by the
  family (``conv``/``bn``/``nonlinear`` for RepLKNet, ``c``/``bn`` for LSNet), so state_dict keys follow each
  family's reference. ``reparameterize()`` folds the BatchNorm into the conv (the conv gains a bias, ``bn`` becomes
  ``nn.Identity``); ``deploy=True`` builds that structure directly.
* :func:`fold_preceding_bn` -- folds a BatchNorm that comes *before* an unpadded conv (a 1x1 conv) into the conv.
* :class:`LargeDepthwiseConv2d` -- an ``nn.Conv2d`` (same parameters, same state_dict keys, counted as a conv by the
  MAC counter) that computes stride-1 depthwise convolutions with kernels of at least ``fft_min_kernel`` taps by
  :func:`lkconv.ops.fftconv.fft_conv2d` on the CPU, where direct depthwise convolution slows sharply above 13x13,
  and trains smaller large/dilated kernels with :func:`lkconv.ops.dwconv_train.depthwise_conv2d_train` (a backward
  that skips padding taps; 2-20x faster than PyTorch's CPU depthwise backward on UniRepLKNet's shapes).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..ops.dwconv_train import depthwise_conv2d_train, depthwise_train_applies
from ..ops.fftconv import fft_conv2d
from ..ops.reparam import fuse_bn

__all__ = ["ConvBN", "LargeDepthwiseConv2d", "fold_preceding_bn", "DEFAULT_FFT_MIN_KERNEL"]

#: Smallest kernel side for which :class:`LargeDepthwiseConv2d` uses the FFT on the CPU (a simple size rule; a
#: per-shape measured plan can replace it later).
DEFAULT_FFT_MIN_KERNEL = 17


class LargeDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` that switches to an FFT for large stride-1 depthwise kernels on the CPU.

    The FFT path is taken when the conv is depthwise (``groups == in_channels == out_channels``), has stride and
    dilation 1 and zero padding, the kernel's larger side is at least ``fft_min_kernel``, and the input is a CPU
    tensor. It returns what ``F.conv2d`` returns (to float rounding: about 1e-6 relative in float32). Everything else
    goes through ``nn.Conv2d``. Construction arguments are those of ``nn.Conv2d`` plus ``fft_min_kernel``
    (``None``: :data:`DEFAULT_FFT_MIN_KERNEL`; a value larger than the kernel disables the FFT).
    """

    def __init__(self, *args, fft_min_kernel: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fft_min_kernel = DEFAULT_FFT_MIN_KERNEL if fft_min_kernel is None else int(fft_min_kernel)
        if self.fft_min_kernel < 1:
            raise ValueError(f"fft_min_kernel must be >= 1, got {fft_min_kernel}")

    def uses_fft(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` takes the FFT path."""
        return (
            x.device.type == "cpu"
            and self.groups == self.in_channels == self.out_channels
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and max(self.kernel_size) >= self.fft_min_kernel
        )

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.uses_fft(input):
            return fft_conv2d(input, weight, padding=self.padding, bias=bias)
        if (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad) and self.padding_mode == "zeros"
                and depthwise_train_applies(input, weight, self.stride, self.padding, self.dilation, self.groups)):
            return depthwise_conv2d_train(input, weight, bias, self.padding, self.dilation)
        return super()._conv_forward(input, weight, bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fft_min_kernel={self.fft_min_kernel}"


class ConvBN(nn.Sequential):
    """``conv (no bias) -> BatchNorm -> [activation]`` that folds into ``conv (with bias) -> [activation]``.

    Args:
        in_chans: Input channels.
        out_chans: Output channels.
        kernel_size: Kernel side.
        stride: Stride.
        padding: Zero padding (None: ``kernel_size // 2``).
        groups: Conv groups (``in_chans`` for depthwise).
        act_layer: Activation class appended after the BatchNorm (None: none).
        conv_name: Child name of the conv (``"conv"`` or the reference's name, e.g. ``"c"``).
        act_name: Child name of the activation.
        bn_weight_init: Initial BatchNorm γ (0 makes a residual branch start as identity).
        conv_layer: Conv class (``nn.Conv2d`` or :class:`LargeDepthwiseConv2d`).
        norm_layer: BatchNorm class.
        deploy: Build the fused structure (conv with bias, ``bn`` is ``nn.Identity``).
        device: Parameter device.
        dtype: Parameter dtype.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        *,
        act_layer: type[nn.Module] | None = None,
        conv_name: str = "conv",
        act_name: str = "nonlinear",
        bn_weight_init: float = 1.0,
        conv_layer: type[nn.Conv2d] = nn.Conv2d,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        deploy: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        if conv_name in ("bn", act_name):
            raise ValueError(f"conv_name must differ from 'bn' and act_name={act_name!r}, got {conv_name!r}")
        dd = {"device": device, "dtype": dtype}
        padding = kernel_size // 2 if padding is None else padding
        conv = conv_layer(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=deploy, **dd)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers[conv_name] = conv
        if deploy:
            layers["bn"] = nn.Identity()
        else:
            bn = norm_layer(out_chans, **dd)
            with torch.no_grad():
                bn.weight.fill_(bn_weight_init)
                bn.bias.zero_()
            layers["bn"] = bn
        if act_layer is not None:
            layers[act_name] = act_layer()
        super().__init__(layers)
        self.conv_name = conv_name
        self.deploy = deploy

    @property
    def conv(self) -> nn.Conv2d:
        """The convolution (whatever its child name)."""
        return self._modules[self.conv_name]

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Folds the BatchNorm into the conv in place (idempotent; keeps the conv's class, device and dtype)."""
        if self.deploy:
            return
        conv = self.conv
        weight, bias = fuse_bn(conv.weight, conv.bias, self.bn)
        conv.weight.copy_(weight)
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
        self.bn = nn.Identity()
        self.deploy = True


@torch.no_grad()
def fold_preceding_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Folds an eval-mode BatchNorm applied *before* ``conv`` into ``conv`` in place: ``conv(BN(x)) == conv'(x)``.

    With ``BN(x) = s·x + t`` per input channel: ``W' = W·s`` (over input channels) and ``b' = b + Σ W·t``. Exact
    only when the conv sees no zero padding (padding would see ``t`` where it sees 0), so it requires padding 0
    and ``groups == 1``.

    Raises:
        ValueError: If the conv is padded or grouped.
    """
    if any(p != 0 for p in conv.padding) or conv.groups != 1:
        raise ValueError(f"a preceding BatchNorm folds only into an unpadded, ungrouped conv, got padding="
                         f"{conv.padding}, groups={conv.groups}")
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    shift = beta - bn.running_mean * scale
    weight = conv.weight
    bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
    new_bias = bias + (weight * shift.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    conv.weight.copy_(weight * scale.view(1, -1, 1, 1))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)
