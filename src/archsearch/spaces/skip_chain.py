"""Chains with skip connections: Zoph & Le's global space, with an ENAS-macro supernet.

Every layer picks an operation, a filter height and width, a number of filters, optionally a
stride, and an *anchor point*: the set of earlier layers it reads (any subset, seed 000). The
seed's orphan fix-ups make every anchor choice a valid network:

* a layer that reads no earlier layer reads the stem output (the image after the stem conv);
* every layer whose output no later layer reads (the last one aside) is concatenated with the
  last layer's output before the head.

String form, one ``op:KHxKW:filters[:sS][<-i,j,...]`` token per layer joined by ``|``. ``<-``
lists the anchor (0-based indices of earlier layers) and is left out when the layer reads no
layer; ``:sS`` is left out at stride 1::

    conv:3x3:36|sep_conv:5x3:48<-0|max_pool:3x3:24:s2|conv:1x7:64<-0,2

``parse`` also accepts a square kernel written once (``conv:3:36``) and ``:s1``.

Network (widths concatenate, sizes pool down):

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

import re
from dataclasses import dataclass
from itertools import compress
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.spaces import checks
from archsearch.spaces.base import (
    INPUT_CHOICES, Architecture, Decision, DecisionKind, SearchSpace, register_space, scale_count, scaled_copy,
    sized_kind,
)
from archsearch.spaces.diagram import Diagram

OPS = ("conv", "sep_conv", "max_pool", "avg_pool")
STEM = -1  # source index of the stem output

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KERNEL = re.compile(r"([0-9]{1,4})(?:\s*[xX]\s*([0-9]{1,4}))?")
_INT = re.compile(r"[0-9]{1,6}")
_STRIDE = re.compile(r"[sS]([0-9]{1,3})")
_FORMAT = "op:KHxKW:filters[:sS][<-inputs], e.g. conv:3x5:36<-0,2"


# -- the genotype ---------------------------------------------------------------
class SkipLayer(NamedTuple):
    """One layer; ``inputs`` is the anchor set: sorted indices of earlier layers, may be empty.

    A named tuple, not a dataclass: decode builds a dozen per architecture in tight search loops.
    """

    op: str
    kernel_h: int
    kernel_w: int
    filters: int
    stride: int
    inputs: tuple[int, ...]

    def __str__(self) -> str:
        stride = f":s{self.stride}" if self.stride != 1 else ""
        inputs = "<-" + ",".join(map(str, self.inputs)) if self.inputs else ""
        return f"{self.op}:{self.kernel_h}x{self.kernel_w}:{self.filters}{stride}{inputs}"


def _check_inputs(i: int, inputs: Sequence[int]) -> None:
    if len(set(inputs)) != len(inputs):
        raise ParseError(f"layer {i}: an input is listed twice in {list(inputs)}")
    for j in inputs:
        if not 0 <= j < i:
            where = "layer 0 always reads the stem" if i == 0 else f"valid: 0..{i - 1}"
            raise ParseError(f"layer {i}: input {j} is not an earlier layer ({where})")


@dataclass(frozen=True)
class SkipChainArch(Architecture):
    layers: tuple[SkipLayer, ...]
    space = "skip_chain"

    def __str__(self) -> str:
        return "|".join(str(layer) for layer in self.layers)

    def unused(self) -> tuple[int, ...]:
        """Layers (the last aside) that no later layer reads: the fix-up concatenates them at the end."""
        used = {j for layer in self.layers for j in layer.inputs}
        return tuple(j for j in range(len(self.layers) - 1) if j not in used)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [[l.op, l.kernel_h, l.kernel_w, l.filters, l.stride, list(l.inputs)]
                           for l in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SkipChainArch":
        layers = data["layers"]
        if not isinstance(layers, list):
            raise ParseError("skip_chain architecture JSON: 'layers' must be a list")
        out = []
        for i, item in enumerate(layers):
            if not isinstance(item, (list, tuple)) or len(item) != 6:
                raise ParseError(f"skip_chain architecture JSON: layer {i} must be "
                                 "[op, kernel_h, kernel_w, filters, stride, [inputs]]")
            op, kh, kw, f, s, inputs = item
            if not isinstance(op, str) or not isinstance(inputs, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in (kh, kw, f, s, *inputs)):
                raise ParseError(f"skip_chain architecture JSON: layer {i} needs a string op, "
                                 "integer sizes and a list of integer inputs")
            _check_inputs(i, inputs)
            out.append(SkipLayer(op, kh, kw, f, s, tuple(sorted(inputs))))
        return cls(tuple(out))

    @classmethod
    def parse(cls, text: str) -> "SkipChainArch":
        return cls(tuple(_parse_layer(i, tok.strip()) for i, tok in enumerate(text.strip().split("|"))))


def _parse_layer(i: int, tok: str) -> SkipLayer:
    head, arrow, tail = tok.partition("<-")
    parts = [p.strip() for p in head.split(":")]
    if "<-" in tail or len(parts) not in (3, 4):
        raise ParseError(f"layer {i} {tok!r}: expected {_FORMAT}")
    op, kernel, filters = parts[:3]
    if not _NAME.fullmatch(op):
        raise ParseError(f"layer {i} {tok!r}: op {op!r} is not a name (expected {_FORMAT})")
    k = _KERNEL.fullmatch(kernel)
    if not k:
        raise ParseError(f"layer {i} {tok!r}: kernel {kernel!r} must be KHxKW (e.g. 3x5) or one size")
    if not _INT.fullmatch(filters):
        raise ParseError(f"layer {i} {tok!r}: filters {filters!r} must be a positive integer")
    s = _STRIDE.fullmatch(parts[3]) if len(parts) == 4 else None
    if len(parts) == 4 and not s:
        raise ParseError(f"layer {i} {tok!r}: stride {parts[3]!r} must be written s1, s2, ...")
    inputs: list[int] = []
    if arrow:
        items = [x.strip() for x in tail.split(",")]
        if not all(_INT.fullmatch(x) for x in items):
            raise ParseError(f"layer {i} {tok!r}: inputs after '<-' must be layer indices like 0,2 "
                             "(leave '<-' out for a layer that reads the stem)")
        inputs = [int(x) for x in items]
        _check_inputs(i, inputs)
    kh = int(k.group(1))
    return SkipLayer(op, kh, int(k.group(2) or kh), int(filters), int(s.group(1)) if s else 1,
                     tuple(sorted(inputs)))


# -- operations -----------------------------------------------------------------
def _conv_bn_relu(c_in: int, c_out: int, kh: int, kw: int, stride: int, affine: bool = True) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), stride, (kh // 2, kw // 2), bias=False),
                         nn.BatchNorm2d(c_out, affine=affine), nn.ReLU())


def _op(op: str, c_in: int, c_out: int, kh: int, kw: int, stride: int, affine: bool = True) -> nn.Module:
    """One layer's operation; every op maps (B, c_in, H, W) to (B, c_out, ceil(H/s), ceil(W/s))."""
    pad = (kh // 2, kw // 2)
    if op == "conv":
        return _conv_bn_relu(c_in, c_out, kh, kw, stride, affine)
    if op == "sep_conv":
        return nn.Sequential(nn.Conv2d(c_in, c_in, (kh, kw), stride, pad, groups=c_in, bias=False),
                             nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine), nn.ReLU())
    pool = (nn.MaxPool2d((kh, kw), stride, pad) if op == "max_pool"
            else nn.AvgPool2d((kh, kw), stride, pad, count_include_pad=False))
    if c_in == c_out:
        return pool
    return nn.Sequential(_conv_bn_relu(c_in, c_out, 1, 1, 1, affine), pool)  # project, so pools keep `filters`


