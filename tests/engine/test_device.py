"""Device resolution, mixed-precision choice, loader settings and the --device option, decided without a GPU
(a :class:`CudaProbe` stands in for the machine); the CUDA runs themselves are marked ``cuda`` and skip here."""

import json
import math

import pytest
import torch
import yaml

from lkconv.cli import main
from lkconv.engine.batches import EpochFeeder
from lkconv.engine.config import ConfigError, TrainConfig
from lkconv.engine.device import (CudaProbe, DeviceError, LoaderSettings, choose_precision, configure_backends,
                                  cores_per_process, default_num_workers, loader_settings, move_batch,
                                  resolve_device)

from conftest import tiny_config

NO_TORCH_CUDA = CudaProbe(built=False, count=0)
NO_GPU = CudaProbe(built=True, count=0, version="12.4")
TWO_AMPERE = CudaProbe(built=True, count=2, bf16=(True, True), version="12.4")
ONE_VOLTA = CudaProbe(built=True, count=1, bf16=(False,), version="12.4")
CPU, CUDA0 = torch.device("cpu"), torch.device("cuda", 0)


# --- resolve_device ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, probe, want", [
    ("auto", NO_TORCH_CUDA, CPU), ("auto", NO_GPU, CPU), ("auto", TWO_AMPERE, CUDA0), (None, NO_GPU, CPU),
    ("cpu", TWO_AMPERE, CPU), ("CPU", NO_GPU, CPU), ("cuda", TWO_AMPERE, CUDA0),
    ("cuda:1", TWO_AMPERE, torch.device("cuda", 1)), (" cuda:0 ", ONE_VOLTA, CUDA0),
])
def test_resolve_device(spec, probe, want):
    assert resolve_device(spec, probe) == want


def test_cuda_without_cuda_build_says_so():
    with pytest.raises(DeviceError, match="built without CUDA") as e:
        resolve_device("cuda", NO_TORCH_CUDA)
    assert "--device cpu" in str(e.value) and torch.__version__ in str(e.value)


def test_cuda_without_devices_names_the_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError, match="found no CUDA device") as e:
        resolve_device("cuda:0", NO_GPU)
    assert "CUDA_VISIBLE_DEVICES=''" in str(e.value) and "CUDA 12.4" in str(e.value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(DeviceError, match="no driver or no GPU visible"):
        resolve_device("cuda", NO_GPU)


def test_cuda_index_out_of_range_names_the_range():
    with pytest.raises(DeviceError, match=r"cuda:2 is out of range: 2 CUDA device\(s\) found \(cuda:0 .. cuda:1\)"):
        resolve_device("cuda:2", TWO_AMPERE)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "mps0", ""])
def test_unknown_device_names_the_accepted_values(spec):
    with pytest.raises(DeviceError, match="auto, cpu, cuda, cuda:N"):
        resolve_device(spec, TWO_AMPERE)


def test_this_machine_resolves_auto_to_something_real():
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- precision -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device, amp, probe, dtype, scaler", [
    (CUDA0, None, TWO_AMPERE, torch.bfloat16, False),   # bf16 where supported: no scaler needed
    (CUDA0, True, TWO_AMPERE, torch.bfloat16, False),
    (CUDA0, None, ONE_VOLTA, torch.float16, True),      # else fp16 with a grad scaler
    (torch.device("cuda", 1), None, CudaProbe(True, 2, (True, False)), torch.float16, True),  # per device
    (CUDA0, False, TWO_AMPERE, None, False),            # amp off: fp32
    (CPU, None, TWO_AMPERE, None, False),               # the CPU stays fp32 unless asked
    (CPU, False, NO_GPU, None, False),
    (CPU, True, NO_GPU, torch.bfloat16, False),
])
def test_choose_precision(device, amp, probe, dtype, scaler):
    p = choose_precision(device, amp, probe)
    assert (p.device_type, p.dtype, p.grad_scaler) == (device.type, dtype, scaler)
    if device.type == "cpu":
        assert p.make_scaler() is None


def test_precision_autocast_on_cpu():
    p = choose_precision(CPU, True)
    with p.autocast():
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == torch.bfloat16 and p.describe() == "bf16 autocast"
    with choose_precision(CPU, None).autocast():
        assert torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4)).dtype == torch.float32
    assert choose_precision(CUDA0, None, ONE_VOLTA).describe() == "fp16 autocast + grad scaler"


# --- data loading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device, cores, want", [
    (CUDA0, 16, 8), (CUDA0, 64, 8), (CUDA0, 4, 3), (CUDA0, 1, 0),  # one core stays with the main process
    (CPU, 2, 0), (CPU, 8, 0), (CPU, 16, 2), (CPU, 64, 4),           # the model's threads need the cores
])
def test_default_num_workers(device, cores, want):
    assert default_num_workers(device, cores) == want


