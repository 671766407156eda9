"""Persistent cache of per-shape algorithm plans for :mod:`lkconv.ops` (depthwise convolution first).

Plans live in one versioned JSON file, by default ``~/.cache/lkconv/dwconv_plans.json`` (the directory can be moved
with ``LKCONV_CACHE_DIR``)::

    {"format": "lkconv-plans", "version": 1,
     "machines": {"<machine key>": {"<shape key>": {"algo": "direct:cols14", "times_ms": {...}, "source": "measured"}}}}

The machine key holds the CPU model, the logical CPU count, the torch version and the C kernel's source hash, so a
file copied to another machine (or kept across an upgrade) is not trusted: its plans sit under another key and are
re-measured. A file of another version or with corrupt content is ignored with a warning and rewritten on the next
save; it never raises. Saves merge with what is on disk (other processes may have added plans) and are atomic
(:mod:`lkconv._atomic`: temp file in the same directory, fsync, :func:`os.replace`).

Autotuning (measuring plans on first use) is on by default; ``LKCONV_AUTOTUNE=0`` or :func:`set_autotune` turns it
off, in which case plans come from heuristics and nothing is timed.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import warnings
from pathlib import Path
from typing import Any

from lkconv._atomic import atomic_write_text

__all__ = [
    "CACHE_FILENAME",
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "PlanCache",
    "autotune_enabled",
    "cache_dir",
    "default_cache",
    "machine_key",
    "set_autotune",
]

CACHE_FORMAT = "lkconv-plans"
CACHE_VERSION = 1
CACHE_FILENAME = "dwconv_plans.json"

_autotune_override: bool | None = None


def set_autotune(enabled: bool | None) -> None:
    """Turn plan autotuning on or off for this process, overriding ``LKCONV_AUTOTUNE``.

    Args:
        enabled: True to measure plans on first use, False to use heuristics only (nothing is timed), None to go back
            to the environment variable.

    Raises:
        TypeError: if ``enabled`` is not a bool or None.
    """
    global _autotune_override
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_autotune expects True, False or None, got {enabled!r}")
    _autotune_override = enabled


def autotune_enabled() -> bool:
    """Return whether plans are measured on first use (:func:`set_autotune`, else ``LKCONV_AUTOTUNE``, default on)."""
    if _autotune_override is not None:
        return _autotune_override
    return os.environ.get("LKCONV_AUTOTUNE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Return lkconv's cache directory.

    ``$LKCONV_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/lkconv``, else ``~/.cache/lkconv``.
    """
    env = os.environ.get("LKCONV_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lkconv"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            fields = {}
            for line in fh:
                if ":" in line:
                    name, _, value = line.partition(":")
                    fields.setdefault(name.strip(), value.strip())
                if not line.strip() and fields:
                    break
        parts = [fields.get("model name") or fields.get("Hardware") or fields.get("CPU part", "")]
        parts += [f"{k}={fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
        model = " ".join(p for p in parts if p)
        if model:
            return model
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def machine_key() -> str:
    """Return the key that plans measured on this machine and software are filed under."""
    import torch

    from lkconv.ops.native import source_hash

    return f"{_cpu_model()}|cpus={os.cpu_count()}|torch={torch.__version__}|kernel={source_hash()}"


class PlanCache:
    """Thread-safe in-memory plan table backed by a JSON file.

    Args:
        path: the JSON file; None means ``cache_dir() / CACHE_FILENAME`` (resolved once, at construction).
        machine: the machine key to read and write plans under; None means :func:`machine_key`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, machine: str | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / CACHE_FILENAME
        self._machine = machine
        self._plans: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._loaded = False
        self._lock = threading.RLock()
        self._warned_save = False

    @property
    def machine(self) -> str:
        """The machine key of this cache's plans."""
        if self._machine is None:
            self._machine = machine_key()
        return self._machine

    def _read_file(self) -> dict[str, Any] | None:
        """Return the file's ``machines`` table, or None (with a warning) if it is missing, unreadable or foreign."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"lkconv: cannot read plan cache {self.path} ({exc}); starting empty", stacklevel=3)
            return None
        try:
            data = json.loads(text)
        except ValueError:
            warnings.warn(f"lkconv: plan cache {self.path} is corrupt; ignoring it (it will be rebuilt)", stacklevel=3)
            return None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("version") != CACHE_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            warnings.warn(
                f"lkconv: plan cache {self.path} has format/version {version!r}, expected {CACHE_VERSION}; "
                "ignoring it (it will be rebuilt)",
                stacklevel=3,
            )
            return None
        machines = data.get("machines")
        if not isinstance(machines, dict) or not all(isinstance(v, dict) for v in machines.values()):
            warnings.warn(
                f"lkconv: plan cache {self.path} is malformed; ignoring it (it will be rebuilt)", stacklevel=3
            )
            return None
        return machines

    @staticmethod
    def _valid_entry(entry: Any) -> bool:
        return isinstance(entry, dict) and isinstance(entry.get("algo"), str)

    def load(self) -> None:
        """(Re)read the file; entries of this machine replace the in-memory ones that are not yet saved."""
        with self._lock:
            machines = self._read_file() or {}
            mine = machines.get(self.machine, {})
            for key, entry in mine.items():
                if key not in self._dirty and self._valid_entry(entry):
                    self._plans[key] = entry
            self._loaded = True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the plan stored under ``key`` for this machine, or None."""
        with self._lock:
            self._ensure_loaded()
            return self._plans.get(key)

    def put(self, key: str, entry: dict[str, Any], *, save: bool = True) -> None:
        """Store a plan (a JSON-serialisable dict with at least ``"algo"``) and optionally save the file.

        Raises:
            TypeError: if ``entry`` is not a dict with a string ``"algo"``.
        """
        if not self._valid_entry(entry):
            raise TypeError(f"a plan must be a dict with a string 'algo', got {entry!r}")
        with self._lock:
            self._ensure_loaded()
            self._plans[key] = entry
            self._dirty.add(key)
            if save:
                self.save()

    def __len__(self) -> int:
        with self._lock:
            self._ensure_loaded()
            return len(self._plans)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Return a snapshot of (key, plan) pairs for this machine."""
        with self._lock:
            self._ensure_loaded()
            return list(self._plans.items())

    def clear(self, *, save: bool = True) -> None:
        """Forget this machine's plans (in memory and, if ``save``, on disk; other machines' plans are kept)."""
        with self._lock:
            self._plans.clear()
            self._dirty.clear()
            self._loaded = True
            if save:
                self._write(drop_mine=True)

    def save(self) -> bool:
        """Merge unsaved plans into the file atomically; returns False (with one warning) if it cannot be written."""
        with self._lock:
            ok = self._write(drop_mine=False)
            if ok:
                self._dirty.clear()
            return ok

    def _write(self, *, drop_mine: bool) -> bool:
        machines = self._read_file() or {}
        mine = {} if drop_mine else dict(machines.get(self.machine, {}))
        mine.update(self._plans)
        machines[self.machine] = mine
        payload = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "machines": machines}
        try:
            atomic_write_text(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
            return True
        except OSError as exc:
            if not self._warned_save:
                warnings.warn(
                    f"lkconv: cannot write plan cache {self.path} ({exc}); plans stay in memory", stacklevel=3
                )
                self._warned_save = True
            return False


_default: PlanCache | None = None
_default_env: tuple[str | None, str | None] | None = None
_default_lock = threading.Lock()


def default_cache() -> PlanCache:
    """Return the process-wide plan cache for the current cache directory (re-created if ``LKCONV_CACHE_DIR`` moved)."""
    global _default, _default_env
    env = (os.environ.get("LKCONV_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"))
    if _default is not None and env == _default_env:  # fast path: called on every planned convolution
        return _default
    with _default_lock:
        path = cache_dir() / CACHE_FILENAME
        if _default is None or _default.path != path:
            _default = PlanCache(path)
        _default_env = env
        return _default
