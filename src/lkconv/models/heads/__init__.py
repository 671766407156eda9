"""Dense-prediction heads over a backbone's per-stage feature maps (UPerNet for segmentation)."""

from .upernet import ConvBNReLU, FCNHead, PyramidPooling, UPerHead

__all__ = ["ConvBNReLU", "PyramidPooling", "UPerHead", "FCNHead"]