def _stage_sizes(h: int, w: int, reductions: int) -> list[tuple[int, int]]:
    """The size cap of each stage: the stem map halved once per reduction, each side while >= 4."""
    out = [(h, w)]
    for _ in range(reductions):
        h, w = (h // 2 if h >= 4 else h), (w // 2 if w >= 4 else w)
        out.append((h, w))
    return out


class _Pooled:
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


def _stages(layers: int, reductions: int) -> list[int]:
    """Stage of each layer: reductions spread evenly (6 layers, 2 reductions: 0 0 1 1 2 2)."""
    return [i * (reductions + 1) // layers for i in range(layers)]


class SkipChainNet(nn.Module):
    def __init__(self, arch: SkipChainArch, task: Task, stem_channels: int, reductions: int,
                 width: float = 1.0) -> None:
        """``width`` multiplies every channel count (the stem's and each layer's filters; rounded, at least 1)."""
        super().__init__()
        stem_channels = scale_count(stem_channels, width)
        self.stem = _conv_bn_relu(task.input_shape[0], stem_channels, 3, 3, 1)
        self.sources: list[tuple[int, ...]] = []  # what each layer reads; STEM for the fix-up
        widths: list[int] = []
        layers = []
        for spec in arch.layers:
            src = spec.inputs or (STEM,)
            c_in = sum(stem_channels if j == STEM else widths[j] for j in src)
            filters = scale_count(spec.filters, width)
            layers.append(_op(spec.op, c_in, filters, spec.kernel_h, spec.kernel_w, spec.stride))
            widths.append(filters)
            self.sources.append(src)
        self.layers = nn.ModuleList(layers)
        self.final = (*arch.unused(), len(arch.layers) - 1)  # fix-up: unused outputs join the last
        self.stages, self.reductions = _stages(len(layers), reductions), reductions
        self.head = nn.Linear(sum(widths[j] for j in self.final), task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)  # (B, stem_channels, H, W)
        caps = _stage_sizes(s.shape[2], s.shape[3], self.reductions)
        pooled = _Pooled()
        outs: list[torch.Tensor] = []
        for layer, src, stage in zip(self.layers, self.sources, self.stages):
            maps = pooled.align([(j, s if j == STEM else outs[j]) for j in src], caps[stage])
            outs.append(layer(maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)))
        final = torch.cat(pooled.align([(j, outs[j]) for j in self.final], caps[-1]), dim=1)
        return self.head(final.mean(dim=(2, 3)))


# -- the supernet -----------------------------------------------------------------
class SkipChainSupernet(Supernet):
    """ENAS-macro weight sharing: one fixed width, an op choice per layer, an on/off choice per skip.

    Choice points, per layer i in order: ``layer{i}.op`` (candidates ``{op}_{k}x{k}`` for every op
    and kernel of the space: square kernels only) then ``layer{i}.input{j}`` (``off``/``on``) for
    j < i, the same names as the space's decisions. Every layer is ``supernet_filters`` wide
    (the stem too) and runs at the smallest stride offered, so a layer's inputs are *summed*,
    each scaled by its ``on`` weight, where the standalone network concatenates them. The
    fix-ups are relaxed the same way: the stem joins layer i's sum with weight prod_j off(j, i)
    (the chance that it reads nothing), and layer j joins the last layer's output with weight
    prod_i off(j, i) (the chance that nobody reads it); with one-hot weights these are the
    discrete rules. Sizes follow the standalone rule (pool to the smallest, stage caps).

    ``derive``: argmax op candidate per layer, a skip when its ``on`` weight beats ``off``,
    filters ``supernet_filters`` and the smallest stride. ``path`` is lossy on what the supernet
    does not search: filters and stride are ignored and a kh x kw kernel runs the square
    candidate of side max(kh, kw).
    """

    def __init__(self, space: "SkipChainSpace", task: Task) -> None:
        super().__init__()
        self.space = space
        n, c = space.layers, space.supernet_filters
        self.filters, self.stride, self.reductions = c, min(space.strides), space.reductions
        self.candidates = tuple((op, k) for op in space.ops for k in space.kernels)
        self._index = {cand: i for i, cand in enumerate(self.candidates)}
        self.stem = _conv_bn_relu(task.input_shape[0], c, 3, 3, 1)
        self.cells = nn.ModuleList(
            nn.ModuleList(_op(op, c, c, k, k, self.stride, affine=False) for op, k in self.candidates)
            for _ in range(n))
        self.head = nn.Linear(c, task.num_classes)
        self.stages = _stages(n, space.reductions)
        self.choice_points: list[ChoicePoint] = []
        self._op_cp: list[int] = []
        self._skip_cp: list[list[int]] = []  # [i][j]: choice point of skip j -> i
        for i in range(n):
            self._op_cp.append(len(self.choice_points))
            self.choice_points.append(ChoicePoint(f"layer{i}.op", tuple(f"{op}_{k}x{k}" for op, k in self.candidates)))
            self._skip_cp.append(list(range(len(self.choice_points), len(self.choice_points) + i)))
            self.choice_points += [ChoicePoint(f"layer{i}.input{j}", ("off", "on")) for j in range(i)]
        self.param_free = frozenset(f"{op}_{k}x{k}" for op, k in self.candidates if op in ("max_pool", "avg_pool"))
        # skip j -> i is row i * (i - 1) // 2 + j of the stacked (skips, 2) weights; layer i's rows
        # are contiguous. _unused_rows[j]: the rows of j's readers i > j, padded with the index of
        # an appended 1.0, so one gather + prod gives every "nobody reads j" product at once
        self._skip_flat = [cp for row in self._skip_cp for cp in row]
        skips = len(self._skip_flat)
        self._row = [i * (i - 1) // 2 for i in range(n)]
        self._unused_list = [[self._row[i] + j for i in range(j + 1, n)] for j in range(n - 1)]
        pad = [rows + [skips] * (n - 1 - len(rows)) for rows in self._unused_list]
        self.register_buffer("_unused_rows", torch.tensor(pad, dtype=torch.long).reshape(n - 1, max(n - 1, 0)),
                             persistent=False)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(weights) != len(self.choice_points):
            raise ValueError(f"expected {len(self.choice_points)} weight vectors, got {len(weights)}")
        s = self.stem(x)  # (B, C, H, W)
        caps = _stage_sizes(s.shape[2], s.shape[3], self.reductions)
        pooled = _Pooled()
        dead = s.new_zeros(())  # zero weights join as scalars so their gradient path exists (as in mix)
        n = len(self.stages)
        if self._skip_flat:
            skip = torch.stack([weights[cp] for cp in self._skip_flat])  # (skips, 2): off, on
            off = skip[:, 0]
            live = skip.ne(0).tolist()  # the zero mask of every skip, one host sync per forward
        outs: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            terms: list[tuple[torch.Tensor | None, int, torch.Tensor]] = []
            row = self._row[i]
            for j, cp in enumerate(self._skip_cp[i]):
                on = weights[cp][1]
                if live[row + j][1]:
                    terms.append((on, j, outs[j]))
                else:
                    dead = dead + on
            if i == 0:
                terms.append((None, STEM, s))
            else:
                reads_stem = off[row : row + i].prod()  # prod_j off(j, i): the chance that i reads nothing
                if terms and not all(live[row + j][0] for j in range(i)):
                    dead = dead + reads_stem  # a factor is exactly 0
                else:
                    terms.append((reads_stem, STEM, s))
            outs.append(mix(self.cells[i], self._sum(terms, caps[stage], pooled), weights[self._op_cp[i]]))
        terms = [(None, n - 1, outs[-1])]
        if n > 1:
            off1 = torch.cat([off, off.new_ones(1)])  # the pad index reads the 1.0
            unused = off1[self._unused_rows].prod(dim=1)  # (n - 1,): prod_{i > j} off(j, i)
            for j, rows in enumerate(self._unused_list):
                if all(live[r][0] for r in rows):
                    terms.append((unused[j], j, outs[j]))
                else:
                    dead = dead + unused[j]  # a factor is exactly 0
        final = self._sum(terms, caps[-1], pooled)
        return self.head(final.mean(dim=(2, 3))) + dead

    @staticmethod
    def _sum(terms: list[tuple[torch.Tensor | None, int, torch.Tensor]], cap: tuple[int, int],
             pooled: _Pooled) -> torch.Tensor:
        maps = pooled.align([(src, m) for _, src, m in terms], cap)
        out = None
        for (w, _, _), m in zip(terms, maps):
            y = m if w is None else w * m
            out = y if out is None else out + y
        assert out is not None
        return out

    def derive(self, weights: Sequence[torch.Tensor]) -> SkipChainArch:
        layers = []
        for i, cp in enumerate(self._op_cp):
            op, k = self.candidates[int(torch.argmax(weights[cp]))]
            inputs = tuple(j for j, s in enumerate(self._skip_cp[i]) if bool(weights[s][1] > weights[s][0]))
            layers.append(SkipLayer(op, k, k, self.filters, self.stride, inputs))
        return SkipChainArch(tuple(layers))

    def as_run(self, arch: Architecture) -> Architecture:
        """Every layer at the supernet's width and stride, with the square kernel that ran."""
        return self.derive(self.path_weights(arch))

    def path(self, arch: Architecture) -> list[int]:
        self.space.validate(arch)
        assert isinstance(arch, SkipChainArch)
        out = []
        for i, layer in enumerate(arch.layers):
            out.append(self._index[(layer.op, max(layer.kernel_h, layer.kernel_w))])
            out += [int(j in layer.inputs) for j in range(i)]
        return out


# -- the space ------------------------------------------------------------------
def _check_odd(key: str, values: Any) -> tuple[int, ...]:
    values = checks.check_ints(key, values)
    if any(v % 2 == 0 for v in values):
        raise ConfigError(f"space.{key} must be odd (same padding), got {list(values)}")
    return values


@register_space("skip_chain")
class SkipChainSpace(SearchSpace):
    """Chains with any-subset skip connections (seed 000; Zoph & Le 2017 global, ENAS macro).

    Decisions per layer i: ``layer{i}.op``, ``layer{i}.kernel_h``, ``layer{i}.kernel_w``,
    ``layer{i}.filters``, ``layer{i}.stride`` (only when ``strides`` offers more than one), then
    the anchor: ``layer{i}.input{j}`` with choices (False, True) for every j < i (see
    :meth:`anchors`; layer 0 has none, it reads the stem).

    ``reductions`` is 0..layers-1 (a reduction after the last layer would only shrink the map
    the head averages) and defaults to 2, or ``layers - 1`` when that is smaller.
    """

    arch_type = SkipChainArch
    has_supernet = True

    def __init__(
        self,
        layers: int = 6,
        ops: Sequence[str] = OPS,
        kernels: Sequence[int] = (1, 3, 5, 7),
        filters: Sequence[int] = (24, 36, 48, 64),
        strides: Sequence[int] = (1,),
        stem_channels: int = 32,
        reductions: int | None = None,
        supernet_filters: int | None = None,
    ) -> None:
        checks.check_int("layers", layers, 1, 64)
        ops = checks.check_names("ops", ops, OPS)
        self.kernels = _check_odd("kernels", kernels)
        self.filters = checks.check_ints("filters", filters)
        self.strides = checks.check_ints("strides", strides)
        checks.check_int("stem_channels", stem_channels, 1, 4096)
        if reductions is None:
            reductions = min(2, layers - 1)
        checks.check_int("reductions", reductions, 0, 64)
        if reductions > layers - 1:
            raise ConfigError(f"space.reductions must be at most space.layers - 1 = {layers - 1}, got {reductions} "
                              "(a reduction after the last layer would only shrink the map the head averages)")
        if supernet_filters is None:
            supernet_filters = max(self.filters)
        if (not isinstance(supernet_filters, int) or isinstance(supernet_filters, bool)
                or supernet_filters not in self.filters):
            raise ConfigError(f"space.supernet_filters must be one of space.filters "
                              f"({', '.join(map(str, self.filters))}), got {supernet_filters!r}")
        self.layers, self.ops, self.stem_channels = layers, tuple(ops), stem_channels
        self.reductions, self.supernet_filters = reductions, supernet_filters
        self._op_index = {v: i for i, v in enumerate(self.ops)}
        self._kernel_index = {v: i for i, v in enumerate(self.kernels)}
        self._filter_index = {v: i for i, v in enumerate(self.filters)}
        self._stride_index = {v: i for i, v in enumerate(self.strides)}
        self._strided = len(self.strides) > 1
        self._decisions = self._make_decisions()
        self._size_list = [len(d.choices) for d in self._decisions]

    # -- the canonical encoding --------------------------------------------------
    def _make_decisions(self) -> list[Decision]:
        out = []
        for i in range(self.layers):
            kernels = sized_kind(self.kernels)
            out += [Decision(f"layer{i}.op", self.ops, node=i),
                    Decision(f"layer{i}.kernel_h", self.kernels, kernels, node=i),
                    Decision(f"layer{i}.kernel_w", self.kernels, kernels, node=i),
                    Decision(f"layer{i}.filters", self.filters, sized_kind(self.filters), node=i)]
            if self._strided:
                out.append(Decision(f"layer{i}.stride", self.strides, sized_kind(self.strides), node=i))
            out += [Decision(f"layer{i}.input{j}", INPUT_CHOICES, DecisionKind.INPUTS, node=i, source=j)
                    for j in range(i)]
        return out

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def anchors(self) -> list[tuple[int, int, int]]:
        """(position in the decision sequence, layer i, earlier layer j) of every anchor decision."""
        return [(pos, d.node, d.source) for pos, d in enumerate(self._decisions)  # type: ignore[misc]
                if d.kind is DecisionKind.INPUTS]

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, SkipChainArch):
            raise ParseError(f"expected a 'skip_chain' architecture, got {type(arch).__name__}")
        if len(arch.layers) != self.layers:
            raise ParseError(f"expected {self.layers} layers (space.layers), got {len(arch.layers)}")
        idx: list[int] = []
        for i, layer in enumerate(arch.layers):
            try:
                idx += (self._op_index[layer.op], self._kernel_index[layer.kernel_h],
                        self._kernel_index[layer.kernel_w], self._filter_index[layer.filters])
                stride = self._stride_index[layer.stride]
            except (KeyError, TypeError):
                raise self._not_in_space(i, layer) from None
            if self._strided:
                idx.append(stride)
            inputs, bits = layer.inputs, [0] * i
            if inputs and (inputs[0] < 0 or inputs[-1] >= i or any(b <= a for a, b in zip(inputs, inputs[1:]))):
                _check_inputs(i, inputs)
                raise ParseError(f"layer {i}: inputs {list(inputs)} must be in increasing order")
            for j in inputs:
                bits[j] = 1
            idx += bits
        return idx

    def _not_in_space(self, i: int, layer: SkipLayer) -> ParseError:
        for field, table in (("op", self._op_index), ("kernel_h", self._kernel_index),
                             ("kernel_w", self._kernel_index), ("filters", self._filter_index),
                             ("stride", self._stride_index)):
            value = getattr(layer, field)
            if not isinstance(value, type(next(iter(table)))) or value not in table:
                return ParseError(f"layer {i}: {field} {value!r} is not in the space "
                                  f"(valid: {', '.join(map(str, table))})")
        return ParseError(f"layer {i}: {layer!r} is not in the space")

    def decode(self, indices: Sequence[int]) -> SkipChainArch:
        if not isinstance(indices, list):
            indices = [int(v) for v in indices]
        if len(indices) != len(self._size_list):
            raise ParseError(f"expected {len(self._size_list)} decisions, got {len(indices)}")
        layers, pos = [], 0
        try:
            if indices and min(indices) < 0:
                raise IndexError
            for i in range(self.layers):
                op, kh, kw, f = indices[pos : pos + 4]
                pos += 4
                stride = self.strides[0]
                if self._strided:
                    stride = self.strides[indices[pos]]
                    pos += 1
                anchor = indices[pos : pos + i]
                pos += i
                if anchor and max(anchor) > 1:
                    raise IndexError
                layers.append(SkipLayer(self.ops[op], self.kernels[kh], self.kernels[kw], self.filters[f], stride,
                                        tuple(compress(range(i), anchor))))
        except IndexError:
            pos, v = next((p, v) for p, (v, n) in enumerate(zip(indices, self._size_list)) if not 0 <= v < n)
            raise ParseError(f"decision {self._decisions[pos].name}: index {v} is out of range "
                             f"0..{self._size_list[pos] - 1}") from None
        return SkipChainArch(tuple(layers))

    # -- building ----------------------------------------------------------------
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        checks.require_image(task, self.name)
        self.validate(arch)
        assert isinstance(arch, SkipChainArch)
        return SkipChainNet(arch, task, self.stem_channels, self.reductions, self.width_scale)

    width_scale: float = 1.0  # set by scaled(): the builder multiplies every channel count

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """Every channel count times ``width``. The depth is the architecture's own (one decision
        group per layer, anchors between them), so ``depth`` must stay 1."""
        if depth != 1.0:
            raise ConfigError(f"space 'skip_chain' cannot scale depth (its layers are decisions of the architecture); "
                              f"fidelity.depth must be 1, got {depth:g}")
        return self if width == 1.0 else scaled_copy(self, width_scale=self.width_scale * width)

    def supernet(self, task: Task) -> SkipChainSupernet:
        checks.require_image(task, self.name)
        return SkipChainSupernet(self, task)

    # -- encodings for predictors and pictures -----------------------------------
    def feature_kinds(self) -> tuple[str, ...]:
        return ("onehot", "adjacency")

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """``adjacency``: the upper triangle of the wired graph (stem, layers, output; fix-ups
        included) flattened, then a one-hot op per layer."""
        if kind != "adjacency":
            return super().features(arch, kind)
        self.validate(arch)
        assert isinstance(arch, SkipChainArch)
        n = self.layers
        adj = np.zeros((n + 2, n + 2), dtype=np.float32)  # node 0 stem, 1..n layers, n+1 output
        for i, layer in enumerate(arch.layers):
            for j in layer.inputs or (STEM,):
                adj[j + 1, i + 1] = 1.0
        for j in (*arch.unused(), n - 1):
            adj[j + 1, n + 1] = 1.0
        ops = np.zeros((n, len(self.ops)), dtype=np.float32)
        for i, layer in enumerate(arch.layers):
            ops[i, self._op_index[layer.op]] = 1.0
        return np.concatenate([adj[np.triu_indices(n + 2, 1)], ops.ravel()])

    def diagram(self, arch: Architecture) -> Diagram:
        """Layers as nodes; chain and skip edges; fix-up edges labelled (stem -> reads-nothing
        layers, unused layers -> the final concat). Shape changes are in the layer labels: the
        filters, the stride, "inputs pooled" where a layer's inputs are average-pooled down to its
        stage's size (the ``reductions``), and the output size relative to the input ("out /4";
        the network stops halving below 4 px, which needs the task to know)."""
        self.validate(arch)
        assert isinstance(arch, SkipChainArch)
        d = Diagram(title=f"{self.name} ({self.reductions} reductions by pooling, skipped below 4 px): {arch}")
        w = self.width_scale
        d.node("input")
        d.edge("input", d.node("stem", f"stem conv3x3, {scale_count(self.stem_channels, w)} filters"))
        factor: dict[int, int] = {STEM: 1}  # output size of each layer as 1/factor of the input's
        for i, (layer, stage) in enumerate(zip(arch.layers, _stages(len(arch.layers), self.reductions))):
            reads = max(factor[j] for j in (layer.inputs or (STEM,)))
            size = max(reads, 2 ** stage)
            factor[i] = size * layer.stride
            notes = [f"stride {layer.stride}"] if layer.stride != 1 else []
            notes += ["inputs pooled"] if size > reads else []
            notes += [f"out /{factor[i]}"] if factor[i] > 1 else []
            d.node(f"L{i}", f"L{i}: {layer.op} {layer.kernel_h}x{layer.kernel_w}, "
                            f"{scale_count(layer.filters, w)} filters" + "".join(f", {n}" for n in notes))
        for i, layer in enumerate(arch.layers):
            if not layer.inputs:
                d.edge("stem", f"L{i}", "" if i == 0 else "fix-up: no input")
            for j in layer.inputs:
                d.edge(f"L{j}", f"L{i}", "" if j == i - 1 else "skip")
        last = f"L{self.layers - 1}"
        if arch.unused():
            final = (*arch.unused(), self.layers - 1)
            width = sum(scale_count(arch.layers[j].filters, w) for j in final)
            size = max(max(factor[j] for j in final), 2 ** self.reductions)  # pooled to the last stage's size
            d.node("concat", f"concat, {width} filters" + (f", out /{size}" if size > 1 else ""))
            for j in arch.unused():
                d.edge(f"L{j}", "concat", "fix-up: unused")
            d.edge(last, "concat")
            last = "concat"
        d.edge(last, d.node("head", "global avg pool + linear"))
        d.edge("head", "output")
        return d
