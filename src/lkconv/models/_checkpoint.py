"""Checkpoint loading: ``.pth``/``.pt``/``.bin`` (weights only, never unpickling code) and ``.safetensors``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ._reparam import reparameterize_model

__all__ = ["load_state_dict_file", "load_checkpoint", "checkpoint_structure", "CheckpointMismatchError"]

_WRAPPER_KEYS = ("model", "state_dict", "model_state", "module")


class CheckpointMismatchError(RuntimeError):
    """The file's keys or shapes do not fit the model."""


def load_state_dict_file(path: str | os.PathLike, *, ema: bool = False) -> dict[str, torch.Tensor]:
    """Reads a state_dict from ``.safetensors`` or a torch file (bare, or under ``model``/``state_dict``).

    Torch files are read with ``weights_only=True``; ``module.`` (DDP) and ``backbone.`` prefixes are removed.
    With ``ema=True``, a ``model_ema``/``state_dict_ema`` entry is preferred.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    elif suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name and the reason
            raise ValueError(
                f"cannot read {path} as a weights-only torch checkpoint ({type(e).__name__}: {e}); lkconv never "
                "unpickles code: re-save the file as a plain state_dict or as .safetensors"
            ) from e
        sd = _unwrap(obj, path, ema)
    else:
        raise ValueError(f"unsupported checkpoint format {suffix!r} for {path}; accepted: .safetensors, .pth, .pt, .bin")
    for prefix in ("module.", "backbone."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _unwrap(obj, path: Path, ema: bool) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    order = (("model_ema", "state_dict_ema") if ema else ()) + _WRAPPER_KEYS
    for key in order:
        if key in obj and isinstance(obj[key], dict):
            return _unwrap(obj[key], path, False)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} has no tensors at the top level nor under {order} (keys: {sorted(obj)[:10]})")
    return tensors


def checkpoint_structure(state_dict: dict[str, torch.Tensor]) -> str:
    """``'train'`` if the keys hold unfused branches/BatchNorms inside blocks, ``'deploy'`` if fused, else ``'unknown'``."""
    keys = state_dict.keys()
    train_markers = (".origin_bn.", ".dil_conv_k", ".pwconv2.2.", ".small_conv.", ".lkb_origin.", ".prelkb_bn.",
                     ".mixer.conv1.")
    if any(m in k for k in keys for m in train_markers):
        return "train"
    if any(k.endswith("pwconv2.0.bias") or ".lk_origin.bias" in k or ".lkb_reparam." in k for k in keys):
        return "deploy"
    return "unknown"


def _model_structure(model: nn.Module) -> str:
    flags = [m.deploy for m in model.modules() if m is not model and isinstance(getattr(m, "deploy", None), bool)]
    if not flags:
        return "unknown"
    return "deploy" if all(flags) else "train"


def _describe_mismatch(model: nn.Module, sd: dict[str, torch.Tensor], path: str) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in sd and sd[k].shape != own[k].shape]

    def show(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")

    parts = [f"checkpoint {path} does not fit {type(model).__name__}: the file holds a "
             f"{checkpoint_structure(sd)}-structure checkpoint, the model is built in the "
             f"{_model_structure(model)} structure."]
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches: {show(shapes)}")
    return "\n".join(parts)


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, strict: bool = True, ema: bool = False
) -> nn.Module:
    """Loads weights from ``path`` into ``model``.

    A training-structure checkpoint loads into a model built with ``deploy=True``: a training-structure twin is
    built from ``model.model_args``, loaded, re-parameterized and copied in. The reverse (fused weights into an
    unfused model) cannot be undone and raises :class:`CheckpointMismatchError`, as does any other mismatch, with
    the missing and unexpected keys listed.
    """
    sd = load_state_dict_file(path, ema=ema)
    file_kind, model_kind = checkpoint_structure(sd), _model_structure(model)
    if file_kind == "train" and model_kind == "deploy":
        sd = _fuse_train_state_dict(model, sd, str(path))
    elif file_kind == "deploy" and model_kind == "train":
        raise CheckpointMismatchError(
            f"{path} holds a deploy-structure (fused) checkpoint and the model is built in the training structure; "
            "fusion cannot be undone: build the model with deploy=True to load it"
        )
    if strict:
        own = model.state_dict()
        if set(own) != set(sd) or any(sd[k].shape != own[k].shape for k in own):
            raise CheckpointMismatchError(_describe_mismatch(model, sd, str(path)))
    missing, unexpected = model.load_state_dict(sd, strict=strict)
    return model


def _fuse_train_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    args = getattr(model, "model_args", None)
    factory = getattr(model, "model_name", None)
    if args is None:
        raise CheckpointMismatchError(
            f"{path} holds a training-structure checkpoint; to fuse it on the way in the model must record its "
            "construction arguments (build it with lkconv.create_model)"
        )
    from ._registry import create_model

    ref = next(model.parameters())
    twin_args = {**args, "deploy": False}
    twin = create_model(factory, **twin_args) if factory else type(model)(**twin_args)
    twin.to(device=ref.device, dtype=ref.dtype)
    own = twin.state_dict()
    if set(own) != set(sd) or any(sd[k].shape != own[k].shape for k in own):
        raise CheckpointMismatchError(_describe_mismatch(twin, sd, path))
    twin.load_state_dict(sd)
    twin.eval()
    reparameterize_model(twin)
    return twin.state_dict()
