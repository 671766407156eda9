"""The time-series adapter's ``sequence`` mapping feeds the sequence models the normalised series itself."""

import torch

import lkconv
from lkconv.modalities import PerceptionModel, build_adapter


def test_sequence_mapping_is_the_normalised_series_with_its_mask():
    raw = torch.randn(3, 2, 40) * 5 + 2
    raw[0, 1, 30:] = float("nan")
    plain = build_adapter("timeseries", in_chans=2, length=40, mapping="sequence").eval()
    assert plain.out_chans == 2 and plain.config()["mapping"] == "sequence"
    z, mask, _, _ = plain.normalise(raw)
    torch.testing.assert_close(plain(raw), z)
    masked = build_adapter("timeseries", in_chans=2, length=40, mapping="sequence", mask_channel=True).eval()
    assert masked.out_chans == 4
    torch.testing.assert_close(masked(raw), torch.cat([z, mask.float()], 1))
    model = PerceptionModel(masked, lkconv.create_model("longconvnet_tiny", in_chans=4, num_classes=5)).eval()
    with torch.no_grad():
        assert model(raw).shape == (3, 5)
