"""Image training augmentation beside the crops of :mod:`lkconv.data.augment.image`: photometric changes and the
rule that decides whether horizontal flips are safe.

Why flips are not always on: mirroring changes or destroys the class of glyph-like images (digits, letters, arrows,
left/right signs: a mirrored 2 is no digit, b and d swap). The rule (:func:`auto_flip`) turns flips on only for
colour images of at least 64 px on the shorter side (photographs, where a mirrored scene keeps its class) and
leaves them off for grey or small images (digits, characters, documents, icons). A user who knows better sets
``modality_args.flip``.

Every function draws only from the ``numpy`` Generator it is given, so a seed fixes the result.
"""

from __future__ import annotations

from ...data.augment.image import photometric

__all__ = ["FLIP_MIN_SIDE", "auto_flip", "photometric"]

# the photometric change is shared with segmentation and detection; it lives with the other image transforms

FLIP_MIN_SIDE = 64


def auto_flip(channels: int, native_side: int) -> tuple[bool, str]:
    """Whether random horizontal flips are on by default for these images, and the sentence saying why."""
    if channels == 3 and native_side >= FLIP_MIN_SIDE:
        return True, f"flips on: colour images of {native_side} px (photographs keep their class when mirrored)"
    kind = "grey" if channels == 1 else "colour"
    return False, (f"flips off: {kind} images of {native_side} px may be glyphs (digits, letters) whose class a "
                   "mirror changes; modality_args.flip: true turns them on")
