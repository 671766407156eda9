"""bench_dwconv on a minuscule grid: every row is measured, and the summaries are computed from the rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_dwconv as bd  # noqa: E402


def test_bench_point_times_every_method_per_call():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1

        return fn

    med, single = bd.bench_point({"a": make("a"), "b": make("b")}, budget_s=0.001, max_reps=5)
    assert set(med) == {"a", "b"} and single == ""
    assert all(v >= 0 for v in med.values())
    # two warm-up calls, then >= 5 bursts of (1 untimed + >= 1 timed) calls each
    assert calls["a"] >= 2 + 5 * 2 and calls["b"] >= 2 + 5 * 2


def test_summaries_use_the_rows():
    rows = [bd.Row("nhwc", 1, 8, 7, 3, "nhwc", 1.0, 3.0, 1.0, 1e-6, ""),
            bd.Row("nchw", 1, 8, 7, 3, "direct:cols7", 2.0, 3.0, 1.0, 1e-6, ""),
            bd.Row("nhwc", 1, 8, 7, 13, "direct:cols14", 1.0, 2.0, 4.0, 1e-6, ""),
            bd.Row("nchw", 1, 8, 7, 13, "direct:cols14", 1.1, 2.0, 4.0, 1e-6, "")]
    nchw = bd.summary(rows, "nchw")
    assert "worst lkconv/best ratio **2.00** at B1 C8 H7 k3" in nchw and "slower than the best layout: 1" in nchw
    free = bd.summary_free_layout(rows)
    # per point: lkconv's faster layout (1.0 and 1.0) vs PyTorch's faster layout (1.0 and 2.0): 1x and 2x
    assert "geomean speed-up over the best PyTorch layout **1.41x**" in free
    assert "slower than the best layout: 0" in free
    assert bd.summary_aa(rows) == ""  # no A/A control in these rows
    rows[0].again_ms, rows[2].again_ms = 1.2, 2.0  # best 1.0 (cl) timed again at 1.2; best 2.0 (nchw) again at 2.0
    aa = bd.summary_aa(rows)
    assert "slower than its first timing at **1** points (worst 1.20x at B1 C8 H7 k3)" in aa
    assert "best again / best |" in bd.table(rows) and "| 1.20 |" in bd.table(rows)


def test_main_runs_a_tiny_grid(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report.md"
    rc = bd.main(["--threads", "1", "--batches", "1", "--channels", "8", "--sizes", "7", "--kernels", "3,13",
                  "--budget", "0.002", "--max-reps", "5", "--default-malloc", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert text.count("| nhwc | 1 | 8 | 7 |") == 2 and text.count("| nchw | 1 | 8 | 7 |") == 2
    assert "layout chosen freely" in text and "malloc: glibc defaults" in text
    assert "A/A control" not in text


def test_main_aa_control(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report.md"
    rc = bd.main(["--threads", "1", "--batches", "1", "--channels", "8", "--sizes", "7", "--kernels", "3",
                  "--layouts", "nhwc", "--budget", "0.002", "--max-reps", "5", "--default-malloc", "--aa",
                  "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "A/A control (1 points)" in text and text.count("| nhwc | 1 | 8 | 7 | 3 |") == 1


def test_main_bf16(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LKCONV_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report.md"
    rc = bd.main(["--threads", "1", "--batches", "1", "--channels", "8", "--sizes", "7", "--kernels", "13",
                  "--budget", "0.002", "--max-reps", "5", "--default-malloc", "--dtype", "bf16", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "dtype bf16" in text and text.count("| 1 | 8 | 7 | 13 |") == 2
