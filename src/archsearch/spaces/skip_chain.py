"""Chains with skip connections: Zoph & Le's global space, with an ENAS-macro supernet.

Every layer picks an operation, a filter height and width, a number of filters, optionally a
stride, and an *anchor point*: the set of earlier layers it reads (any subset, seed 000). The
seed's orphan fix-ups make every anchor choice a valid network:

* a layer that reads no earlier layer reads the stem output (the image after the stem conv);
* every layer whose output no later layer reads (the last one aside) is concatenated with the
  last layer's output before the head.

The genotype and its string form are in :mod:`skip_chain_arch`, the network (widths
concatenate, sizes pool down) in :mod:`skip_chain_network`, the supernet in
:mod:`skip_chain_supernet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Options, all_of, each_between, each_in, invalid, nonempty_distinct, option
from archsearch.spaces.base import (INPUT_CHOICES, Architecture, Decision, DecisionKind, SearchSpace, register_space,
                                    scale_count, scaled_copy, sized_kind)
from archsearch.spaces.checks import odd_kernels, require_image
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.skip_chain_arch import SkipChainArch, SkipLayer, check_inputs
from archsearch.spaces.skip_chain_network import STEM, SkipChainNet, layer_stages
from archsearch.spaces.skip_chain_supernet import SkipChainSupernet

__all__ = ["OPS", "SkipChainArch", "SkipChainSpace", "SkipLayer"]

OPS = ("conv", "sep_conv", "max_pool", "avg_pool")



_SIZES = all_of(nonempty_distinct, each_between(1, 4096))


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

    @dataclass(frozen=True)
    class Options(Options):
        layers: int = option(6, "layers of the chain", low=1, high=64)
        ops: tuple[str, ...] = option(OPS, "operations a layer chooses from",
                                      check=all_of(nonempty_distinct, each_in(OPS)))
        kernels: tuple[int, ...] = option((1, 3, 5, 7), "filter heights and widths (odd)",
                                          check=all_of(_SIZES, odd_kernels))
        filters: tuple[int, ...] = option((24, 36, 48, 64), "filter counts a layer chooses from", check=_SIZES)
        strides: tuple[int, ...] = option((1,), "strides (a decision only when more than one)", check=_SIZES)
        stem_channels: int = option(32, "width of the stem conv", low=1, high=4096)
        reductions: Optional[int] = option(None, "fixed 2x downsamplings (null: 2, at most layers - 1)",
                                           low=0, high=64)
        supernet_filters: Optional[int] = option(None, "the supernet's one width (null: the largest filters)")

        def __post_init__(self) -> None:
            if self.reductions is not None and self.reductions > self.layers - 1:
                raise invalid("reductions", f"must be at most space.layers - 1 = {self.layers - 1}, got "
                                            f"{self.reductions} (a reduction after the last layer would only "
                                            "shrink the map the head averages)")
            if self.supernet_filters is not None and self.supernet_filters not in self.filters:
                raise invalid("supernet_filters", f"must be one of space.filters "
                                                  f"({', '.join(map(str, self.filters))}), got {self.supernet_filters}")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {
        "layers": 4, "kernels": [1, 3], "filters": [4, 8], "strides": [1, 2], "stem_channels": 4}
    small_supernet_options: ClassVar[Mapping[str, Any]] = {
        "layers": 3, "filters": [4, 8], "supernet_filters": 8, "stem_channels": 4}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.layers, self.ops, self.stem_channels = o.layers, o.ops, o.stem_channels
        self.kernels, self.filters, self.strides = o.kernels, o.filters, o.strides
        self.reductions = min(2, o.layers - 1) if o.reductions is None else o.reductions
        self.supernet_filters = max(o.filters) if o.supernet_filters is None else o.supernet_filters
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
        kernels = sized_kind(self.kernels)
        for i in range(self.layers):
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
        return [(pos, d.node, d.source) for pos, d in enumerate(self._decisions)
                if d.kind is DecisionKind.INPUTS and d.node is not None and d.source is not None]

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
                check_inputs(i, inputs)
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
        require_image(task, self.name)
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
        require_image(task, self.name)
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
        for i, (layer, stage) in enumerate(zip(arch.layers, layer_stages(len(arch.layers), self.reductions))):
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
