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
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.options import Check, Options, all_of, each_in, invalid, nonempty_distinct, option
from archsearch.spaces import checks
from archsearch.spaces.base import (
    Architecture, Decision, DecisionKind, SearchSpace, register_space, scale_count, scaled_copy, sized_kind,
)
from archsearch.spaces.diagram import Diagram

BLOCKS = ("conv", "mbconv3", "mbconv6", "sep_conv", "resblock")
BLOCK_DESCRIPTIONS = {
    "conv": "conv-BN-ReLU",
    "mbconv3": "inverted bottleneck x3",
    "mbconv6": "inverted bottleneck x6",
    "sep_conv": "depthwise-separable conv",
    "resblock": "ResNet basic block",
}
DEFAULT_WIDTHS = (0.5, 0.75, 1.0, 1.25)
MAX_STAGES = 8

Width = Union[float, int]  # float: multiplier of the stage's base width; int: absolute channels


_INT = {int}  # decode's fast path: indices that are all plain ints


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class TemplateStage:
    """One stage's choices. ``width`` is a float multiplier or an int channel count (option ``channels``)."""

    block: str
    kernel: int
    depth: int
    width: Width
    se: bool = False

    def __str__(self) -> str:
        w = f"c{self.width}" if _is_absolute(self.width) else f"w{float(self.width)!r}"
        return f"{self.block}:k{self.kernel}:d{self.depth}:{w}" + (":se" if self.se else "")


def _is_absolute(width: Any) -> bool:
    return isinstance(width, int) and not isinstance(width, bool)


# ``w``: any plain decimal number, optionally with an exponent, so every float's repr parses back
# (length-capped: repr never needs more than 17 significant digits and a 3-digit exponent)
_STAGE_RE = re.compile(
    r"([a-z0-9_]+):k([0-9]{1,4}):d([0-9]{1,4}):"
    r"(?:w([0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?)|c([0-9]{1,6}))(:se)?",
    re.ASCII,
)


@dataclass(frozen=True)
class TemplateArch(Architecture):
    stages: tuple[TemplateStage, ...]
    space = "template"

    def __str__(self) -> str:
        return "|".join(str(s) for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        out = []
        for s in self.stages:
            key = "channels" if _is_absolute(s.width) else "width"
            out.append({"block": s.block, "kernel": s.kernel, "depth": s.depth, key: s.width, "se": s.se})
        return {"stages": out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TemplateArch":
        stages = data["stages"]
        if not isinstance(stages, list) or not stages:
            raise ParseError("template architecture JSON: 'stages' must be a non-empty list")
        out = []
        for i, item in enumerate(stages):
            if not isinstance(item, dict):
                raise ParseError(f"template architecture JSON: stage {i} must be an object")
            unknown = set(item) - {"block", "kernel", "depth", "width", "channels", "se"}
            if unknown:
                raise ParseError(f"template architecture JSON: stage {i} has unknown key {sorted(unknown)[0]!r}")
            if ("width" in item) == ("channels" in item):
                raise ParseError(f"template architecture JSON: stage {i} needs exactly one of 'width', 'channels'")
            block, kernel, depth, se = item["block"], item["kernel"], item["depth"], item.get("se", False)
            if not isinstance(block, str) or not isinstance(se, bool):
                raise ParseError(f"template architecture JSON: stage {i} block must be a string and se a boolean")
            if not _is_absolute(kernel) or not _is_absolute(depth):
                raise ParseError(f"template architecture JSON: stage {i} kernel and depth must be integers")
            if "channels" in item:
                width: Width = item["channels"]
                if not _is_absolute(width):
                    raise ParseError(f"template architecture JSON: stage {i} channels must be an integer")
            else:
                width = item["width"]
                if isinstance(width, bool) or not isinstance(width, (int, float)):
                    raise ParseError(f"template architecture JSON: stage {i} width must be a number")
                width = float(width)
            out.append(TemplateStage(block, kernel, depth, width, se))
        return cls(tuple(out))

    @classmethod
    def parse(cls, text: str) -> "TemplateArch":
        out = []
        for i, tok in enumerate(t.strip() for t in text.strip().split("|")):
            m = _STAGE_RE.fullmatch(tok)
            if m is None:
                raise ParseError(f"stage {i + 1} {tok[:40]!r}: expected block:kK:dD:wW[:se] or block:kK:dD:cC[:se], "
                                 f"e.g. mbconv6:k3:d2:w1.0")
            block, k, d, w, c, se = m.groups()
            width = int(c) if c is not None else float(w)
            if width in (0.0, float("inf")):  # 1e999 overflows, 1e-999 underflows: neither prints back
                raise ParseError(f"stage {i + 1}: width multiplier w{w} is not a positive finite number")
            out.append(TemplateStage(block, int(k), int(d), width, se is not None))
        return cls(tuple(out))


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
    return spec.width if _is_absolute(spec.width) else max(1, int(round(base * spec.width)))  # type: ignore[return-value]


def _ints(low: int, high: int) -> Check:
    """A non-empty list of distinct integers in ``low..high``."""
    def check(values: Sequence[int]) -> Optional[str]:
        if not values or not all(low <= v <= high for v in values):
            return f"must be a non-empty list of integers in {low}..{high}"
        return nonempty_distinct(values)
    return check


def _odd(values: Sequence[int]) -> Optional[str]:
    return "must be odd (same padding)" if any(v % 2 == 0 for v in values) else None


def _multipliers(values: Sequence[float]) -> Optional[str]:
    if not values or not all(math.isfinite(w) and 0 < w <= 16 for w in values):
        return "must be a non-empty list of multipliers in (0, 16]"
    return nonempty_distinct(values)


def _stages(stages: Any) -> tuple[list[tuple[int, int]], Optional[str]]:
    """(base width, stride) per stage, and what is wrong with ``stages`` (None: nothing)."""
    def base_width(value: Any) -> bool:
        return _is_absolute(value) and 1 <= value <= 4096

    if _is_absolute(stages):
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
              and base_width(entry[0]) and _is_absolute(entry[1]) and entry[1] in (1, 2)):
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
                                          check=all_of(_ints(1, 4096), _odd))
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
                if j is None or (field == "width" and _is_absolute(value) != self.absolute):
                    raise ParseError(self._not_in_space(i, field, value, choices))
                out.append(j)
            if n == 4 and s.se:
                raise ParseError(f"stage {i + 1}: squeeze-and-excite ':se' needs space.se=true")
        return out

    def _not_in_space(self, i: int, field: str, value: Any, choices: tuple[Any, ...]) -> str:
        if field == "width" and _is_absolute(value) != self.absolute:
            return (f"stage {i + 1}: {'channel count c' if _is_absolute(value) else 'multiplier w'}{value} "
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
