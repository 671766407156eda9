"""Build-on-first-use loader for the C depthwise convolution kernel.

The kernel (:mod:`lkconv.ops._dwconv_ext._source`) is plain C with no Python or torch headers, so it compiles in about
a second with the system C compiler and is called through :mod:`ctypes` (which releases the GIL). The shared object is
cached under ``<cache dir>/ext/`` with a name that hashes the source, the compiler flags and the CPU's feature flags,
so a cache directory shared between machines never loads a binary built for another instruction set.

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

from lkconv.ops._dwconv_ext._source import C_SOURCE as _DW_SOURCE
from lkconv.ops._dwconv_ext._source_bf16 import C_SOURCE_BF16
from lkconv.ops._dwconv_ext._source_pointwise import C_SOURCE_POINTWISE

#: One shared object holds every kernel: the depthwise convolution (with its AVX512-BF16 path where the compiler
#: targets it) and the fused FFN element-wise kernels.
C_SOURCE = _DW_SOURCE + C_SOURCE_BF16 + C_SOURCE_POINTWISE

__all__ = ["KERNEL_VERSION", "load", "source_hash", "threads_supported"]

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


def source_hash() -> str:
    """Return a short hash of the kernel source and version (changes whenever the compiled code would)."""
    return hashlib.sha256(f"{KERNEL_VERSION}\n{C_SOURCE}".encode()).hexdigest()[:16]


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


def _declare(lib: ctypes.CDLL) -> None:
    i64, i32, vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    lib.lk_tap_window.argtypes = [i64, i64, i64, i64, i32, i32, i32, i32, i64, i64, vp]
    lib.lk_tap_window.restype = None
    lib.lk_pack_weight.argtypes = [vp, vp, i64, i32, i32, vp, i32, i32]
    lib.lk_pack_weight.restype = None
    lib.lk_dwconv2d.argtypes = [vp, vp, vp, vp, vp] + [i64] * 6 + [i32] * 4 + [i64] * 2 + [i32] * 6
    lib.lk_dwconv2d.restype = i32
    lib.lk_dwconv2d_raw.argtypes = [vp, vp, vp, vp] + [i64] * 6 + [i32] * 4 + [i64] * 2 + [i32] * 6
    lib.lk_dwconv2d_raw.restype = i32
    lib.lk_dwconv2d_grad_weight.argtypes = [vp, vp, vp] + [i64] * 6 + [i32] * 4 + [i64] * 2 + [i32]
    lib.lk_dwconv2d_grad_weight.restype = i32
    lib.lk_channel_stats.argtypes = [vp, i64, i64, i64, i32, i32, vp, i32]
    lib.lk_channel_stats.restype = i32
    lib.lk_scale_channels.argtypes = [vp, vp, i64, i64, i64, i32, i32]
    lib.lk_scale_channels.restype = None
    lib.lk_se_excite.argtypes = [vp, ctypes.c_float, vp, vp, vp, vp, i64, i64, i64, vp, vp]
    lib.lk_se_excite.restype = None
    lib.lk_has_bf16dot.argtypes = []
    lib.lk_has_bf16dot.restype = i32
    lib.lk_set_bf16dot.argtypes = [i32]
    lib.lk_set_bf16dot.restype = None
    lib.lk_layernorm_rows.argtypes = [vp, vp, vp, vp, i64, i64, ctypes.c_float, i32, i32, i32]
    lib.lk_layernorm_rows.restype = i32


def _build(cc: str, out_dir: Path) -> tuple[Path, bool]:
    """Compile the kernel into ``out_dir`` and return (path, has_openmp); raises RuntimeError on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in _FLAG_SETS:
        tag = hashlib.sha256(f"{source_hash()}|{cc}|{' '.join(flags)}|{_cpu_flags()}".encode()).hexdigest()[:20]
        target = out_dir / f"lk_dwconv_{tag}.so"
        if target.exists():
            return target, "-fopenmp" in flags
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            src = Path(tmp) / "lk_dwconv.c"
            src.write_text(C_SOURCE, encoding="utf-8")
            tmp_so = Path(tmp) / "lk_dwconv.so"
            cmd = [cc, *flags, "-std=gnu11", "-fPIC", "-shared", "-o", str(tmp_so), str(src), "-lm"]
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
            _declare(lib)
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
