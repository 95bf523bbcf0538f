"""Architecture templates (seed 001, "segments"): a fixed skeleton of stages, each choosing its block.

MnasNet-style factorised space: the skeleton (number of stages, base widths, where to
downsample) is fixed by the options, and every stage independently chooses a block type,
kernel size, depth (repeats), width and, when ``se=True``, squeeze-and-excite on/off.
Factorising per stage keeps layer diversity across the network (unlike a repeated cell)
while the space stays small: ``(blocks * kernels * depths * widths * se) ** stages``.

String form, one ``block:kK:dD:wW[:se]`` token per stage joined by ``|``::

    mbconv6:k3:d2:w1.0|conv:k5:d1:w0.75|resblock:k3:d3:w1.25:se|sep_conv:k5:d1:w0.5

``wW`` is a multiplier of the stage's base width (option ``widths``), written as Python's
shortest round-tripping float (``w0.3333333333333333``, ``w1.25e-05``), so every width prints in
a form that parses back to the same number; with the option
``channels`` the token is ``cC``, an absolute channel count (e.g. ``conv:k3:d1:c32``).
``:se`` marks a stage with squeeze-and-excite (only possible with ``se=True``).

Network: stem conv3x3-BN-ReLU (stride 2 only for inputs of at least 64 pixels, as ImageNet
models do; stride 1 for CIFAR/digits sizes) -> stages -> global average pool -> linear.
Base widths default to 16, 32, 64, ... (doubling per stage); ``stages`` may list them instead.
The first layer of every stage with stride 2 (by default every stage but the first)
downsamples, but only while the map is at least 4 pixels on its shorter side, so maps never
shrink below 2x2: digits (8x8) with 4 stages run at 8, 4, 2, 2; CIFAR (32x32) at 32, 16, 8, 4.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.options import Check, Options, all_of, each_in, invalid, nonempty_distinct, option
from archsearch.spaces import checks
from archsearch.spaces.checks import odd_kernels
from archsearch.spaces.base import (
    Architecture, Decision, DecisionKind, SearchSpace, register_space, scale_count, scaled_copy, sized_kind,
)
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.template_arch import (
    _INT, BLOCK_DESCRIPTIONS, BLOCKS, DEFAULT_WIDTHS, MAX_STAGES, TemplateArch, TemplateStage, Width, is_absolute,
)
from archsearch.spaces.template_network import Block, SqueezeExcite, TemplateNet, stage_channels

__all__ = ["BLOCKS", "Block", "SqueezeExcite", "TemplateArch", "TemplateNet", "TemplateSpace", "TemplateStage"]

def _ints(low: int, high: int) -> Check:
    """A non-empty list of distinct integers in ``low..high``."""
    def check(values: Sequence[int]) -> Optional[str]:
        if not values or not all(low <= v <= high for v in values):
            return f"must be a non-empty list of integers in {low}..{high}"
        return nonempty_distinct(values)
    return check



def _multipliers(values: Sequence[float]) -> Optional[str]:
    if not values or not all(math.isfinite(w) and 0 < w <= 16 for w in values):
        return "must be a non-empty list of multipliers in (0, 16]"
    return nonempty_distinct(values)


def _stages(stages: Any) -> tuple[list[tuple[int, int]], Optional[str]]:
    """(base width, stride) per stage, and what is wrong with ``stages`` (None: nothing)."""
    def base_width(value: Any) -> bool:
        return is_absolute(value) and 1 <= value <= 4096

    if is_absolute(stages):
        if not 1 <= stages <= MAX_STAGES:
            return [], (f"must be an integer in 1..{MAX_STAGES} or a list of 1..{MAX_STAGES} entries "
                        "(base width, or [base_width, stride])")
        return [(16 * 2**i, 1 if i == 0 else 2) for i in range(stages)], None
    if not 1 <= len(stages) <= MAX_STAGES:
        return [], f"must have 1..{MAX_STAGES} entries (base width, or [base_width, stride])"
    out = []
    for i, entry in enumerate(stages):
        if base_width(entry):
            out.append((entry, 1 if i == 0 else 2))
        elif (isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2
              and base_width(entry[0]) and is_absolute(entry[1]) and entry[1] in (1, 2)):
            out.append((entry[0], entry[1]))  # an int stride: 2.0 would reach conv2d and fail there
        else:
            return [], (f"entry {i + 1} must be a base width in 1..4096 or [base_width, stride] with an "
                        f"integer stride 1 or 2 (entry {entry!r})")
    return out, None


def _stages_problem(stages: Any) -> Optional[str]:
    return _stages(stages)[1]


# -- the space ------------------------------------------------------------------
@register_space("template")
class TemplateSpace(SearchSpace):
    """A fixed skeleton of stages, each choosing block, kernel, depth, width (and SE)."""

    arch_type = TemplateArch

    @dataclass(frozen=True)
    class Options(Options):
        stages: Union[int, list[Any]] = option(
            4, "a count (base widths 16, 32, 64, ... doubling; stride 2 from the second stage on) or one entry "
               "per stage: a base width or [base_width, stride]", check=_stages_problem)
        stem_channels: int = option(16, "width of the stem conv", low=1, high=4096)
        blocks: tuple[str, ...] = option(BLOCKS, "block types a stage chooses from",
                                         check=all_of(nonempty_distinct, each_in(BLOCKS)))
        kernels: tuple[int, ...] = option((3, 5), "kernel sizes (odd: same padding)",
                                          check=all_of(_ints(1, 4096), odd_kernels))
        depths: tuple[int, ...] = option((1, 2, 3, 4), "blocks per stage", check=_ints(1, 32))
        widths: Optional[tuple[float, ...]] = option(None, f"multipliers of a stage's base width (null: "
                                                     f"{', '.join(map(str, DEFAULT_WIDTHS))})", check=_multipliers)
        channels: Optional[tuple[int, ...]] = option(None, "absolute channel counts instead of widths",
                                                     check=_ints(1, 4096))
        se: bool = option(False, "add a per-stage squeeze-and-excite yes/no decision")

        def __post_init__(self) -> None:
            if self.widths is not None and self.channels is not None:
                raise invalid("widths", "(multipliers) and space.channels (absolute counts) are alternatives: "
                                        "set only one")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"stages": 3, "stem_channels": 4, "depths": [1, 2],
                                                  "widths": [0.25, 0.5], "se": True}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.skeleton = _stages(o.stages)[0]
        self.stem_channels, self.blocks, self.kernels, self.depths = o.stem_channels, o.blocks, o.kernels, o.depths
        se, channels = o.se, o.channels
        self.se = se
        width_choices: tuple[Width, ...] = channels if channels is not None else (
            o.widths if o.widths is not None else DEFAULT_WIDTHS)  # floats print as their repr: parsed back exactly
        self.widths, self.absolute = width_choices, channels is not None
        self._choices: tuple[tuple[Any, ...], ...] = (
            self.blocks, self.kernels, self.depths, self.widths) + (((False, True),) if se else ())
        self._index = [{c: i for i, c in enumerate(ch)} for ch in self._choices]
        width_key = "channels" if self.absolute else "width"
        fields = ("block", "kernel", "depth", width_key, "se")
        self._decisions = [Decision(f"stage{s}.{f}", ch, DecisionKind.CATEGORICAL if f == "block" else sized_kind(ch),
                                    node=s)
                           for s in range(len(self.skeleton)) for f, ch in zip(fields, self._choices)]
        self._names = tuple(d.name for d in self._decisions)
        self._count_list = self._choice_counts().tolist()

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, TemplateArch):
            raise ParseError(f"expected a 'template' architecture, got {type(arch).__name__}")
        if len(arch.stages) != len(self.skeleton):
            raise ParseError(f"expected {len(self.skeleton)} stages (space.stages), got {len(arch.stages)}")
        out: list[int] = []
        n = len(self._choices)
        for i, s in enumerate(arch.stages):
            values = (s.block, s.kernel, s.depth, s.width, s.se)
            for field, value, index, choices in zip(("block", "kernel", "depth", "width", "se"),
                                                    values, self._index, self._choices):
                j = index.get(value)
                if j is None or (field == "width" and is_absolute(value) != self.absolute):
                    raise ParseError(self._not_in_space(i, field, value, choices))
                out.append(j)
            if n == 4 and s.se:
                raise ParseError(f"stage {i + 1}: squeeze-and-excite ':se' needs space.se=true")
        return out

    def _not_in_space(self, i: int, field: str, value: Any, choices: tuple[Any, ...]) -> str:
        if field == "width" and is_absolute(value) != self.absolute:
            return (f"stage {i + 1}: {'channel count c' if is_absolute(value) else 'multiplier w'}{value} "
                    f"but this space uses {'channels (cC)' if self.absolute else 'width multipliers (wW)'}")
        if field == "width":
            field = "channels" if self.absolute else "width"
        return f"stage {i + 1}: {field} {value!r} is not in the space (valid: {', '.join(map(str, choices))})"

    def decode(self, indices: Sequence[int]) -> TemplateArch:
        counts = self._count_list
        # plain in-range ints (what sample, mutate and encode produce) pass in a few C-level loops;
        # anything else goes through check_indices, which names the bad decision
        if not (len(indices) == len(counts) and set(map(type, indices)) == _INT
                and min(indices) >= 0 and all(map(operator.lt, indices, counts))):
            checks.check_indices(indices, self._choice_counts(), self._names)
        n = len(self._choices)
        b, k, d, w = self.blocks, self.kernels, self.depths, self.widths
        stages = []
        for s in range(len(self.skeleton)):
            i = indices[n * s : n * s + n]
            stages.append(TemplateStage(b[i[0]], k[i[1]], d[i[2]], w[i[3]], n == 5 and i[4] == 1))
        return TemplateArch(tuple(stages))

    def build(self, arch: Architecture, task: Task) -> nn.Module:
        checks.require_image(task, self.name)
        self.validate(arch)
        assert isinstance(arch, TemplateArch)
        return TemplateNet(arch, task, self.stem_channels, self.skeleton, self.width_scale, self.depth_scale)

    width_scale: float = 1.0  # set by scaled(): the builder multiplies channels and blocks per stage
    depth_scale: float = 1.0

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """Every channel count times ``width``, every stage's depth times ``depth``."""
        if width == 1.0 and depth == 1.0:
            return self
        return scaled_copy(self, width_scale=self.width_scale * width, depth_scale=self.depth_scale * depth)

    def diagram(self, arch: Architecture) -> Diagram:
        """Stem, one node per stage with its choices, head; edges carry the channel counts. A
        stride-2 stage also shows the map size it leaves relative to the stem's ("-> /4"; the
        network skips a stride once the map is under 4 px, and the stem has stride 2 on inputs of
        64 px or more, which needs the task to know)."""
        self.validate(arch)
        assert isinstance(arch, TemplateArch)
        d = Diagram(title=f"{self.name}: {arch}")
        c = scale_count(self.stem_channels, self.width_scale)
        prev = d.node("stem", f"stem conv3x3, {c} ch (stride 2 on inputs >= 64 px)")
        scale = 1
        for i, ((base, stride), spec) in enumerate(zip(self.skeleton, arch.stages)):
            c = scale_count(stage_channels(spec, base), self.width_scale)
            depth = scale_count(spec.depth, self.depth_scale)
            scale *= stride
            label = (f"stage {i + 1}: {spec.block} ({BLOCK_DESCRIPTIONS[spec.block]}), "
                     f"k{spec.kernel} x{depth}, {c} ch" + (", SE" if spec.se else "")
                     + (f", stride 2 -> /{scale}" if stride == 2 else ""))
            node = d.node(f"stage{i + 1}", label)
            d.edge(prev, node)
            prev = node
        d.edge(prev, d.node("head", "global avg pool + linear"), f"{c} ch")
        return d
