"""The argument lists of every exported C function, in one table that sets the ctypes signatures.

ctypes passes whatever it is given: a missing or misplaced argument in a declaration corrupts memory silently. The C
side of each entry is the prototype in ``lk_native.h``; ``tests/ops/test_native.py`` parses the header and fails when
a name, a type or the order of the arguments differs from this table, or when a function is in one and not the other.

Types are written as in C (``const`` kept, pointers spelled ``T*``) so the comparison with the header is exact; every
pointer is passed from Python as an address (``tensor.data_ptr()``, a ctypes array, or None for NULL).
"""

from __future__ import annotations

import ctypes

__all__ = ["SIGNATURES", "ctype_of", "declare"]

_DIMS_CONV = [("int64_t", n) for n in ("N", "C", "H", "W", "Ho", "Wo")]
_KERNEL_CONV = [("int", "kh"), ("int", "kw"), ("int", "dh"), ("int", "dw"), ("int64_t", "pt"), ("int64_t", "pl")]
_LAYOUT_CONV = [("int", n) for n in ("in_nhwc", "out_nhwc", "bf", "mode", "block", "nthreads")]

#: function name -> (return type, [(argument type, argument name), ...]), in the order of ``lk_native.h``.
SIGNATURES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "lk_tap_window": ("void", [
        ("int64_t", "H"), ("int64_t", "W"), ("int64_t", "Ho"), ("int64_t", "Wo"), ("int", "kh"), ("int", "kw"),
        ("int", "dh"), ("int", "dw"), ("int64_t", "pt"), ("int64_t", "pl"), ("int32_t*", "win"),
    ]),
    "lk_pack_weight": ("void", [
        ("const void*", "w"), ("float*", "wpk"), ("int64_t", "C"), ("int", "kh"), ("int", "kw"),
        ("const int32_t*", "win"), ("int", "bf"), ("int", "nthreads"),
    ]),
    "lk_dwconv2d": ("int", [
        ("const void*", "x"), ("const float*", "wpk"), ("const int32_t*", "win"), ("const void*", "bias"),
        ("void*", "y"), *_DIMS_CONV, *_KERNEL_CONV, *_LAYOUT_CONV,
    ]),
    "lk_dwconv2d_raw": ("int", [
        ("const void*", "x"), ("const void*", "w"), ("const void*", "bias"), ("void*", "y"),
        *_DIMS_CONV, *_KERNEL_CONV, *_LAYOUT_CONV,
    ]),
    "lk_dwconv2d_grad_weight": ("int", [
        ("const float*", "x"), ("const float*", "g"), ("float*", "out"), *_DIMS_CONV,
        ("int", "kh"), ("int", "kw"), ("int", "dh"), ("int", "dwd"), ("int64_t", "pt"), ("int64_t", "pl"),
        ("int", "nthreads"),
    ]),
    "lk_has_bf16dot": ("int", []),
    "lk_set_bf16dot": ("void", [("int", "on")]),
    "lk_channel_stats": ("int", [
        ("void*", "y"), ("int64_t", "B"), ("int64_t", "HW"), ("int64_t", "C"), ("int", "bf"), ("int", "mode"),
        ("float*", "out"), ("int", "nthreads"),
    ]),
    "lk_scale_channels": ("void", [
        ("void*", "y"), ("const float*", "s"), ("int64_t", "B"), ("int64_t", "HW"), ("int64_t", "C"), ("int", "bf"),
        ("int", "nthreads"),
    ]),
    "lk_scale_channels_u8": ("void", [
        ("const void*", "y"), ("const float*", "s"), ("uint8_t*", "q"), ("int64_t", "B"), ("int64_t", "HW"),
        ("int64_t", "C"), ("int", "bf"), ("float", "inv_scale"), ("int", "zero_point"), ("int", "nthreads"),
    ]),
    "lk_se_excite": ("void", [
        ("const float*", "sums"), ("float", "inv_hw"), ("const float*", "w1"), ("const float*", "b1"),
        ("const float*", "w2"), ("const float*", "b2"), ("int64_t", "B"), ("int64_t", "C"), ("int64_t", "hidden"),
        ("float*", "h"), ("float*", "gate"),
    ]),
    "lk_layernorm_rows": ("int", [
        ("const void*", "x"), ("void*", "y"), ("const float*", "w"), ("const float*", "b"), ("int64_t", "rows"),
        ("int64_t", "C"), ("float", "eps"), ("int", "bf"), ("int", "gelu"), ("int", "nthreads"),
    ]),
}  # fmt: skip

_SCALARS: dict[str, type] = {"int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64,
                             "float": ctypes.c_float}


def ctype_of(c_type: str) -> type | None:
    """Return the ctypes type for a C type of the table (None for ``void``; every pointer is ``c_void_p``).

    Raises:
        ValueError: for a C type the table does not use (add it to the mapping with care: its size must match).
    """
    if c_type.endswith("*"):
        return ctypes.c_void_p
    if c_type == "void":
        return None
    try:
        return _SCALARS[c_type]
    except KeyError:
        raise ValueError(f"C type {c_type!r} has no ctypes mapping; known: void, pointers, {sorted(_SCALARS)}") from None


def declare(lib: ctypes.CDLL) -> None:
    """Set ``argtypes`` and ``restype`` of every function of :data:`SIGNATURES` on the loaded library."""
    for name, (restype, args) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = [ctype_of(t) for t, _ in args]
        fn.restype = ctype_of(restype)
