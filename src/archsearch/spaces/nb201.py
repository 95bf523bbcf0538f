"""NAS-Bench-201: one 4-node cell with 6 op-labelled edges, stacked in the fixed NB201 skeleton.

The cell's nodes are 0 (input) to 3 (output); its edges, in the order the genotype lists them,
are 0->1, 0->2, 1->2, 0->3, 1->3, 2->3, and each node is the sum of its incoming edges. The
string form is exactly NAS-Bench-201's, so ``str(arch)`` is the key of its tabular results::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

(node 1's incoming edges, ``+``, node 2's, ``+``, node 3's; ``op~j`` reads from node j).

Network (NB201's ``TinyNetwork`` with ``InferCell``, C = ``channels``, N = ``cells_per_stage``):
stem conv3x3 (no bias) + BN; N cells at C; residual reduction block; N cells at 2C; residual
reduction block; N cells at 4C; BN -> ReLU -> global average pool -> linear. With the defaults on
CIFAR-10 shapes it has exactly 73,306 + 243,040 * n3 + 28,000 * n1 parameters (n3, n1: the
cell's 3x3 and 1x1 conv edges), the count NAS-Bench-201 reports. The one deviation: the
reduction shortcut's 2x2 average pool uses ``ceil_mode`` so odd map sizes line up with the
stride-2 conv (identical on the even sizes NB201 uses); so any (C, H, W) input works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.options import Options, all_of, each_in, nonempty_distinct, option
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.spaces.base import Architecture, Decision, SearchSpace, create_space, register_space, scale_count
from archsearch.spaces.checks import not_only_none, require_image
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.ops import Identity, Pool, ReLUConvBN, Zero

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # NB201's order
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to), in string order
# per node 1..3: (edge index, source node) of its incoming edges
INCOMING = (((0, 0),), ((1, 0), (2, 1)), ((3, 0), (4, 1), (5, 2)))
# every input->output path as edge indices: 0->3, 0->1->3, 0->2->3, 0->1->2->3
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class NB201Arch(Architecture):
    """The 6 edge ops in NB201 order (0->1, 0->2, 1->2, 0->3, 1->3, 2->3).

    ``canonical`` is ``to_dict``: every edge is built where the genotype puts it, with its parameters
    even when 'none' edges cut it off from the output (and NAS-Bench-201's table tells such cells apart).
    """

    ops: tuple[str, ...]
    space = "nb201"

    def __str__(self) -> str:
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NB201Arch":
        ops = data["ops"]
        if not isinstance(ops, list) or len(ops) != len(EDGES) or not all(isinstance(o, str) for o in ops):
            raise ParseError(f"nb201 architecture JSON: 'ops' must be a list of {len(EDGES)} op names")
        return cls(tuple(ops))

    @classmethod
    def parse(cls, text: str) -> "NB201Arch":
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ParseError(f"expected 3 nodes joined by '+', got {len(nodes)} "
                             f"(NAS-Bench-201 form, e.g. {EXAMPLE})")
        ops: list[str] = []
        for i, node in enumerate(nodes, start=1):
            node = node.strip()
            if len(node) < 2 or node[0] != "|" or node[-1] != "|":
                raise ParseError(f"node {i} {node!r}: edges must sit between pipes, like "
                                 f"|{'|'.join(f'op~{j}' for j in range(i))}|")
            tokens = node[1:-1].split("|")
            if len(tokens) != i:
                raise ParseError(f"node {i} {node!r}: needs {i} incoming edge(s) "
                                 f"({', '.join(f'~{j}' for j in range(i))}, separated by '|'), got {len(tokens)}")
            for j, tok in enumerate(tokens):
                name, sep, src = tok.partition("~")
                name = name.strip()
                if not sep:
                    raise ParseError(f"node {i} edge {tok!r}: expected op~input, e.g. nor_conv_3x3~{j}")
                if src.strip() != str(j):
                    raise ParseError(f"node {i} edge {tok!r}: edge {j + 1} of node {i} must read from "
                                     f"node {j} (~{j})")
                if name not in OPS:
                    raise ParseError(f"node {i} edge {tok!r}: unknown op {name!r} (valid: {', '.join(OPS)})")
                ops.append(name)
        return cls(tuple(ops))


# -- operations and blocks ------------------------------------------------------
def _edge_op(name: str, c: int, affine: bool = True) -> nn.Module:
    """One cell edge at width ``c``, stride 1 (NB201 cells never change shape)."""
    if name == "none":
        return Zero(c, 1)
    if name == "skip_connect":
        return Identity(c, c, 1)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, padding=1, affine=affine)
    return Pool("avg", c, c, 1, affine=affine)  # avg_pool_3x3, count_include_pad=False


class ResidualReduction(nn.Module):
    """NB201's ``ResNetBasicblock`` at stride 2: ReLUConvBN(3x3, s2) -> ReLUConvBN(3x3), plus AvgPool(2) -> conv1x1."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, padding=1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, padding=1)
        # ceil_mode: odd maps give the same size as the stride-2 conv (NB201's even maps are unaffected)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Cell(nn.Module):
    """A fixed cell (NB201's ``InferCell``). ``edges[i]`` is edge i of the genotype.

    'none' edges are kept as modules (so indices match the genotype) but not computed: adding
    zeros changes nothing. A node with no live input is a zero map, still fed to its out-edges,
    since a conv edge's BN turns zeros into its bias.
    """

    def __init__(self, ops: Sequence[str], c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_edge_op(o, c) for o in ops)
        self.incoming = tuple(tuple((e, src) for e, src in node if ops[e] != "none") for node in INCOMING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in self.incoming:
            acc: torch.Tensor | None = None
            for e, src in node:
                y = self.edges[e](nodes[src])
                acc = y if acc is None else acc + y
            nodes.append(torch.zeros_like(x) if acc is None else acc)
        return nodes[3]


class MixedCell(nn.Module):
    """A supernet cell: every edge holds every candidate, mixed by the weights of its choice point."""

    def __init__(self, ops: Sequence[str], c: int) -> None:
        super().__init__()
        # affine=False as in DARTS/GDAS/SETN on NB201: learned BN scales would absorb the mixing weights
        self.edges = nn.ModuleList(nn.ModuleList(_edge_op(o, c, affine=False) for o in ops) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        nodes = [x]
        for node in INCOMING:
            acc: torch.Tensor | None = None
            for e, src in node:
                y = mix(self.edges[e], nodes[src], weights[e])
                acc = y if acc is None else acc + y
            nodes.append(acc)  # type: ignore[arg-type]
        return nodes[3]


def _skeleton(task: Task, c: int, n: int, make_cell: Any) -> tuple[nn.Module, list[nn.Module], nn.Module, nn.Module]:
    """Stem, the stacked layers (cells and reduction blocks), the head activation, the classifier."""
    channels_in = require_image(task, "nb201")[0]
    stem = nn.Sequential(nn.Conv2d(channels_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    widths = (c, 2 * c, 4 * c)
    layers: list[nn.Module] = []
    for stage, w in enumerate(widths):
        if stage:
            layers.append(ResidualReduction(widths[stage - 1], w))
        layers += [make_cell(w) for _ in range(n)]
    lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU())
    return stem, layers, lastact, nn.Linear(widths[-1], task.num_classes)


class NB201Net(nn.Module):
    def __init__(self, ops: Sequence[str], task: Task, channels: int, cells_per_stage: int) -> None:
        super().__init__()
        stem, layers, lastact, classifier = _skeleton(task, channels, cells_per_stage,
                                                      lambda w: NB201Cell(ops, w))
        self.stem, self.cells, self.lastact, self.classifier = stem, nn.Sequential(*layers), lastact, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))  # (B, 4C, H/4, W/4)
        return self.classifier(x.mean(dim=(2, 3)))


class NB201Supernet(Supernet):
    """The NB201 skeleton with every cell edge a choice point; the 6 choice points are shared by all cells.

    Each cell keeps its own candidate weights; only the architecture weights are shared, as in
    DARTS/GDAS/SETN on NB201 (one alpha matrix for the whole network).
    """

    def __init__(self, space: "NB201Space", task: Task) -> None:
        super().__init__()
        self.space = space
        self.choice_points = [ChoicePoint(d.name, space.ops) for d in space.decisions()]
        self.param_free = frozenset(space.ops) & {"skip_connect", "avg_pool_3x3"}
        self.skip_candidates = frozenset(space.ops) & {"skip_connect"}
        stem, layers, lastact, classifier = _skeleton(task, space.channels, space.cells_per_stage,
                                                      lambda w: MixedCell(space.ops, w))
        self.stem, self.cells, self.lastact, self.classifier = stem, nn.ModuleList(layers), lastact, classifier

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(weights) != len(self.choice_points):
            raise ValueError(f"nb201 supernet: expected {len(self.choice_points)} weight vectors, got {len(weights)}")
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, weights) if isinstance(layer, MixedCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(x.mean(dim=(2, 3)))

    def derive(self, weights: Sequence[torch.Tensor]) -> NB201Arch:
        """Argmax per edge ('none' included), NB201's rule."""
        return NB201Arch(tuple(self.space.ops[int(torch.argmax(w))] for w in weights))

    def path(self, arch: Architecture) -> list[int]:
        return self.space.encode(arch)


# -- the space ------------------------------------------------------------------
@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 (5^6 = 15,625 cells with the default ops).

    Options: ``channels`` (C, default 16: stages at C, 2C, 4C), ``cells_per_stage`` (default 5),
    ``ops`` (a subset of none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3; kept in
    that order, which is the order of each decision's choices).
    """

    arch_type = NB201Arch
    has_supernet = True

    @dataclass(frozen=True)
    class Options(Options):
        channels: int = option(16, "C: the stages are C, 2C and 4C wide", low=1, high=4096)
        cells_per_stage: int = option(5, "cells in each of the three stages", low=1, high=64)
        ops: tuple[str, ...] = option(OPS, "operations an edge chooses from (kept in NB201's order)",
                                      check=all_of(nonempty_distinct, each_in(OPS), not_only_none))

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"channels": 4, "cells_per_stage": 1}
    small_supernet_options: ClassVar[Mapping[str, Any]] = {"channels": 4, "cells_per_stage": 1}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.channels, self.cells_per_stage = self.opts.channels, self.opts.cells_per_stage
        self.ops = tuple(op for op in OPS if op in self.opts.ops)
        self._index = {op: i for i, op in enumerate(self.ops)}
        self._path_index = {op: i for i, op in enumerate(o for o in self.ops if o != "none")}
        self._decisions = [Decision(f"edge{s}->{t}", self.ops) for s, t in EDGES]

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, NB201Arch):
            raise ParseError(f"expected a 'nb201' architecture, got {type(arch).__name__}")
        if len(arch.ops) != len(EDGES):
            raise ParseError(f"expected {len(EDGES)} edge ops, got {len(arch.ops)}")
        try:
            return [self._index[op] for op in arch.ops]
        except (KeyError, TypeError):
            e = next(i for i, op in enumerate(arch.ops) if op not in self._index)
            s, t = EDGES[e]
            raise ParseError(f"edge {s}->{t}: op {arch.ops[e]!r} is not in the space "
                             f"(valid: {', '.join(self.ops)})") from None

    def decode(self, indices: Sequence[int]) -> NB201Arch:
        if len(indices) != len(EDGES):
            raise ParseError(f"expected {len(EDGES)} decisions, got {len(indices)}")
        n = len(self.ops)
        if any(not 0 <= i < n for i in indices):
            raise ParseError(f"decision indices must be in 0..{n - 1}, got {list(indices)}")
        return NB201Arch(tuple(self.ops[i] for i in indices))

    # -- fast operators (strategies call these in tight loops) ----------------------
    def sample(self, rng: np.random.Generator) -> NB201Arch:
        ops = self.ops
        return NB201Arch(tuple(ops[i] for i in rng.integers(len(ops), size=len(EDGES)).tolist()))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> NB201Arch:
        """Change exactly one edge to a different op."""
        idx = self.encode(arch)
        n = len(self.ops)
        if n < 2:
            return arch  # type: ignore[return-value]
        edge, new = divmod(int(rng.integers(len(EDGES) * (n - 1))), n - 1)
        if new >= idx[edge]:
            new += 1
        ops = list(arch.ops)  # type: ignore[attr-defined]
        ops[edge] = self.ops[new]
        return NB201Arch(tuple(ops))

    # -- building ---------------------------------------------------------------------
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        self.validate(arch)
        assert isinstance(arch, NB201Arch)
        return NB201Net(arch.ops, task, self.channels, self.cells_per_stage)

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """``channels`` times ``width`` and ``cells_per_stage`` times ``depth`` (rounded, at least 1)."""
        if width == 1.0 and depth == 1.0:
            return self
        return create_space("nb201", channels=scale_count(self.channels, width),
                            cells_per_stage=scale_count(self.cells_per_stage, depth), ops=list(self.ops))

    def supernet(self, task: Task) -> NB201Supernet:
        return NB201Supernet(self, task)

    # -- encodings and pictures -------------------------------------------------------
    def feature_kinds(self) -> tuple[str, ...]:
        return ("onehot", "path")

    def path_length(self) -> int:
        """k + k^2 + k^3 for the k non-'none' ops (84 with all five ops)."""
        k = len(self._path_index)
        return k + k * k + k ** 3

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """``onehot``: 6 blocks of len(ops). ``path`` (BANANAS): one indicator per op sequence.

        The cell's input->output paths are 0->3, 0->1->3, 0->2->3 and 0->1->2->3; a path exists
        when none of its edges is 'none' and is labelled by its op sequence (o_1..o_L, input
        side first, each o_j an index into the k non-'none' ops). It sets entry
        (k + ... + k^(L-1)) + sum_j o_j * k^(L-j); length :meth:`path_length`. Paths 0->1->3 and
        0->2->3 with the same ops share an entry, as BANANAS labels paths by ops only.
        """
        if kind != "path":
            return super().features(arch, kind)
        self.validate(arch)
        assert isinstance(arch, NB201Arch)
        k, index = len(self._path_index), self._path_index
        out = np.zeros(self.path_length(), dtype=np.float32)
        for path in PATHS:
            code = 0
            for e in path:
                op = arch.ops[e]
                if op == "none":
                    break
                code = code * k + index[op]
            else:
                out[sum(k ** length for length in range(1, len(path))) + code] = 1.0
        return out

    def diagram(self, arch: Architecture) -> Diagram:
        """The cell DAG: nodes 0 (input) to 3 (output) in four columns, one op-labelled edge per
        live edge. ``none`` edges are left out (they carry nothing; the title counts them), and
        each node keeps its own column even when an edge into it is ``none``."""
        self.validate(arch)
        assert isinstance(arch, NB201Arch)
        c, n = self.channels, self.cells_per_stage
        dropped = sum(op == "none" for op in arch.ops)
        note = f"; {dropped} 'none' edge{'s' if dropped != 1 else ''} not drawn" if dropped else ""
        d = Diagram(title=f"nb201 cell ({n} per stage at {c}/{2 * c}/{4 * c} channels, nodes sum their inputs"
                          f"{note}): {arch}")
        for i, label in enumerate(("node 0 (input)", "node 1", "node 2", "node 3 (output)")):
            d.node(f"node{i}", label, layer=i)
        for (s, t), op in zip(EDGES, arch.ops):
            if op != "none":
                d.edge(f"node{s}", f"node{t}", op)
        return d
