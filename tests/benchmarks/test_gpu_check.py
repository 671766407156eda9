"""gpu_check: its command line parses, and on a machine without CUDA it refuses with the reason (exit 2) before
touching anything."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_cli_parses():
    args = gpu_check.parse_args(["--out", "x", "--data", "builtin:gunpoint", "--skip-ddp", "--device", "cuda:1"])
    assert (args.out, args.data, args.skip_ddp, args.skip_dwconv, args.device) == ("x", "builtin:gunpoint", True,
                                                                                     False, "cuda:1")
    assert gpu_check.parse_args([]).device == "cuda"


def test_refuses_a_cpu_device():
    from lkconv.engine.device import DeviceError

    with pytest.raises(DeviceError, match="checks CUDA"):
        gpu_check.require_cuda("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "gpu_check: refusing to run: device: CUDA was asked for" in proc.stderr
    assert not out.exists()  # nothing was started
