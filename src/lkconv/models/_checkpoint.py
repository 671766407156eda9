"""Checkpoint loading: ``.pth``/``.pt``/``.bin`` (weights only, never unpickling code) and ``.safetensors``."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._reparam import reparameterize_model

__all__ = ["load_state_dict_file", "load_checkpoint", "checkpoint_structure", "CheckpointMismatchError",
           "CheckpointReadError", "read_torch_file", "read_safetensors_file"]

_WRAPPER_KEYS = ("model", "state_dict", "model_state", "module")


class CheckpointMismatchError(RuntimeError):
    """The file's keys or shapes do not fit the model."""


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read: truncated or damaged, or holding pickled objects that are not tensors."""


_REFUSAL = "lkconv never unpickles code: re-save the file as a plain state_dict or as .safetensors"


def _first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.split(r"(?<=[a-z)])\. ", line, maxsplit=1)[0].rstrip(".")


def _unpickling_detail(message: str) -> str:
    """The part of PyTorch's weights-only refusal that says what was refused, without its advice to turn it off."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. Please use|\n\n|$)", message, re.S)
    return " ".join(match.group(1).split()).rstrip(".") if match else "a pickled object that is not a tensor"


def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


def read_torch_file(path: str | os.PathLike, *, hint: str = "", allowed: tuple[type, ...] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file and never advise unpickling.

    PyTorch's own refusal of a pickled object suggests re-running with ``weights_only=False``, which would execute
    whatever the file holds; that advice is dropped here and lkconv's sentence given instead.

    Args:
        path: A ``.pt``/``.pth``/... file written by ``torch.save``.
        hint: Appended to the error of a truncated or damaged file, e.g. which other file may still be intact.
        allowed: Plain classes (no code of their own runs when rebuilt, e.g. ``argparse.Namespace``) that this
            file may hold besides tensors: a published training checkpoint's ``args``. Everything else is refused.

    Raises:
        FileNotFoundError: If the file does not exist.
        CheckpointReadError: If the file holds non-tensor pickled objects, or is truncated or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise before the refusal below
            warnings.simplefilter("ignore", UserWarning)
            with torch.serialization.safe_globals(list(allowed)):
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name and the reason
        import pickle

        if isinstance(e, pickle.UnpicklingError) and "WeightsUnpickler" in str(e):
            raise CheckpointReadError(
                f"cannot read {path} as a weights-only torch checkpoint: it holds a pickled object that is not a "
                f"tensor ({_unpickling_detail(str(e))}); {_REFUSAL}"
            ) from None
        if isinstance(e, (EOFError, pickle.UnpicklingError)) or "PytorchStreamReader" in str(e):
            detail = _first_sentence(str(e)) or "the file ends early"
            raise CheckpointReadError(
                _with_hint(f"cannot read {path}: the file is truncated or damaged ({detail})", hint)
            ) from None
        raise CheckpointReadError(
            _with_hint(f"cannot read {path} as a weights-only torch checkpoint ({type(e).__name__}: "
                       f"{_first_sentence(str(e))}); {_REFUSAL}", hint)
        ) from None


def read_safetensors_file(path: str | os.PathLike, *, hint: str = "") -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with an error that names a truncated or damaged file.

    Args:
        path: A ``.safetensors`` file.
        hint: Appended to the error, e.g. which other file may still be intact.

    Raises:
        FileNotFoundError: If the file does not exist.
        CheckpointReadError: If the file is truncated or damaged.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends, re-raised with the file name
        raise CheckpointReadError(
            _with_hint(f"cannot read {path}: the file is truncated or damaged ({_first_sentence(str(e))})", hint)
        ) from None


def load_state_dict_file(path: str | os.PathLike, *, ema: bool = False,
                         allowed: tuple[type, ...] = ()) -> dict[str, torch.Tensor]:
    """Reads a state_dict from ``.safetensors`` or a torch file (bare, or under ``model``/``state_dict``).

    Torch files are read with ``weights_only=True``; ``module.`` (DDP) and ``backbone.`` prefixes are removed.
    With ``ema=True``, a ``model_ema``/``state_dict_ema`` entry is preferred. ``allowed``: see :func:`read_torch_file`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        sd = read_safetensors_file(path)
    elif suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
        sd = _unwrap(read_torch_file(path, allowed=allowed), path, ema)
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

    file_kind = checkpoint_structure(sd)
    parts = [f"checkpoint {path} does not fit {type(model).__name__}: the file holds "
             f"{'an' if file_kind == 'unknown' else 'a'} {file_kind}-structure checkpoint, the model is built in the "
             f"{_model_structure(model)} structure."]
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches: {show(shapes)}")
    head = _head_classes(model, sd)
    if head is not None and not missing and not unexpected:
        parts.append(f"only the classifier head differs: the file's head has {head} classes; build the model with "
                     f"num_classes={head} (on the command line: --num-classes {head})")
    return "\n".join(parts)


def _head_classes(model: nn.Module, sd: dict[str, torch.Tensor]) -> int | None:
    """The file's number of classes when the only shape mismatches are in the classifier head, else ``None``."""
    own = model.state_dict()
    differing = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    num_classes = getattr(model, "num_classes", None)
    if not differing or not all(k.split(".")[0] == "head" for k in differing):
        return None
    sizes = {sd[k].shape[0] for k in differing
             if sd[k].dim() >= 1 and own[k].dim() >= 1 and own[k].shape[0] == num_classes}
    return sizes.pop() if len(sizes) == 1 else None


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
