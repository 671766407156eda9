"""Built-in timeseries sets (``--data builtin:NAME``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...data.datasets import DataBundle, DataError
from ..builtin import BuiltinSet, register
from .data import _build_classification, _read_table, forecast_bundle

__all__ = ["sktime_data_dir"]


# --- built-in sets (the data files bundled with sktime) ------------------------------------------------------------

def sktime_data_dir() -> Path | None:
    """``<sktime>/datasets/data`` when sktime is installed (found without importing it), else None."""
    try:
        spec = importlib.util.find_spec("sktime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _sktime_file(*parts: str) -> Path | None:
    root = sktime_data_dir()
    return root.joinpath(*parts) if root is not None else None


_SKTIME_INSTALL = "pip install --no-deps sktime==1.2.0 (only its bundled data files are used)"
_CLASSIFICATION_SETS = {
    # name: (sktime folder, description, size)
    "gunpoint": ("GunPoint", "UCR GunPoint: hand motion, gun draw vs point, univariate, length 150, 2 classes",
                 "50 train + 150 test"),
    "italypowerdemand": ("ItalyPowerDemand", "UCR ItalyPowerDemand: daily power demand, length 24, 2 classes",
                         "67 train + 1029 test"),
    "arrowhead": ("ArrowHead", "UCR ArrowHead: projectile point outlines, length 251, 3 classes",
                  "36 train + 175 test"),
    "basicmotions": ("BasicMotions", "UEA BasicMotions: 6-channel accelerometer/gyroscope, length 100, 4 classes",
                     "40 train + 40 test"),
    "japanesevowels": ("JapaneseVowels", "UEA JapaneseVowels: 12 LPC channels, unequal length 7-29, 9 speakers",
                       "270 train + 370 test"),
}


def _register_classification(name: str, folder: str, description: str, size: str) -> None:
    def available() -> bool:
        f = _sktime_file(folder, f"{folder}_TRAIN.ts")
        return f is not None and f.is_file()

    def build(cfg) -> DataBundle:
        if cfg.task != "classify":
            raise DataError(f"builtin:{name} is a classification set; use --task classify")
        return _build_classification(_sktime_file(folder, f"{folder}_TRAIN.ts"), cfg, eval_only=False,
                                     class_names=None, notes={"source": f"sktime {folder}"})

    register(BuiltinSet(name, "timeseries", "classify", description, size,
                        "UCR/UEA, research use", _SKTIME_INSTALL, available,
                        build))


for _name, (_folder, _desc, _size) in _CLASSIFICATION_SETS.items():
    _register_classification(_name, _folder, _desc, _size)


def _airline_file() -> Path | None:
    return _sktime_file("Airline", "Airline.csv")


def _build_airline(cfg) -> DataBundle:
    if cfg.task != "forecast":
        raise DataError("builtin:airline is a forecasting set; use --task forecast (with --lookback/--horizon)")
    path = _airline_file()
    return forecast_bundle(_read_table(path), cfg, source=path, notes={"source": "sktime Airline (Box & Jenkins)"})


register(BuiltinSet(
    "airline", "timeseries", "forecast", "Box & Jenkins international airline passengers, monthly 1949-1960",
    "144 steps, 1 series", "public domain", _SKTIME_INSTALL,
    lambda: (_airline_file() is not None and _airline_file().is_file()), _build_airline,
))
