"""Atomic file writes: a temporary file in the same folder, fsync, then rename over the target.

A reader (or a resumed run) sees either the old file or the new one, never a torn write, whenever the process
dies — SIGKILL included. Every file lkconv writes for later reading goes through here: run directories and
checkpoints (:mod:`lkconv.engine`), the plan cache (:mod:`lkconv.ops.plans`), CLI and demo outputs.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_with", "atomic_torch_save", "atomic_save_safetensors"]


_TEST_DELAY = float(os.environ.get("LKCONV_TEST_SAVE_DELAY", "0") or 0)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Calls ``write(f)`` on a temporary file beside ``path`` and renames it into place once it is on disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if _TEST_DELAY:  # test hook: widens the window in which a kill lands mid-save
            time.sleep(_TEST_DELAY)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    import torch

    return atomic_write_with(path, lambda f: torch.save(obj, f))


def atomic_save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write_bytes(path, data)
