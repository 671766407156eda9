"""Time series: a (B, C, L) batch, NaN where a value is missing, to a 2-D map for the backbone.

Every mapping starts the same way: each (sample, channel) is z-normalised over its observed values (``norm``
``"instance"``; ``"none"`` keeps the values; ``"dataset"`` uses one mean/std per channel measured on the training
set, ``channel_mean``/``channel_std``, so the level and scale that may carry the class survive), and missing values are filled with 0 (the mean after normalisation);
with ``mask_channel`` the observed-value mask travels with the values so the network can tell a filled value from
a real 0. The data layer brings every sample to the same length L (see :mod:`lkconv.modalities.timeseries.data`).

Mappings (``mapping``):

``square`` (the UniRepLKNet reference)
    A learned token embedding (Conv1d, kernel 3) of width D per time step; the L·D token values are laid out
    row-major and zero-padded to an S×S square, one channel: ``S = ceil(sqrt(L·D))``. With ``embed_dim`` unset,
    D = max(1, floor(map_size² / L)), so S ≤ ``map_size`` when L ≤ map_size² (the reference embeds 48 steps × 768
    into 192²).
``fold``
    The same learned embedding, but of the series resampled to ``fold_rows × fold_cols`` steps and folded row-major
    into a D-channel map: time runs along the rows and wraps to the next row (a TimesNet-style 2-D fold with the
    row length as period).
``gaf``
    Gramian angular fields: every channel is resampled to S = ``map_size`` steps (``downsample``: ``linear``
    interpolation, or ``mean``: the piecewise aggregate approximation, PAA, averaging the steps that fall into
    each of the S segments, so that spikes shorter than L / S steps are not skipped), min-max scaled to x̃ ∈ [-1, 1]
    and turned into three S×S images, GASF ``cos(φi + φj)``, GADF ``sin(φi − φj)`` (φ = arccos x̃) and the signed
    difference ``(zj − zi) / 2`` of the normalised values; 3·C channels (+C mask images ``mi·mj``). No parameters.
``sequence``
    No 2-D map: the normalised series itself, ``(B, C, L)`` (+C mask channels), for the sequence models
    (``sgconvnet_*``, ``longconvnet_*``). No parameters.

Forecasting (``horizon`` > 0): the backbone predicts C·H values (series-major: output ``s·H + h`` is series s, step
h); :meth:`TimeSeriesAdapter.postprocess` undoes the per-window normalisation of the lookback, so forecasts, the
training loss and the metrics are in the data's units.

Training-mode augmentation (global torch RNG, batch level): Gaussian ``noise`` on the normalised values and a
random amplitude ``scale`` factor in ``[1 - scale, 1 + scale]`` per sample (classification only).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base import ModalityAdapter

__all__ = ["TimeSeriesAdapter", "MAPPINGS", "DOWNSAMPLE", "masked_stats", "resample_linear", "resample_mean",
           "gramian_fields"]

MAPPINGS = ("square", "fold", "gaf", "sequence")
NORMS = ("instance", "none", "dataset")
DOWNSAMPLE = ("linear", "mean")


def masked_stats(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the last axis of the entries where ``mask`` is True, shaped (..., 1).

    A row with no observed value gets mean 0 and std 1; the std is floored at ``eps`` times (1 + |mean|).
    """
    m = mask.to(x.dtype)
    n = m.sum(-1, keepdim=True)
    x0 = torch.where(mask, x, torch.zeros_like(x))
    mean = x0.sum(-1, keepdim=True) / n.clamp_min(1)
    var = ((x0 - mean) * m).square().sum(-1, keepdim=True) / n.clamp_min(1)
    std = var.sqrt()
    std = torch.maximum(std, eps * (1 + mean.abs()))
    empty = n == 0
    return torch.where(empty, torch.zeros_like(mean), mean), torch.where(empty, torch.ones_like(std), std)


