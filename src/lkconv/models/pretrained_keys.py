"""Published files' key layouts mapped to lkconv's module names, one function per layout.

UniRepLKNet's and InceptionNeXt's published files (the reference's, and timm's ``sail_in1k`` files, whose keys are
sail-sg's) already use lkconv's names: they need no map. LSNet's files (``jameslahm/lsnet``) use the reference's
``patch_embed`` / ``blocks1..4`` / ``head.bn`` + ``head.l`` layout, where a stage's downsampling layers are the
first two entries of the *next* ``blocksN`` sequence; lkconv keeps them apart (``downsample_layers``) as every other
family does. The facts behind the map are read from the reference's ``model/lsnet.py``; no code of it is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

__all__ = ["KEY_MAPS", "lsnet_reference_keys"]

_LSNET_BLOCK = re.compile(r"^blocks([1-4])\.(\d+)\.(.*)$")
#: Sub-module names that differ inside a block (reference -> lkconv): timm's SqueezeExcite is ``fc1``/``fc2``, the
#: large-kernel perception's conv-BN pairs are ``c``/``bn`` there and ``conv``/``bn`` here.
_LSNET_RENAMES = ((re.compile(r"^se\.fc1\."), "se.down."), (re.compile(r"^se\.fc2\."), "se.up."),
                  (re.compile(r"^mixer\.lkp\.(cv[123])\.c\."), r"mixer.lkp.\1.conv."))


def lsnet_reference_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An LSNet state_dict in the reference's layout, renamed to :class:`lkconv.models.lsnet.LSNet`'s.

    ``patch_embed.i`` -> ``downsample_layers.0.i``; ``blocks{s+1}.j`` -> ``stages.s.j`` for the first stage and, for
    the later ones, ``j`` in 0, 1 -> ``downsample_layers.s.j`` and ``j >= 2`` -> ``stages.s.(j - 2)``;
    ``head.bn`` -> ``norm``, ``head.l`` -> ``head``. The attention's ``attention_bias_idxs`` buffers are dropped:
    lkconv derives the same index (``|dy| * r + |dx|``, the order in which the reference enumerates offsets) from the
    map size. Keys already in lkconv's layout pass through, so a file saved by lkconv loads too.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.endswith("attention_bias_idxs"):
            continue
        if key.startswith("patch_embed."):
            key = "downsample_layers.0." + key[len("patch_embed."):]
        elif key.startswith("head.bn."):
            key = "norm." + key[len("head.bn."):]
        elif key.startswith("head.l."):
            key = "head." + key[len("head.l."):]
        elif (m := _LSNET_BLOCK.match(key)) is not None:
            stage, index, rest = int(m.group(1)) - 1, int(m.group(2)), m.group(3)
            if stage > 0 and index < 2:
                key = f"downsample_layers.{stage}.{index}.{rest}"
            else:
                for pattern, new in _LSNET_RENAMES:
                    rest = pattern.sub(new, rest)
                key = f"stages.{stage}.{index - 2 if stage > 0 else index}.{rest}"
        out[key] = value
    return out


#: Layout name (a :class:`~lkconv.models.pretrained.PretrainedTag`'s ``key_map``) -> the function that renames it.
KEY_MAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "lsnet_reference": lsnet_reference_keys,
}
