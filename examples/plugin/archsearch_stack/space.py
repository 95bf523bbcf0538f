"""``stack``: a fixed number of conv blocks, each choosing a kernel size and a width.

A complete space in one file: the architecture (plain data with a string form), the builder and
the space (decisions, encode/decode, scaling). Everything else (sampling, mutation, crossover,
features, diagrams) comes from the canonical encoding in :class:`SearchSpace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Options, nonempty_distinct, option
from archsearch.spaces.base import (
    Architecture, Decision, SearchSpace, register_space, scale_count, scaled_copy, sized_kind,
)
from archsearch.spaces.checks import require_image


@dataclass(frozen=True)
class StackArch(Architecture):
    """``blocks``: (kernel, width) per block; its string form is ``3x16|5x8``."""

    blocks: tuple[tuple[int, int], ...]
    space: ClassVar[str] = "stack"

    def __str__(self) -> str:
        return "|".join(f"{k}x{w}" for k, w in self.blocks)

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [list(b) for b in self.blocks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackArch:
        return cls(tuple((int(k), int(w)) for k, w in data["blocks"]))

    @classmethod
    def parse(cls, text: str) -> StackArch:
        blocks = []
        for part in text.strip().split("|"):
            kernel, sep, width = part.strip().partition("x")
            if not sep or not kernel.isdigit() or not width.isdigit():
                raise ParseError(f"block {part!r}: expected KERNELxWIDTH, e.g. 3x16")
            blocks.append((int(kernel), int(width)))
        return cls(tuple(blocks))


def block(c_in: int, c_out: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


@register_space("stack")
class StackSpace(SearchSpace):
    arch_type = StackArch
    small_options: ClassVar[dict[str, Any]] = {"blocks": 2, "widths": [4, 8]}

    @dataclass(frozen=True)
    class Options(Options):
        blocks: int = option(3, "conv blocks, each choosing a kernel and a width", low=1, high=32)
        kernels: tuple[int, ...] = option((1, 3, 5), "kernel sizes to choose from", check=nonempty_distinct)
        widths: tuple[int, ...] = option((8, 16, 32), "output channels to choose from", check=nonempty_distinct)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # parses the options into self.opts and records them
        self.width_factor = 1.0

    def decisions(self) -> list[Decision]:
        out = []
        for i in range(self.opts.blocks):
            out += [Decision(f"block{i}.kernel", self.opts.kernels, sized_kind(self.opts.kernels), node=i),
                    Decision(f"block{i}.width", self.opts.widths, sized_kind(self.opts.widths), node=i)]
        return out

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, StackArch) or len(arch.blocks) != self.opts.blocks:
            raise ParseError(f"expected {self.opts.blocks} blocks, got {arch}")
        try:
            return [i for k, w in arch.blocks for i in (self.opts.kernels.index(k), self.opts.widths.index(w))]
        except ValueError:
            raise ParseError(f"{arch}: a kernel or width is not in the space (kernels {list(self.opts.kernels)}, "
                             f"widths {list(self.opts.widths)})") from None

    def decode(self, indices: Sequence[int]) -> StackArch:
        return StackArch(tuple((self.opts.kernels[indices[2 * i]], self.opts.widths[indices[2 * i + 1]])
                               for i in range(self.opts.blocks)))

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        if depth != 1.0:
            raise ConfigError(f"space 'stack' cannot scale depth (fidelity.depth={depth:g}); leave it at 1")
        return self if width == 1.0 else scaled_copy(self, width_factor=self.width_factor * width)

    def build(self, arch: Architecture, task: Task) -> nn.Module:
        c, _, _ = require_image(task, "stack")
        self.validate(arch)
        assert isinstance(arch, StackArch)
        layers: list[nn.Module] = []
        for kernel, width in arch.blocks:
            out = scale_count(width, self.width_factor)
            layers.append(block(c, out, kernel))
            c = out
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, task.num_classes))
