"""Per-sample cost of the image folders' default training transform on small images (issue 19: Fashion-MNIST's
epochs waited ~12 s for data in the main process), lkconv's against the plain torch computation of the same
transform, side by side in one process.

Run: ``python benchmarks/bench_image_aug.py [--repeats 7] [--samples 2000]``

Transform (the automatic recipe's, ``pad_crop`` for images under 64 px): resize to the input side, reflect-pad by
10 %, random crop back, photometric brightness/contrast (and saturation for colour) ±20 %, plus the per-sample
``numpy`` Generator that seeds it. ``plain``: ``F.interpolate`` + ``F.pad(mode="reflect")`` + slicing + four
tensor ops for the photometric change; ``lkconv``: ``lkconv.modalities.image.data`` as the trainer runs it (matrix
resize, gathered crop, one affine map). One torch thread, thread CPU clock, medians of per-sample means over
round-robin repeats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_medians, machine_description  # noqa: E402

from lkconv.modalities.image.data import _transforms  # noqa: E402


def plain_transform(size: int, strength: float = 0.2):
    def tf(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if tuple(img.shape[-2:]) != (size, size):
            img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        pad = max(1, round(size * 0.1))
        padded = F.pad(img[None], (pad, pad, pad, pad), mode="reflect")[0]
        top, left = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
        out = padded[:, top : top + size, left : left + size]
        b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
        out = out * b
        mean = out.mean()
        out = (out - mean) * c + mean
        if out.shape[0] == 3:
            grey = out.mean(0, keepdim=True)
            out = (out - grey) * s + grey
        return out.clamp_(0, 1)
    return tf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"Machine: {machine_description()}; clock: thread; {args.samples} samples per repeat\n")
    print("| images | input side | plain µs/sample | lkconv µs/sample | × plain |")
    print("|---|---|---|---|---|")
    for channels, native, size in ((1, 28, 32), (1, 32, 32), (3, 32, 32), (3, 48, 64)):
        imgs = torch.randint(0, 256, (64, channels, native, native), dtype=torch.uint8)
        lk, _, _ = _transforms(size, native, None, flip=False, color=0.2)
        fns = {}
        for name, tf in (("plain", plain_transform(size)), ("lkconv", lk)):
            def run(tf=tf):
                for i in range(args.samples):
                    tf(imgs[i % 64].float().div_(255.0), np.random.default_rng((0, 1, i)))
            fns[name] = run
        t = interleaved_medians(fns, args.repeats, clock="thread")
        p, k = (t[n] / args.samples * 1e6 for n in ("plain", "lkconv"))
        kind = "grey" if channels == 1 else "colour"
        print(f"| {kind} {native} px | {size} | {p:.1f} | {k:.1f} | {p / k:.2f}× |")


if __name__ == "__main__":
    main()
