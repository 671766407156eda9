"""The one rule for the smallest input a 2-D backbone takes: every registered family downsamples by 32, so a side
below 32 leaves less than one position after the last stage. ``lkconv info``, ``train`` (image data) and the analysis
commands all ask this module."""

from __future__ import annotations

__all__ = ["MIN_INPUT_SIDE", "check_input_side", "input_side_rule"]

MIN_INPUT_SIDE = 32

input_side_rule = f"the networks downsample by {MIN_INPUT_SIDE}"


def check_input_side(side: int, option: str = "img_size") -> int:
    """``side`` when it is at least :data:`MIN_INPUT_SIDE`, else a ``ValueError`` naming ``option`` and the rule."""
    if side < MIN_INPUT_SIDE:
        raise ValueError(f"{option}: must be >= {MIN_INPUT_SIDE} ({input_side_rule}), got {side}")
    return side
