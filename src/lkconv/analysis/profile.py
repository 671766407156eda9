"""Per-layer efficiency: MACs, parameters, activation bytes, measured latency, achieved GFLOP/s, and the
"waterline" lower bound from this machine's measured GEMM rate and memory bandwidth.

Definitions (our operationalisation of Lavin's efficiency-gap/waterline ideas):

- ``A_k`` FLOPs of layer k (2 × MACs), ``D_k`` bytes it must move at least (input + output + weights),
  ``P`` peak FLOP/s measured here with a large fp32 GEMM, ``BW`` bytes/s measured with a large copy.
- Layer bound ``T*_k = max(A_k / P, D_k / BW)``; waterline ``T_water = Σ_k T*_k``.
- Efficiency ``E = A / (T · P)``; efficiency gap ``T − T_water`` (also reported as the ratio ``T / T_water``).

Latency per layer is measured with forward hooks (median over repeats), so it includes the framework's per-call
overhead — which is part of what a user pays.

The layers do not add up to the whole forward pass: work written in a module's ``forward()`` rather than as a
submodule (residual adds, layer scales, reshapes/permutes, functional activations) and the Python overhead of the
container modules run between the hooked leaf layers. ``outside_layers_s`` measures it as the time of a hooked pass
(``profiled_latency_s``, median over the same passes the layers are timed in) minus the sum of the layers;
``total_latency_s`` is a pass without hooks, so ``profiled_latency_s - total_latency_s`` is the hooks' own cost.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .complexity import layer_costs

__all__ = ["MachineRates", "measure_machine", "LayerProfile", "ProfileReport", "profile_model", "plot_profile"]


@dataclass
class MachineRates:
    gemm_flops: float  # FLOP/s of a large fp32 matmul
    bandwidth: float  # bytes/s of a large tensor copy (read + write counted)
    threads: int


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def measure_machine(*, gemm_size: int = 1024, copy_mb: int = 256, repeats: int = 5) -> MachineRates:
    """Measures the fp32 GEMM rate and the copy bandwidth with the current torch thread count."""
    a, b = torch.randn(gemm_size, gemm_size), torch.randn(gemm_size, gemm_size)
    t = _median_time(lambda: torch.mm(a, b), repeats)
    src = torch.empty(copy_mb * 2**20 // 4)
    dst = torch.empty_like(src)
    tc = _median_time(lambda: dst.copy_(src), repeats)
    return MachineRates(gemm_flops=2 * gemm_size**3 / t, bandwidth=2 * src.numel() * 4 / tc,
                        threads=torch.get_num_threads())


@dataclass
class LayerProfile:
    name: str
    type: str
    macs: int
    params: int
    bytes: int
    latency_s: float
    bound_s: float
    block: str = ""

    @property
    def gflops(self) -> float:
        return 2 * self.macs / self.latency_s / 1e9 if self.latency_s > 0 else 0.0


@dataclass
class ProfileReport:
    model: str
    input_shape: tuple[int, ...]
    machine: MachineRates
    layers: list[LayerProfile] = field(default_factory=list)
    total_latency_s: float = 0.0  # a whole forward pass, without hooks
    profiled_latency_s: float = 0.0  # a whole forward pass with the per-layer timing hooks

    @property
    def sum_layer_latency_s(self) -> float:
        return sum(l.latency_s for l in self.layers)

    @property
    def outside_layers_s(self) -> float:
        """Time of a hooked pass spent outside the leaf layers (see the module docstring); never negative."""
        return max(self.profiled_latency_s - self.sum_layer_latency_s, 0.0)

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.layers)

    @property
    def waterline_s(self) -> float:
        return sum(l.bound_s for l in self.layers)

    @property
    def efficiency(self) -> float:
        return 2 * self.macs / (self.total_latency_s * self.machine.gemm_flops) if self.total_latency_s else 0.0

    def blocks(self) -> list[dict]:
        """Layers summed per block (``stages.i.j``), stem/downsample and head."""
        out: dict[str, dict] = {}
        for l in self.layers:
            row = out.setdefault(l.block, {"block": l.block, "macs": 0, "params": 0, "bytes": 0, "latency_s": 0.0,
                                           "bound_s": 0.0})
            for k in ("macs", "params", "bytes", "latency_s", "bound_s"):
                row[k] += getattr(l, k)
        return list(out.values())

    def to_dict(self) -> dict:
        return {
            "model": self.model, "input_shape": list(self.input_shape), "machine": asdict(self.machine),
            "macs": self.macs, "total_latency_s": self.total_latency_s, "sum_layer_latency_s": self.sum_layer_latency_s,
            "profiled_latency_s": self.profiled_latency_s, "outside_layers_s": self.outside_layers_s,
            "waterline_s": self.waterline_s, "efficiency": self.efficiency,
            "efficiency_gap_s": self.total_latency_s - self.waterline_s,
            "gap_ratio": self.total_latency_s / self.waterline_s if self.waterline_s else None,
            "layers": [{**asdict(l), "gflops": l.gflops} for l in self.layers], "blocks": self.blocks(),
        }


def _block_of(name: str) -> str:
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p == "stages" and i + 2 < len(parts):
            return ".".join(parts[: i + 3])
        if p == "downsample_layers" and i + 1 < len(parts):
            return ".".join(parts[: i + 2])
    return parts[0] if parts else name


@torch.no_grad()
def profile_model(model: nn.Module, example_input: torch.Tensor, *, repeats: int = 5,
                  machine: MachineRates | None = None, name: str = "") -> ProfileReport:
    """Profiles every leaf layer of ``model`` (eval mode) on ``example_input``."""
    model.eval()
    machine = machine or measure_machine()
    costs = {c.name: c for c in layer_costs(model, example_input)}
    starts: dict[nn.Module, float] = {}
    times: dict[str, list[float]] = {n: [] for n in costs}
    names = {m: n for n, m in model.named_modules()}

    def pre(m, args):
        starts[m] = time.perf_counter()

    def post(m, args, out):
        n = names[m]
        if n in times:
            times[n].append(time.perf_counter() - starts[m])

    handles = []
    for m in model.modules():
        if names.get(m) in costs:
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    passes = []
    try:
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            model(example_input)
            passes.append(time.perf_counter() - t0)
    finally:
        for h in handles:
            h.remove()
    total = _median_time(lambda: model(example_input), repeats)
    report = ProfileReport(name or type(model).__name__, tuple(example_input.shape), machine, total_latency_s=total,
                           profiled_latency_s=statistics.median(passes[1:] or passes))
    for n, c in costs.items():
        ts = times[n][1:] or times[n]  # the first pass is warm-up
        nbytes = c.input_bytes + c.output_bytes + c.weight_bytes
        bound = max(2 * c.macs / machine.gemm_flops, nbytes / machine.bandwidth)
        report.layers.append(LayerProfile(n, c.type, c.macs, c.params, nbytes, statistics.median(ts) if ts else 0.0,
                                          bound, _block_of(n)))
    return report


def plot_profile(report: ProfileReport, path: str, top: int = 30) -> None:
    """Bar chart of measured latency vs the per-block bound (the efficiency gap per block)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'lkconv[plot]'") from e
    blocks = report.blocks()[:top]
    labels = [b["block"] for b in blocks]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(blocks)), 4))
    xs = range(len(blocks))
    ax.bar(xs, [b["latency_s"] * 1e3 for b in blocks], label="measured", color="tab:orange")
    ax.bar(xs, [b["bound_s"] * 1e3 for b in blocks], label="bound max(A/P, D/BW)", color="tab:blue", alpha=0.8)
    ax.set_xticks(list(xs), labels, rotation=90, fontsize=7)
    ax.set_ylabel("ms")
    ax.set_title(f"{report.model} {list(report.input_shape)}: efficiency {report.efficiency:.1%}, "
                 f"latency {report.total_latency_s * 1e3:.1f} ms vs waterline {report.waterline_s * 1e3:.1f} ms",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
