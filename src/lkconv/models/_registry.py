"""Model registry: ``register_model`` decorates a variant constructor; ``create_model`` builds it by name."""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

__all__ = ["register_model", "list_models", "is_model", "model_entrypoint", "create_model", "model_family"]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Registers a variant constructor under its function name (e.g. ``unireplknet_a``)."""
    name = fn.__name__
    if name in _ENTRYPOINTS and _ENTRYPOINTS[name] is not fn:
        raise ValueError(f"model name {name!r} is registered twice")
    _ENTRYPOINTS[name] = fn
    _FAMILIES[name] = fn.__module__.rsplit(".", 1)[-1]
    return fn


def _ensure_loaded() -> None:
    # Importing the families registers them; done lazily so the registry has no import cycle.
    from . import families  # noqa: F401


def list_models(
    pattern: str | Iterable[str] = "", exclude: str | Iterable[str] = "", *, pretrained: bool = False
) -> list[str]:
    """Registered model names matching any of the fnmatch ``pattern``(s), sorted by family then size order.

    With ``pretrained=True``: the tags of published weights instead (``unireplknet_a.in1k``, …).
    """
    if pretrained:
        from .pretrained import list_pretrained

        return list_pretrained(pattern, exclude)
    _ensure_loaded()
    names = list(_ENTRYPOINTS)
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    pats = [p for p in pats if p]
    if pats:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)]
    excl = [exclude] if isinstance(exclude, str) else list(exclude)
    excl = [p for p in excl if p]
    if excl:
        names = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in excl)]
    return names


def is_model(name: str) -> bool:
    _ensure_loaded()
    return name in _ENTRYPOINTS


def model_family(name: str) -> str:
    """The family (module) a registered model belongs to, e.g. ``unireplknet``."""
    model_entrypoint(name)
    return _FAMILIES[name]


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    _ensure_loaded()
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, _ENTRYPOINTS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see lkconv.list_models() for all {len(_ENTRYPOINTS)} names)")
    return _ENTRYPOINTS[name]


def create_model(
    model_name: str,
    *,
    pretrained: bool = False,
    pretrained_file: str | os.PathLike | None = None,
    features_only: bool = False,
    out_indices: Iterable[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Builds a registered model, optionally with published weights.

    Args:
        model_name: A name from :func:`list_models`, or a tag of published weights ``name.tag`` from
            ``list_models(pretrained=True)`` (a tag alone builds random weights with the tag's ``num_classes`` and
            ``pretrained_cfg``).
        pretrained: Load the published weights of the tag (a plain name: its default tag), fetched from the Hugging
            Face hub (extra ``lkconv[hub]``); ``num_classes`` other than the file's re-initializes only the head,
            ``in_chans`` other than 3 adapts the stem (:mod:`lkconv.models.pretrained`). ``model.pretrained_cfg``
            then holds the preprocessing.
        pretrained_file: A local copy of the published file (implies ``pretrained``), for machines without internet.
        features_only: Return a feature extractor whose forward gives the stage outputs in ``out_indices``.
        out_indices: Stages to return with ``features_only`` (default: all).
        **kwargs: Model arguments (``num_classes``, ``in_chans``, ``drop_path_rate``, ``kernel_sizes``, ``deploy``,
            …). A value of ``None`` means "the model's default" and is dropped.

    Returns:
        The model, with ``model_name`` and ``model_args`` recorded so it can be rebuilt.
    """
    if pretrained or pretrained_file is not None or "." in model_name:
        from .pretrained import create_pretrained

        model_entrypoint(model_name.partition(".")[0])  # an unknown architecture: the usual error first
        return create_pretrained(model_name, pretrained=pretrained or pretrained_file is not None,
                                 pretrained_file=pretrained_file, features_only=features_only,
                                 out_indices=out_indices, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    fn = model_entrypoint(model_name)
    model = fn(**kwargs)
    model.model_name = model_name
    model.model_args = dict(kwargs)
    if features_only:
        from ._features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices is only used with features_only=True")
    return model
