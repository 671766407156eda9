"""Model registry: ``register_model`` decorates a variant constructor; ``create_model`` builds it by name."""

from __future__ import annotations

import difflib
import fnmatch
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


def list_models(pattern: str | Iterable[str] = "", exclude: str | Iterable[str] = "") -> list[str]:
    """Registered model names matching any of the fnmatch ``pattern``(s), sorted by family then size order."""
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
    model_name: str, *, features_only: bool = False, out_indices: Iterable[int] | None = None, **kwargs: Any
) -> nn.Module:
    """Builds a registered model.

    Args:
        model_name: A name from :func:`list_models`.
        features_only: Return a feature extractor whose forward gives the stage outputs in ``out_indices``.
        out_indices: Stages to return with ``features_only`` (default: all).
        **kwargs: Model arguments (``num_classes``, ``in_chans``, ``drop_path_rate``, ``kernel_sizes``, ``deploy``,
            …). A value of ``None`` means "the model's default" and is dropped.

    Returns:
        The model, with ``model_name`` and ``model_args`` recorded so it can be rebuilt.
    """
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
