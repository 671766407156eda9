"""Mixup and CutMix on a batch, with label-smoothed soft targets."""

from __future__ import annotations

import torch

__all__ = ["one_hot_smooth", "mix_batch"]


def one_hot_smooth(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    out.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)
    return out


def mix_batch(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int, *, mixup: float, cutmix: float, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Applies mixup (α=``mixup``) or CutMix (α=``cutmix``, 4-D inputs only), chosen with equal odds when both
    are on; returns the mixed batch and soft targets. Draws from torch's global RNG (saved with the run)."""
    target = one_hot_smooth(labels, num_classes, smoothing)
    use_cutmix = cutmix > 0 and x.dim() == 4 and (mixup <= 0 or torch.rand(()).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    if alpha <= 0:
        return x, target
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.arange(x.shape[0] - 1, -1, -1, device=x.device)  # pair each sample with its mirror (timm)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = (1 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + x[perm] * (1 - lam)
    return x, target * lam + target[perm] * (1 - lam)
