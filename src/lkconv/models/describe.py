"""A model's vital statistics: parameters in both structures, MACs, and the per-stage layout."""

from __future__ import annotations

import torch

from ..analysis.complexity import count_macs, count_params
from ._registry import create_model
from .input_size import check_input_side

__all__ = ["describe_model"]


def describe_model(name: str, *, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> dict:
    """Parameters (train and deploy structure), MACs at ``img_size`` and the stage table, counted on ``meta``."""
    check_input_side(img_size)
    with torch.device("meta"):
        probe = create_model(name, num_classes=num_classes, in_chans=in_chans)
    sequence = len(getattr(probe, "default_input_size", (3, 1, 1))) == 2
    # sequence models (FFT convolutions) cannot run on meta: they are small, so count them for real
    device = "cpu" if sequence else "meta"
    with torch.device(device):
        train = create_model(name, num_classes=num_classes, in_chans=in_chans)
        try:
            deploy = create_model(name, num_classes=num_classes, in_chans=in_chans, deploy=True)
        except TypeError:  # a family without a separate deploy structure
            deploy = train
        x = torch.empty(1, in_chans, img_size) if sequence else torch.empty(1, in_chans, img_size, img_size)
        info = {
            "model": name,
            "img_size": img_size,
            "input": list(x.shape[1:]),
            "params_train": count_params(train),
            "params_deploy": count_params(deploy),
            "macs_deploy": count_macs(deploy, x),
            "macs_train": count_macs(train, x),
        }
    summary = getattr(train, "stage_summary", None)
    info["stages"] = summary() if callable(summary) else [
        {"stage": i, "width": f["num_chs"], "reduction": f["reduction"]} for i, f in enumerate(train.feature_info)
    ]
    return info
