"""lkconv: large-kernel ConvNets with universal perception."""

__version__ = "0.1.0"
