"""``reparameterize_model``: fuse every re-parameterizable module of a model into its deploy structure."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["reparameterize_model", "is_deploy_structure"]


@torch.no_grad()
def reparameterize_model(model: nn.Module) -> nn.Module:
    """Fuses, in place, every module that has ``reparameterize()`` (Dilated Reparam Blocks, BatchNorms inside
    blocks, GRN β, layer scale, RepLK small kernels, …). Idempotent; keeps device and dtype.

    The fused model equals the original in eval mode (BatchNorm running statistics are used), so call it after
    training. Returns the same model for chaining.
    """
    # Parents come before children in modules(); a parent's fusion may replace children, which is fine because
    # reparameterize() is idempotent and the list is taken up front.
    for module in list(model.modules()):
        if module is model:
            continue
        fn = getattr(module, "reparameterize", None)
        if callable(fn):
            fn()
    if hasattr(model, "deploy"):
        model.deploy = True
    return model


def is_deploy_structure(model: nn.Module) -> bool:
    """True if no module of ``model`` is left to fuse."""
    return not any(getattr(m, "deploy", True) is False for m in model.modules() if m is not model)