def resample_linear(x: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation of (B, C, L) to (B, C, length), end points kept (align_corners)."""
    if x.shape[-1] == length:
        return x
    if x.shape[-1] == 1:
        return x.expand(*x.shape[:-1], length)
    return F.interpolate(x, size=length, mode="linear", align_corners=True)


def resample_mean(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, C, L) to (B, C, length): the mean of each of ``length`` equal segments (PAA) when shortening, linear
    interpolation (:func:`resample_linear`) when lengthening.

    Why: linear interpolation to far fewer points samples the series at ``length`` instants and skips whatever lies
    between them (a 1460-step series at 64 points keeps one step in 23); averaging keeps every step's contribution.
    """
    if x.shape[-1] <= length:
        return resample_linear(x, length)
    return F.adaptive_avg_pool1d(x, length)


def gramian_fields(z: torch.Tensor) -> torch.Tensor:
    """(B, C, S) normalised series → (B, 3C, S, S): GASF, GADF and the signed difference, channel-major."""
    lo, hi = z.amin(-1, keepdim=True), z.amax(-1, keepdim=True)
    xt = ((z - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1).clamp(-1, 1)
    s = (1 - xt.square()).clamp_min(0).sqrt()
    xi, xj, si, sj = xt[..., :, None], xt[..., None, :], s[..., :, None], s[..., None, :]
    gasf = xi * xj - si * sj
    gadf = si * xj - xi * sj
    diff = (z[..., None, :] - z[..., :, None]) / 2
    return torch.stack([gasf, gadf, diff], dim=2).flatten(1, 2)


class TimeSeriesAdapter(ModalityAdapter):
    """(B, C, L) series (NaN = missing) → (B, out_chans, H, W) map (``sequence``: (B, out_chans, L)); see the module
    docstring for the mappings.

    Args:
        in_chans: Channels (variables) of the series.
        length: Length L of every raw series.
        mapping: ``square`` (reference), ``fold``, ``gaf`` or ``sequence`` (no map, for sequence models).
        map_size: Side of the map: the square's target side, the fold's default rows/columns, the GAF image side.
        embed_dim: Embedding width D of ``square``/``fold`` (default: ``square`` picks S ≈ map_size, ``fold`` 32).
        fold_cols: Row length (period) of ``fold``; default ``map_size // 2``.
        fold_rows: Rows of ``fold``; default ``map_size // 2``.
        norm: ``instance`` (z-normalise every sample and channel over its observed values), ``dataset`` (the
            training set's per-channel ``channel_mean``/``channel_std``) or ``none``.
        channel_mean, channel_std: Per-channel statistics for ``norm: dataset`` (C values each).
        mask_channel: Feed the observed-value mask along with the values.
        horizon: Forecast horizon H (0: classification); the backbone then has ``in_chans * horizon`` outputs.
        noise: Std of Gaussian noise added to the normalised values in training (0: off).
        scale: Random amplitude scaling range in training (0: off).
        downsample: How ``gaf`` shortens a series to ``map_size`` steps: ``linear`` (interpolation) or ``mean``
            (PAA, :func:`resample_mean`).
    """

    name = "timeseries"

    def __init__(self, in_chans: int = 1, length: int = 128, mapping: str = "gaf", map_size: int = 64,
                 embed_dim: int | None = None, fold_cols: int | None = None, fold_rows: int | None = None,
                 norm: str = "instance", mask_channel: bool = False, horizon: int = 0, noise: float = 0.0,
                 scale: float = 0.0, channel_mean: list[float] | None = None,
                 channel_std: list[float] | None = None, downsample: str = "linear") -> None:
        super().__init__()
        if mapping not in MAPPINGS:
            raise ValueError(f"timeseries adapter: mapping={mapping!r} is not accepted; choose one of "
                             f"{', '.join(MAPPINGS)}")
        if norm not in NORMS:
            raise ValueError(f"timeseries adapter: norm={norm!r} is not accepted; choose one of {', '.join(NORMS)}")
        if downsample not in DOWNSAMPLE:
            raise ValueError(f"timeseries adapter: downsample={downsample!r} is not accepted; choose one of "
                             f"{', '.join(DOWNSAMPLE)}")
        self.downsample = downsample
        if in_chans < 1 or length < 1 or map_size < 4 or horizon < 0 or noise < 0 or not 0 <= scale < 1:
            raise ValueError(f"timeseries adapter: need in_chans >= 1, length >= 1, map_size >= 4, horizon >= 0, "
                             f"noise >= 0, 0 <= scale < 1; got {in_chans}, {length}, {map_size}, {horizon}, {noise}, "
                             f"{scale}")
        self.in_chans, self.length, self.mapping, self.map_size = int(in_chans), int(length), mapping, int(map_size)
        self.norm, self.mask_channel, self.horizon = norm, bool(mask_channel), int(horizon)
        self.noise, self.scale = float(noise), float(scale)
        self.channel_mean = [float(v) for v in channel_mean] if channel_mean is not None else None
        self.channel_std = [float(v) for v in channel_std] if channel_std is not None else None
        # the statistics may be left unset here: training fills them from the training set (auto_recipe)
        if norm == "dataset" and self.channel_mean is not None and (
                self.channel_std is None or len(self.channel_mean) != self.in_chans
                or len(self.channel_std) != self.in_chans or min(self.channel_std) <= 0):
            raise ValueError(f"timeseries adapter: norm='dataset' needs channel_mean and channel_std of {self.in_chans} "
                             f"values each (std > 0), got {channel_mean}, {channel_std}")
        self.fold_cols = self.fold_rows = None
        cin = self.in_chans * (2 if self.mask_channel else 1)
        if mapping == "square":
            self.embed_dim = int(embed_dim or max(1, self.map_size**2 // self.length))
            self.side = math.ceil(math.sqrt(self.length * self.embed_dim))
            self.embed = nn.Conv1d(cin, self.embed_dim, 3, padding=1)
            self.out_chans = 1
        elif mapping == "fold":
            self.embed_dim = int(embed_dim or 32)
            self.fold_cols = int(fold_cols or self.map_size // 2)
            self.fold_rows = int(fold_rows or self.map_size // 2)
            if self.fold_cols < 1 or self.fold_rows < 1:
                raise ValueError(f"timeseries adapter: fold_cols and fold_rows must be >= 1, got {fold_cols}, "
                                 f"{fold_rows}")
            self.embed = nn.Conv1d(cin, self.embed_dim, 3, padding=1)
            self.out_chans = self.embed_dim
        elif mapping == "sequence":
            self.embed_dim = None
            self.out_chans = cin
        else:
            self.embed_dim = None
            self.out_chans = self.in_chans * (4 if self.mask_channel else 3)

    def config(self) -> dict[str, Any]:
        return {"in_chans": self.in_chans, "length": self.length, "mapping": self.mapping, "map_size": self.map_size,
                "embed_dim": self.embed_dim, "fold_cols": self.fold_cols, "fold_rows": self.fold_rows,
                "norm": self.norm, "mask_channel": self.mask_channel, "horizon": self.horizon, "noise": self.noise,
                "scale": self.scale, "channel_mean": self.channel_mean, "channel_std": self.channel_std,
                "downsample": self.downsample}

    @property
    def num_outputs(self) -> int:
        """Backbone outputs for forecasting (``in_chans * horizon``)."""
        return self.in_chans * self.horizon

    def _check(self, raw: torch.Tensor) -> None:
        if raw.dim() != 3 or raw.shape[1] != self.in_chans or raw.shape[2] != self.length:
            raise ValueError(f"timeseries adapter expects (B, {self.in_chans}, {self.length}) series, got "
                             f"{tuple(raw.shape)}")

    def normalise(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, mask, mean, std)``: normalised series with missing values set to 0, and the statistics used."""
        x = raw.float()
        mask = torch.isfinite(x)
        if self.norm == "instance":
            mean, std = masked_stats(x, mask)
        elif self.norm == "dataset":
            if self.channel_mean is None:
                raise ValueError("timeseries adapter: norm='dataset' has no channel_mean/channel_std (training measures "
                                 "them on the training set)")
            mean = x.new_tensor(self.channel_mean).view(1, -1, 1).expand(x.shape[0], -1, 1)
            std = x.new_tensor(self.channel_std).view(1, -1, 1).expand(x.shape[0], -1, 1)
        else:
            mean, std = torch.zeros_like(x[..., :1]), torch.ones_like(x[..., :1])
        z = torch.where(mask, (x - mean) / std, torch.zeros_like(x))
        return z, mask, mean, std

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        self._check(raw)
        z, mask, _, _ = self.normalise(raw)
        if self.training and self.horizon == 0:
            b = z.shape[0]
            if self.scale:
                z = z * (1 + self.scale * (2 * torch.rand(b, 1, 1) - 1))
            if self.noise:
                z = z + self.noise * torch.randn(z.shape) * mask
        m = mask.to(z.dtype)
        if self.mapping == "sequence":
            return torch.cat([z, m], 1) if self.mask_channel else z
        if self.mapping == "square":
            inp = torch.cat([z, m], 1) if self.mask_channel else z
            tokens = self.embed(inp).transpose(1, 2).flatten(1)  # (B, L·D), time-major
            tokens = F.pad(tokens, (0, self.side**2 - tokens.shape[1]))
            return tokens.view(-1, 1, self.side, self.side)
        if self.mapping == "fold":
            n = self.fold_rows * self.fold_cols
            inp = torch.cat([z, m], 1) if self.mask_channel else z
            e = self.embed(resample_linear(inp, n))  # (B, D, rows·cols)
            return e.view(e.shape[0], self.embed_dim, self.fold_rows, self.fold_cols)
        resample = resample_mean if self.downsample == "mean" else resample_linear
        z_s = resample(z, self.map_size)
        maps = gramian_fields(z_s)
        if self.mask_channel:
            m_s = resample(m, self.map_size)
            maps = torch.cat([maps, m_s[..., :, None] * m_s[..., None, :]], 1)
        return maps

    def postprocess(self, output: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Forecasting: (B, C·H) normalised forecasts → the data's units, using the lookback's statistics."""
        if self.horizon == 0 or self.norm == "none":
            return output
        _, _, mean, std = self.normalise(raw)
        b = output.shape[0]
        out = output.float().view(b, self.in_chans, self.horizon) * std + mean
        return out.view(b, self.in_chans * self.horizon)