def test_cores_per_process_divides_among_local_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    alone = cores_per_process()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert cores_per_process() == max(1, alone // 2)


def test_loader_settings():
    assert loader_settings(CPU, 0) == LoaderSettings(0)
    assert loader_settings(CPU, None, cores=2) == LoaderSettings(0)
    gpu = loader_settings(CUDA0, None, cores=16)
    assert gpu == LoaderSettings(8, pin_memory=True, non_blocking=True, persistent_workers=True, prefetch_factor=4)
    assert loader_settings(CUDA0, 0) == LoaderSettings(0, pin_memory=True, non_blocking=True)  # 0 stays available
    assert loader_settings(CPU, 3).persistent_workers
    with pytest.raises(ValueError, match="num_workers"):
        loader_settings(CPU, -1)


def test_move_batch_on_cpu_is_the_same_tensor_and_channels_last_on_request():
    x, y = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    mx, my = move_batch(x, y, CPU)
    assert mx is x and my is y
    cx, _ = move_batch(x, y, CPU, channels_last=True)
    assert cx.is_contiguous(memory_format=torch.channels_last) and torch.equal(cx, x)


def test_cudnn_benchmark_unless_deterministic():
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        torch.backends.cudnn.benchmark = False
        configure_backends(CPU, deterministic=False)
        assert torch.backends.cudnn.benchmark is False  # the CPU leaves cuDNN alone
        configure_backends(CUDA0, deterministic=False)
        assert torch.backends.cudnn.benchmark is True
        configure_backends(CUDA0, deterministic=True)
        assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


class _EpochEcho(torch.utils.data.Dataset):
    """Returns (epoch, index): shows which epoch the reading process believed it was in."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return torch.tensor(self.epoch), torch.tensor(i)


@pytest.mark.parametrize("workers", [0, 1])
def test_epoch_feeder_follows_epochs_with_persistent_workers(workers):
    data = _EpochEcho()
    feeder = EpochFeeder(data, loader_settings(CPU, workers))
    loaders = []
    for epoch, batches in ((0, [[0, 1], [2, 3]]), (1, [[5, 4], [3, 2]]), (2, [[1, 0]])):
        data.set_epoch(epoch)  # what the trainer does in the main process
        loader = feeder(batches, epoch)
        loaders.append(loader)
        got = [(e.tolist(), i.tolist()) for e, i in loader]
        assert got == [([epoch] * len(b), b) for b in batches]
    if workers:
        assert loaders[0] is loaders[1] is loaders[2] and loaders[0].persistent_workers  # one set of workers


# --- configuration and command line --------------------------------------------------------------------------------
def test_config_device_key(tmp_path):
    base = {"data": "builtin:x", "out": str(tmp_path)}
    assert TrainConfig.from_dict(base).device == "auto"
    assert TrainConfig.from_dict({**base, "device": "cuda:3"}).device == "cuda:3"  # judged when the run starts
    assert TrainConfig.from_dict({**base, "num_workers": None}).num_workers is None
    with pytest.raises(ConfigError, match="device: 'gpu' is not accepted; choose one of auto, cpu, cuda, cuda:N"):
        TrainConfig.from_dict({**base, "device": "gpu"})


def _cpu_only():
    return not torch.cuda.is_available()


@pytest.mark.skipif(not _cpu_only(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("argv", [["eval", "--run", "nowhere"], ["predict", "--run", "nowhere", "a.png"],
                                  ["export", "--model", "unireplknet_a", "--out", "x.onnx"],
                                  ["tune", "--model", "unireplknet_a"], ["filters", "--model", "unireplknet_a"]])
def test_commands_refuse_cuda_without_cuda(argv, capsys):
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "device: CUDA was asked for" in err and "--device cpu" in err


def test_train_records_its_device_and_data_wait(image_folder, tmp_path, capsys, one_thread, monkeypatch):
    from lkconv.engine import trainer
    from lkconv.engine.trainer import train

    monkeypatch.setattr(trainer, "DATA_BOUND_FRACTION", 0.0)  # every epoch counts as data-bound: said once
    run = train(tiny_config(image_folder, tmp_path / "run", epochs=2, device="cpu", num_workers=None))
    assert capsys.readouterr().out.count("note: data-bound: epoch 1 waited") == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["device"] == "cpu"
    assert saved["resolved"]["device"] == "cpu" and saved["resolved"]["precision"] == "fp32"
    assert saved["resolved"]["num_workers"] == default_num_workers(CPU)
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "data_wait_seconds" in header and "peak_gpu_memory_mb" not in header
    for row in rows[1:]:
        wait = float(row.split(",")[header.index("data_wait_seconds")])
        assert 0 < wait <= float(row.split(",")[header.index("epoch_seconds")])
    assert main(["eval", "--run", str(run), "--device", "cpu"]) == 0
    assert json.loads((run / "metrics.json").read_text())["num_samples"] > 0


# --- on a GPU (skipped here) ---------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
def test_train_on_cuda_then_load_on_cpu(image_folder, tmp_path):
    from lkconv.engine.evaluate import predict_files
    from lkconv.engine.run_dir import load_run
    from lkconv.engine.trainer import train

    run = train(tiny_config(image_folder, tmp_path / "run", epochs=1, device="cuda"))
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "peak_gpu_memory_mb" in header
    assert yaml.safe_load((run / "config.yaml").read_text())["resolved"]["device"].startswith("cuda")
    model = load_run(run)
    assert next(model.parameters()).device.type == "cpu"
    png = next(p for p in image_folder.rglob("*.png"))
    on_cpu = predict_files(run, [png], device="cpu")
    on_gpu = predict_files(run, [png], device="cuda")
    assert on_cpu[0]["top"][0][0] == on_gpu[0]["top"][0][0]


def test_cpu_bf16_autocast_trains(image_folder, tmp_path, one_thread):
    """``amp: true`` on the CPU (bf16 autocast) runs a whole training run through the large-kernel training path."""
    from lkconv.engine.auto_recipe import SMALL_UNIREPLKNET
    from lkconv.engine.trainer import train

    run = train(tiny_config(image_folder, tmp_path / "run", epochs=1, device="cpu", amp=True, batch_size=16,
                            model_args=SMALL_UNIREPLKNET))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["resolved"]["precision"] == "bf16 autocast"
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert math.isfinite(float(rows[-1].split(",")[header.index("train_loss")]))
