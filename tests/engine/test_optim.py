import math

import torch

import lkconv
from lkconv.engine.mix import mix_batch
from lkconv.engine.optim import ModelEma, cosine_lr, param_groups


def test_layer_decay_groups_and_no_weight_decay():
    model = lkconv.create_model("unireplknet_a", num_classes=3)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.8, backbone_attr=None)
    names = {n for g in groups for n in g["names"]}
    assert names == {n for n, _ in model.named_parameters()}
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["downsample_layers.0.0.weight"]["lr_scale"] < by_name["stages.3.1.pwconv1.1.weight"]["lr_scale"]
    assert by_name["head.weight"]["lr_scale"] == 1.0
    for n in ("stages.1.0.act.1.gamma", "stages.1.0.gamma", "head.bias", "norm.weight"):
        assert by_name[n]["weight_decay"] == 0.0, n
    assert by_name["stages.1.0.pwconv1.1.weight"]["weight_decay"] == 0.05


def test_cosine_schedule_shape():
    kw = {"total_steps": 100, "warmup_steps": 10, "base_lr": 1.0, "min_lr": 0.01}
    assert math.isclose(cosine_lr(0, **kw), 0.1) and math.isclose(cosine_lr(9, **kw), 1.0)
    assert math.isclose(cosine_lr(10, **kw), 1.0) and math.isclose(cosine_lr(100, **kw), 0.01)
    assert cosine_lr(50, **kw) < cosine_lr(30, **kw)


def test_ema_moves_toward_weights():
    lin = torch.nn.Linear(2, 2)
    ema = ModelEma(lin, 0.5)
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)
    torch.testing.assert_close(ema.module.weight, lin.weight - 0.5)


def test_mixup_targets_sum_to_one():
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    for mix, cut in ((0.4, 0.0), (0.0, 1.0)):
        xm, t = mix_batch(x, y, 3, mixup=mix, cutmix=cut, smoothing=0.1)
        assert xm.shape == x.shape and torch.allclose(t.sum(-1), torch.ones(6))


def test_make_adamw_is_fused_on_cpu_and_equals_the_per_tensor_loop():
    """The trainer's AdamW runs PyTorch's fused kernel on the CPU; 5 steps with weight decay and per-group lr scales
    give the same parameters as the default per-tensor loop (float32 rounding: rtol 1e-5)."""
    from lkconv.engine.optim import make_adamw

    torch.manual_seed(0)
    from lkconv.engine.auto_recipe import SMALL_UNIREPLKNET

    models = [lkconv.create_model("unireplknet_a", num_classes=3, **SMALL_UNIREPLKNET) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = {n: p.detach().clone() for n, p in models[0].named_parameters()}
    groups = [param_groups(m, weight_decay=0.05, layer_decay=0.8, backbone_attr=None) for m in models]
    fused = make_adamw(groups[0], lr=1e-2)
    loop = torch.optim.AdamW(groups[1], lr=1e-2, foreach=False)
    assert fused.defaults["fused"] is True
    for step in range(5):
        for opt in (fused, loop):
            for g in opt.param_groups:
                g["lr"] = 1e-2 * g["lr_scale"] * (1 - step / 10)
        grads = [torch.randn_like(p) for p in models[0].parameters()]
        for m, opt in zip(models, (fused, loop)):
            for p, gr in zip(m.parameters(), grads):
                p.grad = gr.clone()
            opt.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert all(not torch.equal(p, start[n]) for n, p in models[0].named_parameters())  # every tensor was updated
