"""SequenceConvNet (SGConv / long convolution mixers): shapes, protocol pieces, causality."""

import pytest
import torch

import lkconv
from lkconv.analysis.complexity import count_params
from lkconv.models.sequence import SEQUENCE_MIXERS, SequenceConvNet

NAMES = ["sgconvnet_tiny", "longconvnet_tiny"]


@pytest.mark.parametrize("name", NAMES)
def test_shapes_intermediates_and_features_only(name):
    model = lkconv.create_model(name, in_chans=2, num_classes=6).eval()
    assert model.default_input_size == (2, 1024)
    assert [f["reduction"] for f in model.feature_info] == [1] * 4
    x = torch.randn(3, 2, 50)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (3, 128, 50)
        assert model(x).shape == (3, 6)
        assert model.forward_head(feats, pre_logits=True).shape == (3, 128)
        final, inter = model.forward_intermediates(x)
        assert len(inter) == 4 and torch.equal(final, inter[-1]) and torch.equal(final, feats)
        only = model.forward_intermediates(x, [1], intermediates_only=True)
        torch.testing.assert_close(only[0], inter[1])
    extractor = lkconv.create_model(name, in_chans=2, features_only=True, out_indices=(0, 2)).eval()
    with torch.no_grad():
        outs = extractor(x)
    assert [o.shape for o in outs] == [(3, 128, 50)] * 2 and extractor.feature_info.reduction() == [1, 1]


@pytest.mark.parametrize("mixer", SEQUENCE_MIXERS)
def test_lengths_other_than_max_len(mixer):
    model = SequenceConvNet(1, 4, dim=16, depth=2, mixer=mixer, max_len=32).eval()
    with torch.no_grad():
        for length in (1, 7, 32, 80):
            assert model(torch.randn(2, 1, length)).shape == (2, 4)


@pytest.mark.parametrize("mixer", SEQUENCE_MIXERS)
def test_causal_mixers_make_a_causal_network(mixer):
    model = SequenceConvNet(1, 3, dim=16, depth=2, mixer=mixer, max_len=40, bidirectional=False).eval()
    x = torch.randn(1, 1, 40)
    y = x.clone()
    y[..., 25:] += torch.randn(1, 1, 15)
    with torch.no_grad():
        a, b = model.forward_features(x), model.forward_features(y)
    torch.testing.assert_close(a[..., :25], b[..., :25], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a[..., 25:], b[..., 25:])
    bidir = SequenceConvNet(1, 3, dim=16, depth=2, mixer=mixer, max_len=40).eval()
    with torch.no_grad():
        assert not torch.allclose(bidir.forward_features(x)[..., :25], bidir.forward_features(y)[..., :25])


def test_sizes_and_weight_decay_exemptions():
    sg = lkconv.create_model("sgconvnet_tiny", num_classes=10)
    lc = lkconv.create_model("longconvnet_tiny", num_classes=10)
    # SGConv's kernel grows with log(L) (5 scales x 64 taps x 2 directions), the long conv's with L (2 x 1024 taps)
    assert (count_params(sg), count_params(lc)) == (661_770, 1_382_666)
    assert count_params(lc) - count_params(sg) == 4 * 128 * (2 * 1024 - 5 * 2 * 64)
    nwd = lc.no_weight_decay()
    assert "blocks.0.mixer.kernel" in nwd and "blocks.3.mixer.D" in nwd and "head.weight" not in nwd


def test_bad_inputs_and_arguments_are_rejected():
    model = lkconv.create_model("sgconvnet_tiny")
    with pytest.raises(ValueError, match=r"expected input \(B, 1, L\)"):
        model(torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match=r"expected input"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="mixer must be one of"):
        SequenceConvNet(mixer="attention")
    with pytest.raises(ValueError, match="embed_kernel_size"):
        SequenceConvNet(embed_kernel_size=2)
    with pytest.raises(ValueError, match="depth"):
        SequenceConvNet(depth=0)


def test_a_2d_map_is_read_as_a_sequence_of_columns():
    # (B, C, H, W) with C·H = in_chans: the audio adapter's log-mel map becomes W frames of C·H mel channels
    model = lkconv.create_model("sgconvnet_tiny", in_chans=2 * 8, num_classes=3).eval()
    x = torch.randn(2, 2, 8, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flatten(1, 2)))
        assert model.forward_intermediates(x, intermediates_only=True)[-1].shape == (2, 128, 20)
    with pytest.raises(ValueError, match=r"C·H = 16"):
        model(torch.randn(2, 1, 8, 20))
