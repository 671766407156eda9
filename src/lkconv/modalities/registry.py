"""The modality registry: one :class:`Modality` per kind of data, found by its name.

A modality owns everything between decoded files and the backbone: its name, the ``modality_args`` it accepts
(unknown keys are an error for every modality), how a folder becomes train/val datasets, how ``predict`` reads one
file, and the adapter that maps a raw batch to the backbone's B×C×H×W input. Adding one is one new module that
defines a subclass and decorates it with :func:`register_modality`; nothing in the engine or the CLI changes::

    @register_modality
    class WaveletModality(Modality):
        name = "wavelet"
        adapter = WaveletAdapter                     # a ModalityAdapter subclass
        def accepted_options(self, task, *, builtin=False): return ("levels",)
        def build_folder_data(self, cfg, *, eval_only=False, class_names=None) -> DataBundle: ...
        def load_for_predict(self, path, preprocessing) -> torch.Tensor: ...

Every module and sub-package of :mod:`lkconv.modalities` is imported on the first lookup, so a modality dropped
there as one file registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..data.datasets import DataBundle, DataError, check_option_keys, set_on_bad_file
from .base import ModalityAdapter

__all__ = ["Modality", "register_modality", "get_modality", "modality_names", "build_adapter", "build_data",
           "load_for_predict"]

_REGISTRY: dict[str, "Modality"] = {}
_loaded = False


class Modality:
    """Base of every modality. Subclasses set ``name`` and ``adapter`` and implement the data methods.

    ``tasks`` lists the tasks the modality's data can serve (``lkconv.engine.tasks`` names); ``label`` is how
    error messages name it.
    """

    name: str = ""
    label: str = ""
    tasks: tuple[str, ...] = ("classify",)
    adapter: type[ModalityAdapter]
    folder: ModuleType | None = None  # a module with ``build_data`` and ``load_for_predict``, if not overridden

    def accepted_options(self, task: str, *, builtin: bool = False) -> Sequence[str]:
        """The ``modality_args`` keys this modality reads for ``task`` (``builtin``: for a built-in set)."""
        return ()

    def check_options(self, modality_args: dict[str, Any], task: str, *, builtin: bool = False) -> None:
        """Rejects keys outside :meth:`accepted_options`, naming them and what is accepted."""
        check_option_keys(modality_args, self.accepted_options(task, builtin=builtin), self.label or self.name,
                          task=task if len(self.tasks) > 1 else None)

    def build_data(self, cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
        """The datasets for a run: ``cfg.data`` is ``builtin:NAME`` or a path handed to :meth:`build_folder_data`."""
        builtin = cfg.data.startswith("builtin:")
        self.check_options(dict(cfg.modality_args), cfg.task, builtin=builtin)
        if builtin:
            from .builtin import load_builtin

            return load_builtin(cfg.data.split(":", 1)[1], cfg)
        if not Path(cfg.data).exists():
            raise DataError(f"data path not found: {cfg.data}")
        return self.build_folder_data(cfg, eval_only=eval_only, class_names=class_names)

    def build_folder_data(self, cfg, *, eval_only: bool = False,
                          class_names: list[str] | None = None) -> DataBundle:
        """Train/val datasets from the folder ``cfg.data`` per this modality's data contract.

        With ``eval_only`` only ``val`` is needed: the folder's val/ or test/ split, or all of it, labelled with the
        trained run's ``class_names``.
        """
        if self.folder is None:
            raise NotImplementedError(f"modality {self.name!r} reads no folders")
        return self.folder.build_data(cfg, eval_only=eval_only, class_names=class_names)

    def load_for_predict(self, path: str | Path, preprocessing: dict[str, Any]) -> torch.Tensor:
        """One file as the raw sample the trained adapter expects (the same preprocessing as validation)."""
        if self.folder is None:
            raise NotImplementedError(f"modality {self.name!r} reads no files")
        return self.folder.load_for_predict(path, preprocessing)

    def build_adapter(self, **args: Any) -> ModalityAdapter:
        """The adapter from the arguments of its ``config()`` (as saved in a run's ``config.json``)."""
        return self.adapter(**args)


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: registers one instance of ``cls`` under ``cls.name`` (a later registration replaces it)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    if not (isinstance(getattr(cls, "adapter", None), type) and issubclass(cls.adapter, ModalityAdapter)):
        raise ValueError(f"{cls.__name__}.adapter must be a ModalityAdapter subclass")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_builtin_modalities() -> None:
    """Imports every module and sub-package of :mod:`lkconv.modalities`; a modality registers when imported."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")


def modality_names() -> list[str]:
    _load_builtin_modalities()
    return sorted(_REGISTRY)


def get_modality(name: str) -> Modality:
    _load_builtin_modalities()
    if name not in _REGISTRY:
        raise DataError(f"unknown modality {name!r}; accepted: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_adapter(name: str, **kwargs: Any) -> ModalityAdapter:
    """The adapter of modality ``name`` with the arguments of its ``config()``."""
    return get_modality(name).build_adapter(**kwargs)


def build_data(cfg, *, eval_only: bool = False, class_names: list[str] | None = None) -> DataBundle:
    """The train/val datasets for a :class:`~lkconv.engine.config.TrainConfig` (``data`` is PATH or builtin:NAME)."""
    bundle = get_modality(cfg.modality).build_data(cfg, eval_only=eval_only, class_names=class_names)
    set_on_bad_file(bundle, cfg.on_bad_file)  # decode failures are handled once, by the datasets
    return bundle


def load_for_predict(modality: str, path: str | Path, preprocessing: dict[str, Any]) -> torch.Tensor:
    """One file as the raw sample a trained run's adapter expects."""
    return get_modality(modality).load_for_predict(path, preprocessing)
