"""Video training augmentation beside :func:`lkconv.data.augment.video.crop_clip` (one random crop shared by all
frames): temporal jitter.

Why: a label such as the direction of motion lives in the order of the frames, not in exact timestamps. With
temporal jitter a training clip is decoded at twice the frame count (two candidate frames per segment of the clip,
at 1/4 and 3/4 of it) and each of the ``T`` output frames takes one of its segment's two candidates at random, so
the model sees slightly different timings every epoch while the order of the frames, and so the motion, is kept.
Evaluation decodes the segment centres as before.

Draws only from the ``numpy`` Generator it is given, so a seed fixes the result.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["JITTER_CANDIDATES", "temporal_jitter"]

JITTER_CANDIDATES = 2  # frames decoded per output frame when temporal jitter is on


def temporal_jitter(clip: torch.Tensor, rng: np.random.Generator, num_frames: int) -> torch.Tensor:
    """(``JITTER_CANDIDATES`` * T, C, H, W) candidate frames -> (T, C, H, W): one random candidate per segment,
    in order. A clip of exactly T frames is returned as it is.

    Raises:
        ValueError: when the clip holds neither T nor ``JITTER_CANDIDATES`` * T frames.
    """
    t = clip.shape[0]
    if t == num_frames:
        return clip
    if t != JITTER_CANDIDATES * num_frames:
        raise ValueError(f"temporal_jitter: a clip of {t} frames; expected {num_frames} or "
                         f"{JITTER_CANDIDATES * num_frames}")
    pick = torch.from_numpy(rng.integers(0, JITTER_CANDIDATES, size=num_frames))
    return clip[torch.arange(num_frames) * JITTER_CANDIDATES + pick]
