"""Normalisation layers shared by the families: channels-first LayerNorm and Global Response Norm (whose formula
lives once, in :func:`lkconv.ops.grn.global_response_norm`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.grn import global_response_norm


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor (the reference's ``channels_first`` LayerNorm).

    Parameters are named ``weight``/``bias`` of shape (C,), as in the reference.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, *, device=None, dtype=None) -> None:
        super().__init__(num_channels, eps=eps, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization on NHWC input (ConvNeXt-V2; UniRepLKNet's ``GRNwithNHWC``).

    ``out = (γ·N(x) + 1)·x + β`` with ``N(x) = G(x) / (mean_c G(x) + 1e-6)`` and ``G(x)`` the per-channel L2 norm
    over H and W. γ and β have shape (1, 1, 1, C) and start at zero. β is always present as an attribute; it is
    ``None`` when the layer has no bias (deploy structure: β is folded into the next linear layer).
    """

    def __init__(self, dim: int, use_bias: bool = True, *, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim, **dd))
        self.beta: nn.Parameter | None
        if use_bias:
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim, **dd))
        else:
            self.register_parameter("beta", None)

    @property
    def use_bias(self) -> bool:
        return self.beta is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_response_norm(x, self.gamma, self.beta, channel_dim=-1)

    def forward_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """The same GRN on an NCHW tensor (any memory format), e.g. a channels_last map without permutes."""
        c = self.gamma.shape[-1]
        beta = None if self.beta is None else self.beta.view(1, c, 1, 1)
        return global_response_norm(x, self.gamma.view(1, c, 1, 1), beta, channel_dim=1)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are summed over all processes, on any device (gloo on CPU included).

    PyTorch's ``nn.SyncBatchNorm`` runs on GPUs only. This one all-reduces per-channel sums and squared sums with
    a differentiable all-reduce, so N processes with batches of B/N normalise exactly as one process with B.
    Outside an initialised multi-process group it is a plain ``BatchNorm2d``. Same state_dict keys.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import warnings

        from torch.distributed.nn.functional import all_reduce  # differentiable: backward all-reduces the grads

        c = x.shape[1]
        local = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), x.new_tensor([x.numel() / c])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * (n / (n - 1).clamp_min(1))
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        y = (x - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


def convert_sync_batchnorm(module: nn.Module, *, on_cuda: bool = False) -> nn.Module:
    """Replaces every ``BatchNorm2d`` by a synchronised one, keeping parameters and running statistics.

    ``on_cuda``: PyTorch's ``nn.SyncBatchNorm`` (fused CUDA kernels, nccl); otherwise :class:`SyncBatchNorm2d`,
    which works with gloo on the CPU.
    """
    if on_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if type(module) is nn.BatchNorm2d:
        new = SyncBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device=module.weight.device if module.affine else None)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child))
    return module
