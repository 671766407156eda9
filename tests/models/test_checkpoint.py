"""Loading checkpoints: formats, wrappers, train→deploy fusion on the way in, and clear mismatch errors."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

import lkconv
from lkconv.models import CheckpointMismatchError, checkpoint_structure


@pytest.fixture
def trained(randomize):
    model = lkconv.create_model("unireplknet_a", num_classes=6).eval()
    randomize(model)
    return model


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict", "ddp"])
def test_pth_formats_round_trip(trained, tmp_path, wrap):
    sd = trained.state_dict()
    obj = {"bare": sd, "model": {"model": sd, "epoch": 3}, "state_dict": {"state_dict": sd},
           "ddp": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    fresh = lkconv.load_checkpoint(lkconv.create_model("unireplknet_a", num_classes=6).eval(), path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), trained(x))


def test_safetensors_round_trip(trained, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    fresh = lkconv.load_checkpoint(lkconv.create_model("unireplknet_a", num_classes=6), path)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in trained.state_dict().items())


def test_train_checkpoint_fuses_into_deploy_model(trained, tmp_path):
    path = tmp_path / "train.pth"
    torch.save(trained.state_dict(), path)
    assert checkpoint_structure(trained.state_dict()) == "train"
    deploy = lkconv.load_checkpoint(lkconv.create_model("unireplknet_a", num_classes=6, deploy=True).eval(), path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref, out = trained(x), deploy(x)
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_deploy_checkpoint_into_train_model_is_a_clear_error(trained, tmp_path):
    lkconv.reparameterize_model(trained)
    path = tmp_path / "deploy.pth"
    torch.save(trained.state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="deploy=True"):
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_a", num_classes=6), path)


def test_mismatch_lists_keys_and_structure(trained, tmp_path):
    path = tmp_path / "a.pth"
    torch.save(trained.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as err:
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_n", num_classes=6), path)
    msg = str(err.value)
    assert "train-structure" in msg and ("missing keys" in msg or "shape mismatches" in msg)
    assert "stages.2.6" in msg  # N has 8 blocks in stage 2, A has 6


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(ValueError, match="weights-only"):
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_a"), path)


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="accepted: .safetensors"):
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_a"), tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        lkconv.load_checkpoint(lkconv.create_model("unireplknet_a"), tmp_path / "none.pth")
