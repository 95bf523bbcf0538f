"""Chain-structured CNNs: a fixed number of layers, each choosing op, kernel, channels, activation.

String form, one ``op:kernel:channels:activation`` token per layer joined by ``|``::

    conv:3:64:relu|sep_conv:5:64:gelu|max_pool:3:64:relu|identity:3:32:relu

Pooling and identity layers keep the incoming width (their channels and activation are
carried in the genotype but unused), which lets the chain get effectively shallower.
Network: stem conv3x3 (stride 2 while the input is larger than ``stem_max_size``, 16 px: the
space sizes itself for the data, see :func:`stem_halvings`) -> layers -> (2x2 max-pool
downsampling spread evenly, while the map is at least 4 pixels) -> global average pool -> linear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Options, all_of, each_between, each_in, invalid, nonempty_distinct, option
from archsearch.spaces.base import (
    Architecture, Decision, SearchSpace, register_space, scale_count, scaled_copy, sized_kind,
)
from archsearch.spaces.checks import odd_kernels, require_image
from archsearch.spaces.diagram import Diagram

OPS = ("conv", "sep_conv", "dil_conv", "max_pool", "avg_pool", "identity")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class ChainLayer:
    op: str
    kernel: int
    channels: int
    activation: str

    def __str__(self) -> str:
        return f"{self.op}:{self.kernel}:{self.channels}:{self.activation}"


@dataclass(frozen=True)
class ChainArch(Architecture):
    layers: tuple[ChainLayer, ...]
    space = "chain"

    def __str__(self) -> str:
        return "|".join(str(layer) for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [[x.op, x.kernel, x.channels, x.activation] for x in self.layers]}

    def canonical(self) -> dict[str, Any]:
        """What ``_layer`` builds: pooling ignores its channels and activation (null here), identity
        also its kernel; a 1x1 ``dil_conv`` is a 1x1 ``conv`` (same modules and weights; dilation
        has nothing to spread)."""
        out: list[list[Any]] = []
        for x in self.layers:
            if x.op == "identity":
                out.append([x.op, None, None, None])
            elif x.op in ("max_pool", "avg_pool"):
                out.append([x.op, x.kernel, None, None])
            else:
                op = "conv" if x.op == "dil_conv" and x.kernel == 1 else x.op
                out.append([op, x.kernel, x.channels, x.activation])
        return {"layers": out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChainArch":
        layers = data["layers"]
        if not isinstance(layers, list):
            raise ParseError("chain architecture JSON: 'layers' must be a list")
        out = []
        for i, item in enumerate(layers):
            if not isinstance(item, (list, tuple)) or len(item) != 4:
                raise ParseError(f"chain architecture JSON: layer {i} must be [op, kernel, channels, activation]")
            op, k, c, act = item
            if not isinstance(k, int) or not isinstance(c, int) or isinstance(k, bool) or isinstance(c, bool):
                raise ParseError(f"chain architecture JSON: layer {i} kernel and channels must be integers")
            out.append(ChainLayer(str(op), k, c, str(act)))
        return cls(tuple(out))

    @classmethod
    def parse(cls, text: str) -> "ChainArch":
        tokens = [t.strip() for t in text.strip().split("|")]
        layers = []
        for i, tok in enumerate(tokens):
            parts = tok.split(":")
            if len(parts) != 4:
                raise ParseError(
                    f"layer {i + 1} {tok!r}: expected op:kernel:channels:activation, e.g. conv:3:32:relu"
                )
            op, k, c, act = (p.strip() for p in parts)
            if not k.isdigit() or not c.isdigit():
                raise ParseError(f"layer {i + 1} {tok!r}: kernel and channels must be positive integers")
            layers.append(ChainLayer(op, int(k), int(c), act))
        return cls(tuple(layers))


# -- operations -----------------------------------------------------------------
def _layer(spec: ChainLayer, c_in: int) -> tuple[nn.Module, int]:
    """Build one layer; returns the module and its output width."""
    k, c, pad = spec.kernel, spec.channels, spec.kernel // 2
    act = ACTIVATIONS[spec.activation]()
    if spec.op == "conv":
        return nn.Sequential(nn.Conv2d(c_in, c, k, padding=pad, bias=False), nn.BatchNorm2d(c), act), c
    if spec.op == "sep_conv":  # depthwise k x k then pointwise 1 x 1
        return nn.Sequential(
            nn.Conv2d(c_in, c_in, k, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c), act,
        ), c
    if spec.op == "dil_conv":  # dilation 2 widens the receptive field at the same cost
        return nn.Sequential(nn.Conv2d(c_in, c, k, padding=2 * pad, dilation=2, bias=False), nn.BatchNorm2d(c), act), c
    if spec.op == "max_pool":
        return nn.MaxPool2d(k, stride=1, padding=pad), c_in
    if spec.op == "avg_pool":
        return nn.AvgPool2d(k, stride=1, padding=pad, count_include_pad=False), c_in
    return nn.Identity(), c_in


def stem_halvings(size: int, stem_max_size: int) -> int:
    """How many times the stem halves a ``size``-pixel input: until the map is at most ``stem_max_size``
    pixels (0: never). The sizing rule of the space: layers run at <= 16x16 by default, so a sampled
    network costs about what it costs on 16x16 inputs whatever the input resolution (28x28 MNIST:
    one halving, 4x fewer FLOPs per layer; 8x8 digits: none, unchanged)."""
    n = 0
    while stem_max_size and size > stem_max_size:
        size = (size + 1) // 2
        n += 1
    return n


class ChainNet(nn.Module):
    def __init__(self, arch: ChainArch, task: Task, stem_channels: int, reductions: int, width: float = 1.0,
                 stem_max_size: int = 0) -> None:
        """``width`` multiplies every channel count (the stem's and each layer's; rounded, at least 1).
        The stem is a 3x3 conv, stride 2 for each halving :func:`stem_halvings` asks, then one more
        stride-2 3x3 conv per further halving."""
        super().__init__()
        stem_channels = scale_count(stem_channels, width)
        c_in, *hw = require_image(task, "chain")
        h = min(hw)
        halvings = stem_halvings(h, stem_max_size)
        stem: list[nn.Module] = [nn.Conv2d(c_in, stem_channels, 3, stride=2 if halvings else 1, padding=1, bias=False),
                                 nn.BatchNorm2d(stem_channels), nn.ReLU()]
        for _ in range(halvings - 1):
            stem += [nn.Conv2d(stem_channels, stem_channels, 3, stride=2, padding=1, bias=False),
                     nn.BatchNorm2d(stem_channels), nn.ReLU()]
        for _ in range(halvings):
            h = (h + 1) // 2
        self.stem = nn.Sequential(*stem)
        n = len(arch.layers)
        # downsample after layers spread evenly: e.g. 6 layers, 2 reductions -> after layers 2 and 4
        reduce_after = {round(n * (r + 1) / (reductions + 1)) - 1 for r in range(reductions)}
        blocks: list[nn.Module] = []
        c = stem_channels
        for i, spec in enumerate(arch.layers):
            if width != 1.0:
                spec = replace(spec, channels=scale_count(spec.channels, width))
            module, c = _layer(spec, c)
            blocks.append(module)
            if i in reduce_after and h >= 4:
                blocks.append(nn.MaxPool2d(2))
                h //= 2
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, C, H', W')
        return self.head(x.mean(dim=(2, 3)))


# -- the space ------------------------------------------------------------------

@register_space("chain")
class ChainSpace(SearchSpace):
    """Chain-structured CNNs (seed 001: each node's only parent is the previous node)."""

    arch_type = ChainArch

    @dataclass(frozen=True)
    class Options(Options):
        layers: int = option(6, "layers of the chain", low=1, high=64)
        ops: tuple[str, ...] = option(OPS, "operations a layer chooses from",
                                      check=all_of(nonempty_distinct, each_in(OPS)))
        kernels: tuple[int, ...] = option((1, 3, 5), "kernel sizes (odd: same padding)",
                                          check=all_of(nonempty_distinct, each_between(1, 15), odd_kernels))
        channels: tuple[int, ...] = option((16, 32, 64, 96), "output channels a layer chooses from",
                                           check=all_of(nonempty_distinct, each_between(1, 4096)))
        activations: tuple[str, ...] = option(("relu", "gelu", "silu", "tanh"), "activations a layer chooses from",
                                              check=all_of(nonempty_distinct, each_in(tuple(ACTIVATIONS))))
        stem_channels: int = option(32, "width of the stem conv", low=1, high=4096)
        reductions: int = option(2, "2x downsamplings spread along the chain", low=0, high=64)
        stem_max_size: int = option(16, "the stem halves the input until the map is at most this many pixels "
                                        "(0: never), so layers run at <= 16x16 whatever the input", low=0, high=4096)

        def __post_init__(self) -> None:
            if self.reductions > self.layers:
                raise invalid("reductions", f"must be at most space.layers = {self.layers}, got {self.reductions}")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"layers": 3, "channels": [4, 8], "stem_channels": 4}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.layers, self.stem_channels, self.reductions = o.layers, o.stem_channels, o.reductions
        self.stem_max_size = o.stem_max_size
        self.ops, self.kernels = o.ops, o.kernels
        self.channels, self.activations = o.channels, o.activations

    def decisions(self) -> list[Decision]:
        out = []
        for i in range(self.layers):
            out += [Decision(f"layer{i}.op", self.ops, node=i),
                    Decision(f"layer{i}.kernel", self.kernels, sized_kind(self.kernels), node=i),
                    Decision(f"layer{i}.channels", self.channels, sized_kind(self.channels), node=i),
                    Decision(f"layer{i}.activation", self.activations, node=i)]
        return out

    def encode(self, arch: Architecture) -> list[int]:
        assert isinstance(arch, ChainArch)
        if len(arch.layers) != self.layers:
            raise ParseError(f"expected {self.layers} layers (space.layers), got {len(arch.layers)}")
        idx = []
        for i, layer in enumerate(arch.layers):
            for field, value, choices in (("op", layer.op, self.ops), ("kernel", layer.kernel, self.kernels),
                                          ("channels", layer.channels, self.channels),
                                          ("activation", layer.activation, self.activations)):
                if value not in choices:
                    raise ParseError(f"layer {i + 1}: {field} {value!r} is not in the space "
                                     f"(valid: {', '.join(map(str, choices))})")
                idx.append(choices.index(value))
        return idx

    def decode(self, indices: Sequence[int]) -> ChainArch:
        if len(indices) != 4 * self.layers:
            raise ParseError(f"expected {4 * self.layers} decisions, got {len(indices)}")
        layers = []
        for i in range(self.layers):
            o, k, c, a = indices[4 * i : 4 * i + 4]
            layers.append(ChainLayer(self.ops[o], self.kernels[k], self.channels[c], self.activations[a]))
        return ChainArch(tuple(layers))

    def build(self, arch: Architecture, task: Task) -> nn.Module:
        self.validate(arch)
        assert isinstance(arch, ChainArch)
        return ChainNet(arch, task, self.stem_channels, self.reductions, self.width_scale, self.stem_max_size)

    width_scale: float = 1.0  # set by scaled(): the builder multiplies every channel count

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """Every channel count times ``width``. The depth is the architecture's own (one decision
        group per layer), so ``depth`` must stay 1."""
        if depth != 1.0:
            raise ConfigError(f"space 'chain' cannot scale depth (its layers are decisions of the architecture); "
                              f"fidelity.depth must be 1, got {depth:g}")
        return self if width == 1.0 else scaled_copy(self, width_scale=self.width_scale * width)

    def diagram(self, arch: Architecture) -> Diagram:
        """Every layer as the network runs it: input, stem, the layers with their output channels,
        the automatic 2x2 max-pool reductions (with the map size relative to the input, e.g. /4;
        the network skips a reduction once the map is under 4 pixels, which needs the task to
        know), global average pool + linear."""
        self.validate(arch)
        assert isinstance(arch, ChainArch)
        n = len(arch.layers)
        reduce_after = {round(n * (r + 1) / (self.reductions + 1)) - 1 for r in range(self.reductions)}
        w = self.width_scale
        c = scale_count(self.stem_channels, w)
        d = Diagram(title=f"chain ({self.reductions} max-pool reductions, skipped below 4 px): {arch}")
        prev = d.node("input", "input image")
        halves = f", stride 2 until at most {self.stem_max_size} px" if self.stem_max_size else ""
        d.edge(prev, d.node("stem", f"stem conv3x3-BN-ReLU, {c} ch{halves}"))
        prev, scale = "stem", 1
        for i, layer in enumerate(arch.layers):
            kernel = f"{layer.op} {layer.kernel}x{layer.kernel}"
            if layer.op == "identity" or "pool" in layer.op:  # keeps the incoming width
                label = f"{i}: {kernel}, {c} ch" if layer.op != "identity" else f"{i}: identity, {c} ch"
            else:
                c = scale_count(layer.channels, w)
                label = f"{i}: {kernel}, {layer.activation}, {c} ch"
            node = d.node(f"layer{i}", label + (f", /{scale}" if scale > 1 else ""))
            d.edge(prev, node)
            prev = node
            if i in reduce_after:
                scale *= 2
                node = d.node(f"reduce{i}", f"reduction: max-pool 2x2, {c} ch, /{scale}")
                d.edge(prev, node)
                prev = node
        d.edge(prev, d.node("head", f"global avg pool + linear ({c} -> classes)"))
        return d
