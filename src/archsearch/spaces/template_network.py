"""The network a template genotype builds: stem, one stage of repeated blocks per gene, pool, linear."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.spaces.base import scale_count
from archsearch.spaces.template_arch import TemplateArch, TemplateStage, is_absolute


# -- blocks -----------------------------------------------------------------------
def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True,
             relu6: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6() if relu6 else nn.ReLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (MnasNet: ratio 1/4 of the gated width)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        hidden = max(1, c // 4)
        self.reduce, self.expand = nn.Conv2d(c, hidden, 1), nn.Conv2d(hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


class Block(nn.Module):
    """One layer of a stage: ``body`` (with SE inside it), plus a shortcut for residual blocks.

    * ``conv``: kxk conv-BN-ReLU [SE].
    * ``sep_conv``: depthwise kxk-BN-ReLU [SE], pointwise 1x1-BN-ReLU (MobileNetV1).
    * ``mbconv3``/``mbconv6``: 1x1 expand-BN-ReLU6, depthwise kxk-BN-ReLU6 [SE], linear 1x1
      projection-BN; identity residual when stride 1 and widths match (MobileNetV2).
    * ``resblock``: kxk conv-BN-ReLU, kxk conv-BN [SE], plus identity (or 1x1 conv-BN when the
      shape changes), then ReLU (ResNet basic block).
    """

    def __init__(self, block: str, c_in: int, c_out: int, kernel: int, stride: int, se: bool) -> None:
        super().__init__()
        self.block = block
        self.shortcut: nn.Module | None = None
        layers: list[nn.Module]
        if block == "conv":
            layers = [_conv_bn(c_in, c_out, kernel, stride)] + ([SqueezeExcite(c_out)] if se else [])
        elif block == "sep_conv":
            layers = [_conv_bn(c_in, c_in, kernel, stride, groups=c_in)] + ([SqueezeExcite(c_in)] if se else [])
            layers.append(_conv_bn(c_in, c_out, 1))
        elif block in ("mbconv3", "mbconv6"):
            hidden = c_in * int(block[-1])
            layers = [_conv_bn(c_in, hidden, 1, relu6=True),
                      _conv_bn(hidden, hidden, kernel, stride, groups=hidden, relu6=True)]
            layers += ([SqueezeExcite(hidden)] if se else []) + [_conv_bn(hidden, c_out, 1, act=False)]
            if stride == 1 and c_in == c_out:
                self.shortcut = nn.Identity()
        elif block == "resblock":
            layers = [_conv_bn(c_in, c_out, kernel, stride), _conv_bn(c_out, c_out, kernel, act=False)]
            layers += [SqueezeExcite(c_out)] if se else []
            self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                             else _conv_bn(c_in, c_out, 1, stride, act=False))
        else:  # the space validates blocks; this guards direct use
            raise ValueError(f"unknown block {block!r}")
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y) if self.block == "resblock" else y


# -- the network ------------------------------------------------------------------
class TemplateNet(nn.Module):
    def __init__(self, arch: TemplateArch, task: Task, stem_channels: int,
                 skeleton: Sequence[tuple[int, int]], width: float = 1.0, depth: float = 1.0) -> None:
        """``width`` multiplies every channel count and ``depth`` every stage's number of blocks
        (rounded, at least 1), as EfficientNet's compound scaling does."""
        super().__init__()
        stem_channels = scale_count(stem_channels, width)
        c_in, h = task.input_shape[0], min(task.input_shape[1:])
        stem_stride = 2 if h >= 64 else 1
        self.stem = _conv_bn(c_in, stem_channels, 3, stem_stride)
        h = (h + stem_stride - 1) // stem_stride
        c = stem_channels
        stages: list[nn.Module] = []
        for (base, stride), spec in zip(skeleton, arch.stages):
            c_out = scale_count(stage_channels(spec, base), width)
            s = stride if h >= 4 else 1  # never shrink a map below 2x2
            h = (h + s - 1) // s
            layers = [Block(spec.block, c if d == 0 else c_out, c_out, spec.kernel, s if d == 0 else 1, spec.se)
                      for d in range(scale_count(spec.depth, depth))]
            stages.append(nn.Sequential(*layers))
            c = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C, H', W')
        return self.head(x.mean(dim=(2, 3)))


def stage_channels(spec: TemplateStage, base: int) -> int:
    """A stage's output width: the absolute count, or the multiplier times the base width (at least 1)."""
    return spec.width if is_absolute(spec.width) else max(1, int(round(base * spec.width)))  # type: ignore[return-value]
