"""The model protocol, checked generically over every registered model with tiny inputs.

Inputs follow each model's ``default_input_size`` (channels first, no batch): images are tried at 64x64, sequences
at length 64, with a batch of 2.
"""

import re

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_params

# Models too large to build for real on a 2-core CI are covered on the meta device (test_unireplknet.py).
_MAX_PARAMS_FOR_FORWARD = 35e6  # A, F, P, N, T; S and up share their code paths


def _buildable(name: str) -> bool:
    with torch.device("meta"):
        return count_params(lkconv.create_model(name)) <= _MAX_PARAMS_FOR_FORWARD


# Variants whose code paths a smaller sibling in this suite already runs (same blocks, other widths, depths or band
# sizes); their family test files check them on the meta device and with tiny configurations instead. This keeps
# `make test` within its time budget on 2 cores.
_COVERED_BY_A_SIBLING = {
    "unireplknet_a_dcls": "unireplknet_a (DCLS mixers: tests/models/test_mixers.py)",
    "inception_next_tiny": "inception_next_atto",
    "lsnet_s": "lsnet_t",
    "lsnet_b": "lsnet_t",
}
MODELS = [n for n in lkconv.list_models() if _buildable(n) and n not in _COVERED_BY_A_SIBLING]
_TINY_SIDE = 64


def input_shape(name: str) -> tuple[int, ...]:
    """A tiny batch-2 input shape built from the model's ``default_input_size``."""
    with torch.device("meta"):
        size = tuple(lkconv.create_model(name).default_input_size)
    assert len(size) in (2, 3) and all(isinstance(v, int) and v > 0 for v in size), size
    return (2, size[0]) + (_TINY_SIDE,) * (len(size) - 1)


def pooled_width(model) -> int:
    """Width of ``forward_head(..., pre_logits=True)``: the head's hidden width for MLP heads (InceptionNeXt)."""
    return getattr(model, "head_hidden_size", model.num_features)


@pytest.fixture(scope="module", params=MODELS)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def tiny_input(name):
    return input_shape(name)


def test_every_registered_model_declares_its_input_size():
    for n in lkconv.list_models():
        shape = input_shape(n)
        assert len(shape) in (3, 4), (n, shape)


def test_registry_lists_and_rejects():
    assert "unireplknet_a" in lkconv.list_models("unireplknet_*")
    assert lkconv.list_models("unireplknet_x*") == ["unireplknet_xl"]
    with pytest.raises(ValueError, match="did you mean unireplknet_a"):
        lkconv.create_model("unireplknet_aa")


def test_forward_and_backward_reach_every_parameter(name, tiny_input):
    model = lkconv.create_model(name, num_classes=7, drop_path_rate=0.1)
    model.train()
    out = model(torch.randn(*tiny_input))
    assert out.shape == (tiny_input[0], 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


def test_forward_features_head_and_intermediates(name, tiny_input):
    model = lkconv.create_model(name, num_classes=5).eval()
    x = torch.randn(*tiny_input)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features
        logits = model.forward_head(feats)
        torch.testing.assert_close(logits, model(x))
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (tiny_input[0], pooled_width(model))
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, feats)
        for t, info in zip(inter, model.feature_info):
            assert t.shape[1] == info["num_chs"] and tiny_input[-1] // t.shape[-1] == info["reduction"]
        last_two = model.forward_intermediates(x, 2, intermediates_only=True)
        assert len(last_two) == 2 and torch.equal(last_two[-1], inter[-1])
        picked = model.forward_intermediates(x, [0, -1], intermediates_only=True)
        assert torch.equal(picked[0], inter[0]) and torch.equal(picked[1], inter[-1])


def test_features_only(name, tiny_input):
    extractor = lkconv.create_model(name, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = extractor(torch.randn(*tiny_input))
    assert [o.shape[1] for o in outs] == extractor.feature_info.channels()
    assert [tiny_input[-1] // o.shape[-1] for o in outs] == extractor.feature_info.reduction()


def test_reset_classifier(name, tiny_input):
    model = lkconv.create_model(name).eval()
    model.reset_classifier(3)
    assert model(torch.randn(*tiny_input)).shape == (tiny_input[0], 3)
    model.reset_classifier(0)
    assert model(torch.randn(*tiny_input)).shape == (tiny_input[0], pooled_width(model))


def test_grad_checkpointing_leaves_outputs_and_grads_unchanged(name, tiny_input):
    model = lkconv.create_model(name, num_classes=4).eval()
    x = torch.randn(*tiny_input)
    ref = model(x)
    ref.sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=1e-6)


def test_no_weight_decay_and_group_matcher(name):
    model = lkconv.create_model(name)
    names = dict(model.named_parameters())
    assert model.no_weight_decay() <= set(names)
    matcher = model.group_matcher()
    patterns = [matcher["stem"]] + [p for p, _ in matcher["blocks"]]
    unmatched = [n for n in names if not any(re.match(p, n) for p in patterns)]
    # only the classifier may fall outside the depth groups (it goes to the last group)
    assert all(n.startswith("head.") for n in unmatched), unmatched


def test_none_kwargs_mean_default(name):
    model = lkconv.create_model(name, num_classes=None, drop_path_rate=None)
    assert model.num_classes == 1000
