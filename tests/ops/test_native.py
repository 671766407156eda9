"""Tests for lkconv.ops.native: the ctypes signature table agrees with the C header, every C file compiles on its own
without warnings, and the built library exports exactly the table's functions."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import pytest

from lkconv.ops import native
from lkconv.ops.native.signatures import SIGNATURES, ctype_of

_PROTO = re.compile(r"LK_API\s+(?P<ret>[\w\s\*]+?)\s*\b(?P<name>lk_\w+)\s*\((?P<args>[^)]*)\)\s*;", re.S)


def _header_prototypes() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Parse the LK_API prototypes of lk_native.h into the table's form: name -> (return type, [(type, name)])."""
    text = (native.NATIVE_DIR / "lk_native.h").read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    protos = {}
    for m in _PROTO.finditer(text):
        args = []
        raw = " ".join(m["args"].split())
        if raw not in ("", "void"):
            for part in raw.split(","):
                am = re.fullmatch(r"\s*(?P<type>.*?[\w\*])\s*(?P<name>\w+)\s*", part)
                assert am, f"cannot parse argument {part!r} of {m['name']}"
                args.append((re.sub(r"\s*\*", "*", am["type"]).strip(), am["name"]))
        protos[m["name"]] = (" ".join(m["ret"].split()), args)
    return protos


def test_header_prototypes_match_the_signature_table():
    protos = _header_prototypes()
    assert len(protos) >= 11  # the parser found the exported functions (it must not pass by finding none)
    assert set(protos) == set(SIGNATURES), (
        f"only in the header: {sorted(set(protos) - set(SIGNATURES))}; "
        f"only in the table: {sorted(set(SIGNATURES) - set(protos))}"
    )
    for name, (ret, args) in SIGNATURES.items():
        assert protos[name][0] == ret, f"{name}: return type {protos[name][0]!r} in the header, {ret!r} in the table"
        assert protos[name][1] == args, f"{name}: arguments differ\nheader: {protos[name][1]}\ntable:  {args}"
    assert len(SIGNATURES["lk_dwconv2d"][1]) == 23


def test_parser_notices_a_mismatch(tmp_path, monkeypatch):
    """A header whose argument order differs from the table's is reported (the check above can fail)."""
    header = (native.NATIVE_DIR / "lk_native.h").read_text(encoding="utf-8")
    swapped = header.replace("int kh, int kw, int dh, int dw, int64_t pt,\n                          int64_t pl,",
                             "int kw, int kh, int dh, int dw, int64_t pt,\n                          int64_t pl,")
    assert swapped != header
    (tmp_path / "lk_native.h").write_text(swapped, encoding="utf-8")
    monkeypatch.setattr(native, "NATIVE_DIR", tmp_path)
    with pytest.raises(AssertionError, match="lk_tap_window: arguments differ"):
        test_header_prototypes_match_the_signature_table()


def test_ctype_mapping():
    assert ctype_of("const int32_t*") is ctypes.c_void_p and ctype_of("void") is None
    assert ctype_of("int64_t") is ctypes.c_int64 and ctype_of("float") is ctypes.c_float
    with pytest.raises(ValueError, match="no ctypes mapping"):
        ctype_of("double")


def test_library_exports_the_table():
    lib = native.load()
    if lib is None:
        pytest.skip("C kernels unavailable (no compiler)")
    for name, (_, args) in SIGNATURES.items():
        fn = getattr(lib, name)
        assert len(fn.argtypes) == len(args)
    with pytest.raises(AttributeError):  # hidden: only LK_API functions are exported
        lib.lk_dwconv2d_bf16dot  # noqa: B018


@pytest.mark.parametrize("source", native.C_FILES)
def test_each_file_compiles_alone_without_warnings(source, tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    cmd = [cc, "-O2", "-march=native", "-fopenmp", *native.BASE_FLAGS, "-Wall", "-Wextra", "-Werror", "-c",
           str(native.NATIVE_DIR / source), "-o", str(tmp_path / "out.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"


def test_sources_are_package_data():
    """The C files the loader builds are the ones pyproject.toml ships (*.c, *.h in lkconv.ops.native)."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["lkconv.ops.native"]
    assert set(patterns) == {"*.c", "*.h"}
    shipped = {p.name for pat in patterns for p in native.NATIVE_DIR.glob(pat)}
    assert set(native.C_FILES) | set(native.HEADERS) == shipped
