"""Modalities: one sub-package per kind of data (its folder contract, options, built-in sets and adapter), found
by name through :mod:`lkconv.modalities.registry`."""

from .base import ModalityAdapter, PerceptionModel
from .registry import (
    Modality,
    build_adapter,
    build_data,
    get_modality,
    load_for_predict,
    modality_names,
    register_modality,
)

__all__ = ["Modality", "ModalityAdapter", "PerceptionModel", "build_adapter", "build_data", "get_modality",
           "load_for_predict", "modality_names", "register_modality"]
