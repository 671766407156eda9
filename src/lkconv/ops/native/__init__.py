"""lkconv's native kernels: C files shipped with the package, built on first use and called through ctypes.

This folder holds the C sources (package data) and their loader:

* ``dwconv.c``: the depthwise convolution (fp32 accumulation, NCHW and channels_last, fp32 and bf16) and its weight
  gradient; ``dwconv_bf16.c``: its AVX512-BF16 path (pairs of taps per dot product) where the build targets it;
* ``pointwise.c``: GELU + the GRN statistic, per-channel scaling and the SE excitation; ``layernorm.c``: LayerNorm
  over the channels of each pixel;
* ``lk_native.h``: shared vector types and helpers and the exported prototypes; ``lk_vmath.h``: GELU and bf16
  rounding on 16 lanes; :mod:`~lkconv.ops.native.signatures`: the same prototypes as the table that sets the ctypes
  signatures (a test checks that the two agree).

The C has no Python or torch headers, so it compiles in a few seconds with the system C compiler (GCC or Clang) and
is called through :mod:`ctypes` (which releases the GIL). The shared object is cached under ``<cache dir>/ext/`` with
a name that hashes the sources, the compiler flags and the CPU's feature flags, so a cache directory shared between
machines never loads a binary built for another instruction set.

Set ``LKCONV_NO_EXT=1`` to disable the kernel; every failure to build or load it (no compiler, no OpenMP, a read-only
cache directory) is reported once as a warning and leaves lkconv on its pure-torch algorithms.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

from lkconv.ops.native.signatures import declare

__all__ = ["C_FILES", "HEADERS", "KERNEL_VERSION", "NATIVE_DIR", "load", "source_hash", "threads_supported"]

#: The folder of the C sources (installed with the package as package data).
NATIVE_DIR = Path(__file__).resolve().parent
#: Every translation unit of the shared object; each compiles on its own.
C_FILES: tuple[str, ...] = ("dwconv.c", "dwconv_bf16.c", "pointwise.c", "layernorm.c")
#: The headers they include.
HEADERS: tuple[str, ...] = ("lk_native.h", "lk_vmath.h")
#: Flags every build adds to a flag set: C dialect, a shared object, only the LK_API functions exported.
BASE_FLAGS: tuple[str, ...] = ("-std=gnu11", "-fPIC", "-fvisibility=hidden")

#: Bump when the kernel's behaviour (not only its text) changes; part of the plan-cache machine key.
KERNEL_VERSION = 2  # 2: bf16 channels_last inputs take the AVX512-BF16 path where built

_FLAG_SETS: tuple[tuple[str, ...], ...] = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3", "-march=native"),
    ("-O3",),
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_openmp = False


def _sources_text() -> str:
    return "".join(f"// {name}\n{(NATIVE_DIR / name).read_text(encoding='utf-8')}" for name in HEADERS + C_FILES)


def source_hash() -> str:
    """Return a short hash of the kernel sources and version (changes whenever the compiled code would)."""
    return hashlib.sha256(f"{KERNEL_VERSION}\n{_sources_text()}".encode()).hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _ext_dir() -> Path:
    from lkconv.ops.plans import cache_dir

    return cache_dir() / "ext"


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build(cc: str, out_dir: Path) -> tuple[Path, bool]:
    """Compile the kernel into ``out_dir`` and return (path, has_openmp); raises RuntimeError on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in _FLAG_SETS:
        flag_text = " ".join((*flags, *BASE_FLAGS))
        tag = hashlib.sha256(f"{source_hash()}|{cc}|{flag_text}|{_cpu_flags()}".encode()).hexdigest()[:20]
        target = out_dir / f"lk_dwconv_{tag}.so"
        if target.exists():
            return target, "-fopenmp" in flags
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            tmp_so = Path(tmp) / "lk_dwconv.so"
            sources = [str(NATIVE_DIR / name) for name in C_FILES]
            cmd = [cc, *flags, *BASE_FLAGS, "-shared", "-o", str(tmp_so), *sources, "-lm"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            if proc.returncode == 0 and tmp_so.exists():
                os.replace(tmp_so, target)  # atomic: concurrent builders race harmlessly
                return target, "-fopenmp" in flags
            errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-400:]}")
    raise RuntimeError("could not compile the depthwise kernel:\n" + "\n".join(errors))


def load() -> ctypes.CDLL | None:
    """Return the compiled kernel library, building it on first use; None when disabled or unavailable.

    Returns:
        The loaded :class:`ctypes.CDLL`, or None if ``LKCONV_NO_EXT=1`` is set or building/loading failed (a warning
        says why, once per process).
    """
    global _lib, _tried, _openmp
    if os.environ.get("LKCONV_NO_EXT", "0") not in ("", "0"):
        return None
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        try:
            import torch  # noqa: F401  (loads torch's libgomp first, so the kernel shares its OpenMP runtime)

            cc = _compiler()
            if cc is None:
                raise RuntimeError("no C compiler found (set CC or install gcc)")
            path, _openmp = _build(cc, _ext_dir())
            lib = ctypes.CDLL(str(path))
            declare(lib)
            _lib = lib
        except Exception as exc:  # any failure leaves the pure-torch algorithms in charge
            warnings.warn(f"lkconv: C depthwise kernel unavailable, using torch algorithms only ({exc})", stacklevel=2)
            _lib = None
        _tried = True
    return _lib


def threads_supported() -> bool:
    """Return whether the loaded kernel was built with OpenMP (otherwise it runs on one thread)."""
    return _lib is not None and _openmp


def _reset_for_tests() -> None:
    """Forget the loaded library so the next :func:`load` retries (tests only)."""
    global _lib, _tried, _openmp
    with _lock:
        _lib, _tried, _openmp = None, False, False
