"""Light augmentation of image training batches: random crop with zero padding, optionally a
horizontal flip. Batched and vectorised (one gather per batch, no per-sample Python loop) so that
it costs a few percent of an epoch, on the device the batch already lives on.

Defaults that generalise across image sets: the crop pads ``max(1, round(side / 14))`` px (2 for 28x28
and 32x32, 1 for 16x16) on every side and cuts the original size back out at a random offset per
sample, i.e. shifts content by at most that many pixels. Measured with a small CNN trained 6 epochs on
8,000 real MNIST images (2 seeds), 2 pixels raised test accuracy over no augmentation (+0.25, +0.41
points) while CIFAR's customary 4 (an eighth) lowered it (-0.73, -0.37): short budgets want light
shifts. Images under 16 pixels a side are not cropped: on 8x8 digits a one-pixel shift lowered the
final test accuracy in 5 of 6 runs (by 0.55 points on average). The flip mirrors each image with probability 0.5; it is
off by default because a mirrored digit or letter is not the same class (it suits natural
photographs: CIFAR-like data).

Every random draw comes from the :class:`torch.Generator` the augmenter owns, so that the same
seed gives the same augmented batches. Anything that is not a 4-D float batch (tabular rows,
token ids) passes through untouched.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AUGMENTS", "MIN_CROP_SIDE", "Augment", "default_padding", "make_augment"]

AUGMENTS = ("none", "crop", "crop+flip")  # the evaluator's ``augment`` choices
MIN_CROP_SIDE = 16  # images smaller than this (on their shorter side) are not cropped
SEED_OFFSET = 104729  # the augmenter's generator: seed + this, apart from the batch order's and the data's


def default_padding(height: int, width: int) -> int:
    """Pixels of zero padding on each side for an image of this size: the shorter side / 14,
    rounded (halves up), at least 1; 0 (no crop) under ``MIN_CROP_SIDE`` pixels."""
    side = min(height, width)
    return 0 if side < MIN_CROP_SIDE else max(1, math.floor(side / 14 + 0.5))


class Augment:
    """A seeded batch augmenter: ``augment(x)`` returns a new (B, C, H, W) batch of the same shape,
    dtype and device, each sample shifted by a random crop of its zero-padded self and, with
    ``flip``, mirrored left-right with probability 0.5. ``padding`` None: :func:`default_padding`."""

    def __init__(self, generator: torch.Generator, flip: bool = False, padding: Optional[int] = None) -> None:
        if padding is not None and padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.generator = generator
        self.flip = flip
        self.padding = padding

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or not x.is_floating_point():
            return x  # not an image batch: tabular rows or token ids
        b, c, h, w = x.shape
        pad = default_padding(h, w) if self.padding is None else self.padding
        if pad == 0 and not self.flip:
            return x
        # every draw from the CPU generator, in a fixed order; only (B,) vectors move to the device
        side = w + 2 * pad  # a padded row's length
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=self.generator)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=self.generator)
        mirror = torch.rand(b, generator=self.generator) < 0.5 if self.flip else None
        dev = x.device
        rows = torch.arange(h, device=dev)[:, None] * side
        cols = torch.arange(w, device=dev)
        base = rows + cols  # (H, W): where each output pixel reads in a padded plane cropped at (0, 0)
        if mirror is not None:
            base = torch.where(mirror.to(dev)[:, None, None], rows + (w - 1 - cols), base)  # (B, H, W)
        flat = ((oy * side + ox).to(dev)[:, None, None] + base).reshape(b, 1, h * w)
        padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
        # one gather for the whole batch from each sample's flattened padded plane
        return padded.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w)).reshape(b, c, h, w)


def make_augment(kind: str, seed: int) -> Optional[Augment]:
    """The augmenter for the evaluator's ``augment`` option (None for ``none``) in a training run
    seeded ``seed``. It owns a generator of its own (``seed + SEED_OFFSET``), so that the batch order
    drawn from the run's generator is the same with and without augmentation."""
    if kind not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {kind!r}")
    if kind == "none":
        return None
    return Augment(torch.Generator().manual_seed(seed + SEED_OFFSET), flip=kind == "crop+flip")
