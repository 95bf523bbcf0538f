"""The skip_chain network: layers reading the concatenation of their anchors, pooled to fit.

* stem: conv3x3-BN-ReLU to ``stem_channels``. ``conv`` is Conv(kh x kw, padding (kh//2, kw//2),
  stride)-BN-ReLU; ``sep_conv`` a depthwise kh x kw conv, a pointwise conv, BN, ReLU;
* a layer's inputs are concatenated along channels, so its input width is the sum of theirs;
* inputs of different spatial size are average-pooled (adaptively, so any size works) down to
  the smallest height and the smallest width among them. Pooling the big maps down keeps what
  a strided layer saved; Zoph & Le's zero-padding of the small ones would undo it;
* ``reductions`` fixed 2x downsampling points (at most ``layers - 1``): layer i is in stage
  ``i * (reductions + 1) // layers`` (rounded down, so 5 layers with 2 reductions give stages
  0 0 1 1 2; the chain space rounds its reduction points to the nearest layer and gives
  0 0 1 2 2) and its inputs are pooled to at most the stem map halved once per stage (a side
  below 4 pixels stops halving, so 8x8 digits work), so deep nets on 32x32 stay cheap whichever
  skips they take. Each map is pooled once per target size and forward, however many layers
  read it;
* ``max_pool``/``avg_pool`` (kh x kw window, stride, same padding) also output ``filters``
  channels: a 1x1 conv-BN-ReLU projects the concatenated input first when its width differs.
  Without it a pool reading k layers would output their summed width and widths would grow
  geometrically with depth; with it ``filters`` means the same for every op;
* head: the final concatenation (pooled to the last stage's size), global average pool, linear.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.spaces.base import scale_count
from archsearch.spaces.skip_chain_arch import SkipChainArch

STEM = -1  # source index of the stem output


def conv_bn_relu(c_in: int, c_out: int, kh: int, kw: int, stride: int, affine: bool = True) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), stride, (kh // 2, kw // 2), bias=False),
                         nn.BatchNorm2d(c_out, affine=affine), nn.ReLU())


def layer_op(op: str, c_in: int, c_out: int, kh: int, kw: int, stride: int, affine: bool = True) -> nn.Module:
    """One layer's operation; every op maps (B, c_in, H, W) to (B, c_out, ceil(H/s), ceil(W/s))."""
    pad = (kh // 2, kw // 2)
    if op == "conv":
        return conv_bn_relu(c_in, c_out, kh, kw, stride, affine)
    if op == "sep_conv":
        return nn.Sequential(nn.Conv2d(c_in, c_in, (kh, kw), stride, pad, groups=c_in, bias=False),
                             nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine), nn.ReLU())
    pool = (nn.MaxPool2d((kh, kw), stride, pad) if op == "max_pool"
            else nn.AvgPool2d((kh, kw), stride, pad, count_include_pad=False))
    if c_in == c_out:
        return pool
    return nn.Sequential(conv_bn_relu(c_in, c_out, 1, 1, 1, affine), pool)  # project, so pools keep `filters`


def stage_sizes(h: int, w: int, reductions: int) -> list[tuple[int, int]]:
    """The size cap of each stage: the stem map halved once per reduction, each side while >= 4."""
    out = [(h, w)]
    for _ in range(reductions):
        h, w = (h // 2 if h >= 4 else h), (w // 2 if w >= 4 else w)
        out.append((h, w))
    return out


class Pooled:
    """Aligns maps within one forward pass, pooling each (source, target size) only once.

    Many layers read the same source (the stem through the fix-up, an early layer through its
    skips); without the cache a 32-layer net ran ~190 adaptive pools per forward where under 100
    distinct ones exist. Lives for one forward: the cached maps are freed when it returns.
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[int, int, int], torch.Tensor] = {}

    def align(self, maps: Sequence[tuple[int, torch.Tensor]], cap: tuple[int, int]) -> list[torch.Tensor]:
        """Average-pool every ``(source, map)`` to the smallest height and width among them, and at most ``cap``."""
        h = min(cap[0], *(m.shape[2] for _, m in maps))
        w = min(cap[1], *(m.shape[3] for _, m in maps))
        out = []
        for src, m in maps:
            if m.shape[2] != h or m.shape[3] != w:
                key = (src, h, w)
                pooled = self.cache.get(key)
                if pooled is None:
                    pooled = self.cache[key] = F.adaptive_avg_pool2d(m, (h, w))
                m = pooled
            out.append(m)
        return out


def layer_stages(layers: int, reductions: int) -> list[int]:
    """Stage of each layer: reductions spread evenly (6 layers, 2 reductions: 0 0 1 1 2 2)."""
    return [i * (reductions + 1) // layers for i in range(layers)]


class SkipChainNet(nn.Module):
    def __init__(self, arch: SkipChainArch, task: Task, stem_channels: int, reductions: int,
                 width: float = 1.0) -> None:
        """``width`` multiplies every channel count (the stem's and each layer's filters; rounded, at least 1)."""
        super().__init__()
        stem_channels = scale_count(stem_channels, width)
        self.stem = conv_bn_relu(task.input_shape[0], stem_channels, 3, 3, 1)
        self.sources: list[tuple[int, ...]] = []  # what each layer reads; STEM for the fix-up
        widths: list[int] = []
        layers = []
        for spec in arch.layers:
            src = spec.inputs or (STEM,)
            c_in = sum(stem_channels if j == STEM else widths[j] for j in src)
            filters = scale_count(spec.filters, width)
            layers.append(layer_op(spec.op, c_in, filters, spec.kernel_h, spec.kernel_w, spec.stride))
            widths.append(filters)
            self.sources.append(src)
        self.layers = nn.ModuleList(layers)
        self.final = (*arch.unused(), len(arch.layers) - 1)  # fix-up: unused outputs join the last
        self.stages, self.reductions = layer_stages(len(layers), reductions), reductions
        self.head = nn.Linear(sum(widths[j] for j in self.final), task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)  # (B, stem_channels, H, W)
        caps = stage_sizes(s.shape[2], s.shape[3], self.reductions)
        pooled = Pooled()
        outs: list[torch.Tensor] = []
        for layer, src, stage in zip(self.layers, self.sources, self.stages):
            maps = pooled.align([(j, s if j == STEM else outs[j]) for j in src], caps[stage])
            outs.append(layer(maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)))
        final = torch.cat(pooled.align([(j, outs[j]) for j in self.final], caps[-1]), dim=1)
        return self.head(final.mean(dim=(2, 3)))
