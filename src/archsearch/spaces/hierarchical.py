"""Hierarchical representations (seed 002, "motifs instead of layers"; Liu et al. 2018).

Three levels, each a DAG whose edges are operations of the level below:

* level 1, primitives (all stride 1, ``C`` channels in and out; every conv is followed by
  BN + ReLU as in the paper): ``conv1`` 1x1 conv, ``dw3`` 3x3 depthwise conv, ``sep3`` 3x3
  separable conv (depthwise + 1x1), ``max3``/``avg3`` 3x3 max/average pooling, ``id``
  identity, and ``none`` (no edge);
* level 2, ``motifs`` motifs ``m1..mM``, each a DAG over ``motif_nodes`` nodes whose edges are
  primitives;
* level 3, one DAG over ``cell_nodes`` nodes whose edges are motifs, ``id`` or ``none``.

Every DAG is an upper-triangular adjacency matrix: node 0 is the input, the last node the
output, and node ``i`` merges the results of its incoming edges ``j -> i`` (``j < i``).
Merge: depthwise concatenation followed by a 1x1 conv-BN-ReLU back to ``C`` channels (the
paper's merge, made width-preserving); a node with one incoming edge passes it through.
**Orphan rule**: a node whose incoming edges are all ``none`` takes the DAG's input (node 0)
unchanged, so every matrix is a valid network; an all-``none`` motif is the identity. Nodes
that do not reach the output are not built (the diagram marks them "unused").

A motif that the level-3 DAG does not use is still part of the genotype (evolution keeps it
as latent material), so every decision vector is a distinct *genotype*; distinct genotypes can
still build the same network (unused motifs, edges into nodes that do not reach the output).

String form: ``m1=ROWS;m2=ROWS;...;cell=ROWS``. ``ROWS`` lists the upper triangle row by row,
rows separated by ``/`` and entries by ``,``: row ``j`` holds the edges from node ``j`` to nodes
``j+1 .. n-1``. A 4-node motif and a 5-node cell::

    m1=sep3,none,max3/id,dw3/conv1;...;m6=...;cell=m1,id,none,m4/m2,none,m3/m6,none/m1

Network (the paper's small CIFAR template): stem conv3x3-BN-ReLU with ``channels`` channels,
then ``stages`` groups of ``cells`` level-3 cells; between groups a 3x3 separable conv with
stride 2 that doubles the width (stride 1 once the map is below 4 pixels, so small inputs
work); global average pool, linear.

Mutation follows the paper: pick a level (2 or 3), a motif of that level, a successor node
``i``, a predecessor ``j < i``, and replace the op on ``j -> i`` with a different one.

Predictor encodings: ``onehot`` (one block per decision) and ``path`` (BANANAS-style indicators
of the input->output paths through the cell, each motif edge expanded into the primitives on
the paths through that motif; see :meth:`HierarchicalSpace.features`).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.spaces import checks, ops
from archsearch.spaces.base import Architecture, Decision, SearchSpace, create_space, register_space, scale_count
from archsearch.spaces.diagram import Diagram

PRIMITIVES = ("none", "conv1", "dw3", "sep3", "max3", "avg3", "id")
MAX_NODES = 10
MAX_MOTIFS = 20
PATH_LABELLED_LENGTH = 3  # the path encoding names op sequences up to this length, longer ones by length only

_TOKEN_RE = re.compile(r"[A-Za-z0-9_]{1,32}", re.ASCII)


def n_edges(nodes: int) -> int:
    return nodes * (nodes - 1) // 2


def edge_list(nodes: int) -> list[tuple[int, int]]:
    """Upper-triangle edges (j, i) in the flat order: row by row over the source node j."""
    return [(j, i) for j in range(nodes) for i in range(j + 1, nodes)]


def _nodes_for(entries: int) -> int | None:
    """The node count whose upper triangle has ``entries`` entries (None if not triangular)."""
    n = int((1 + (1 + 8 * entries) ** 0.5) / 2 + 0.5)
    return n if entries >= 1 and n_edges(n) == entries else None


def _rows(entries: Sequence[str]) -> str:
    n = _nodes_for(len(entries)) or len(entries) + 1  # an invalid length still prints (as one row)
    out, k = [], 0
    for j in range(n - 1):
        width = n - 1 - j
        out.append(",".join(entries[k : k + width]))
        k += width
    return "/".join(r for r in out if r)


_INT = {int}  # decode's fast path: indices that are all plain ints


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class HierarchicalArch(Architecture):
    """``motifs[k]`` and ``cell``: flat upper-triangular adjacency entries (order of :func:`edge_list`)."""

    motifs: tuple[tuple[str, ...], ...]
    cell: tuple[str, ...]
    space = "hierarchical"

    def __str__(self) -> str:
        parts = [f"m{k + 1}={_rows(m)}" for k, m in enumerate(self.motifs)]
        return ";".join(parts + [f"cell={_rows(self.cell)}"])

    def to_dict(self) -> dict[str, Any]:
        return {"motifs": [list(m) for m in self.motifs], "cell": list(self.cell)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HierarchicalArch":
        motifs, cell = data["motifs"], data["cell"]
        if not isinstance(motifs, list) or not all(isinstance(m, list) for m in motifs):
            raise ParseError("hierarchical architecture JSON: 'motifs' must be a list of lists of op names")
        for name, entries in [(f"m{k + 1}", m) for k, m in enumerate(motifs)] + [("cell", cell)]:
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise ParseError(f"hierarchical architecture JSON: {name} must be a list of op names")
            if _nodes_for(len(entries)) is None:
                raise ParseError(f"hierarchical architecture JSON: {name} has {len(entries)} entries, "
                                 f"not an upper triangle (1, 3, 6, 10, ...)")
        return cls(tuple(tuple(m) for m in motifs), tuple(cell))

    @classmethod
    def parse(cls, text: str) -> "HierarchicalArch":
        parts = [p.strip() for p in text.strip().split(";")]
        motifs: list[tuple[str, ...]] = []
        cell: tuple[str, ...] | None = None
        for k, part in enumerate(parts):
            name, sep, body = (s.strip() for s in part.partition("="))
            if not sep:
                raise ParseError(f"part {k + 1} {part[:30]!r}: expected NAME=ROWS, e.g. m1=sep3,none,max3/id,dw3/conv1")
            if cell is not None:
                raise ParseError(f"part {k + 1} {name[:20]!r}: 'cell=' must be the last part")
            expected = f"m{len(motifs) + 1}"
            if name not in (expected, "cell"):
                raise ParseError(f"part {k + 1}: expected {expected}= or cell=, got {name[:20]!r}=")
            entries = cls._parse_rows(name, body)
            if name == "cell":
                cell = entries
            else:
                motifs.append(entries)
        if cell is None:
            raise ParseError("missing the level-3 DAG: end with cell=ROWS, e.g. ...;cell=m1,id,none/m2,none/m1")
        return cls(tuple(motifs), cell)

    @staticmethod
    def _parse_rows(name: str, body: str) -> tuple[str, ...]:
        rows = [[t.strip() for t in row.split(",")] for row in body.split("/")]
        n = len(rows) + 1
        for j, row in enumerate(rows):
            if len(row) != n - 1 - j:
                shape = (", ".join(str(r) for r in range(n - 1, 0, -1)) if n <= 6 else f"{n - 1}, {n - 2}, ..., 1")
                raise ParseError(f"{name}: row {j + 1} has {len(row)} entries, expected {n - 1 - j} "
                                 f"({len(rows)} rows of an upper triangle have {shape} entries)")
            for tok in row:
                if not _TOKEN_RE.fullmatch(tok):
                    raise ParseError(f"{name}: row {j + 1}: {tok[:20]!r} is not an op name")
        return tuple(t for row in rows for t in row)


# -- level 1: primitives --------------------------------------------------------
def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def _sep_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 depthwise (stride) then 1x1 pointwise, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def primitive(name: str, c: int) -> nn.Module:
    """A level-1 operation on ``c`` channels at stride 1 (``none`` is never built)."""
    if name == "conv1":
        return _conv_bn_relu(c, c, 1)
    if name == "dw3":
        return _conv_bn_relu(c, c, 3, groups=c)
    if name == "sep3":
        return _sep_conv(c, c)
    if name in ("max3", "avg3"):
        return ops.Pool(name[:3], c, c, 1)
    if name == "id":
        return ops.Identity(c, c, 1)
    raise ValueError(f"no module for primitive {name!r}")


# -- levels 2 and 3: DAGs of the level below -------------------------------------
def dag_inputs(nodes: int, entries: Sequence[str]) -> list[list[tuple[int, str]]]:
    """Incoming non-none edges ``(j, op)`` of every node; orphans get ``[(0, "id")]`` (the orphan rule)."""
    incoming: list[list[tuple[int, str]]] = [[] for _ in range(nodes)]
    for (j, i), op in zip(edge_list(nodes), entries):
        if op != "none":
            incoming[i].append((j, op))
    for i in range(1, nodes):
        if not incoming[i]:
            incoming[i] = [(0, "id")]
    return incoming


def live_nodes(incoming: list[list[tuple[int, str]]]) -> list[bool]:
    """Nodes from which the output (last node) is reachable; the others are not computed."""
    live = [False] * len(incoming)
    live[-1] = True
    for i in range(len(incoming) - 1, 0, -1):
        if live[i]:
            for j, _ in incoming[i]:
                live[j] = True
    return live


class Dag(nn.Module):
    """A motif or cell: node i = merge(op_ji(node j) for incoming j); returns the last node."""

    def __init__(self, nodes: int, entries: Sequence[str], c: int, make_op: Callable[[str], nn.Module]) -> None:
        super().__init__()
        incoming = dag_inputs(nodes, entries)
        live = live_nodes(incoming)
        self.plan: list[tuple[int, list[tuple[int, str]]]] = []  # (node, [(source, edge key)])
        self.edges = nn.ModuleDict()
        self.merges = nn.ModuleDict()
        for i in range(1, nodes):
            if not live[i]:
                continue
            sources = []
            for j, op in incoming[i]:
                key = f"{j}_{i}"
                self.edges[key] = make_op(op)
                sources.append((j, key))
            if len(sources) > 1:
                self.merges[str(i)] = _conv_bn_relu(len(sources) * c, c, 1)
            self.plan.append((i, sources))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: dict[int, torch.Tensor] = {0: x}
        out = x
        for i, sources in self.plan:
            if len(sources) == 1:
                j, key = sources[0]
                out = self.edges[key](states[j])
            else:
                out = self.merges[str(i)](torch.cat([self.edges[key](states[j]) for j, key in sources], dim=1))
            states[i] = out
        return out


class HierarchicalNet(nn.Module):
    def __init__(self, arch: HierarchicalArch, task: Task, motif_nodes: int, cell_nodes: int,
                 channels: int, cells: int, stages: int) -> None:
        super().__init__()
        c, h = channels, min(task.input_shape[1:])
        self.stem = _conv_bn_relu(task.input_shape[0], c, 3)

        def make_cell(width: int) -> Dag:
            def level2(op: str) -> nn.Module:
                if op == "id":
                    return ops.Identity(width, width, 1)
                motif = arch.motifs[int(op[1:]) - 1]
                return Dag(motif_nodes, motif, width, lambda p: primitive(p, width))
            return Dag(cell_nodes, arch.cell, width, level2)

        body: list[nn.Module] = []
        for s in range(stages):
            if s > 0:
                stride = 2 if h >= 4 else 1  # never shrink a map below 2x2
                body.append(_sep_conv(c, 2 * c, stride))
                c, h = 2 * c, (h + stride - 1) // stride
            body += [make_cell(c) for _ in range(cells)]
        self.body = nn.Sequential(*body)
        self.head = nn.Linear(c, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, C, H', W')
        return self.head(x.mean(dim=(2, 3)))


# -- the path encoding ----------------------------------------------------------
# A path's label is the tuple of its op codes while it has at most PATH_LABELLED_LENGTH ops,
# afterwards just its length (an int): the sets stay small however many paths there are.
PathLabel = Any  # tuple[int, ...] | int


def _join(a: PathLabel, b: PathLabel) -> PathLabel:
    la = a if isinstance(a, int) else len(a)
    lb = b if isinstance(b, int) else len(b)
    if la + lb <= PATH_LABELLED_LENGTH:
        return a + b  # both are tuples: each is at most as long as the sum
    return la + lb


def dag_paths(nodes: int, entries: Sequence[str], edge_paths: Callable[[str], set]) -> set:
    """Labels of the input->output paths of a DAG (orphan rule included); ``edge_paths(op)``
    gives the labels of the paths through one edge."""
    incoming = dag_inputs(nodes, entries)
    arriving: list[set] = [{()}]
    for i in range(1, nodes):
        here: set = set()
        for j, op in incoming[i]:
            through = edge_paths(op)
            here |= {_join(a, b) for a in arriving[j] for b in through}
        arriving.append(here)
    return arriving[-1]


# -- the space ------------------------------------------------------------------
@register_space("hierarchical")
class HierarchicalSpace(SearchSpace):
    """Level-1 primitives, level-2 motifs (DAGs of primitives), one level-3 DAG of motifs."""

    arch_type = HierarchicalArch

    def __init__(
        self,
        motifs: int = 6,
        motif_nodes: int = 4,
        cell_nodes: int = 5,
        primitives: Sequence[str] = PRIMITIVES,
        channels: int = 16,
        cells: int = 1,
        stages: int = 3,
    ) -> None:
        """``primitives`` restricts the level-1 choices (``none`` included only if listed);
        ``channels`` is the stem width C (doubled at each downsampling); ``cells`` cells per
        stage; ``stages`` groups of cells (``stages - 1`` downsamplings)."""
        self.n_motifs = checks.check_int("motifs", motifs, 1, MAX_MOTIFS)
        self.motif_nodes = checks.check_int("motif_nodes", motif_nodes, 2, MAX_NODES)
        self.cell_nodes = checks.check_int("cell_nodes", cell_nodes, 2, MAX_NODES)
        self.primitives = checks.check_names("primitives", primitives, PRIMITIVES)
        self.channels = checks.check_int("channels", channels, 1, 4096)
        self.cells = checks.check_int("cells", cells, 1, 32)
        self.stages = checks.check_int("stages", stages, 1, 8)
        self.cell_ops = ("none", "id") + tuple(f"m{k + 1}" for k in range(motifs))
        self._prim_index = {p: i for i, p in enumerate(self.primitives)}
        self._cell_index = {p: i for i, p in enumerate(self.cell_ops)}
        self._e2, self._e3 = n_edges(motif_nodes), n_edges(cell_nodes)
        self._pos2 = {e: k for k, e in enumerate(edge_list(motif_nodes))}
        self._pos3 = {e: k for k, e in enumerate(edge_list(cell_nodes))}
        self._decisions = [Decision(f"m{k + 1}.{j}-{i}", self.primitives)
                           for k in range(motifs) for j, i in edge_list(motif_nodes)]
        self._decisions += [Decision(f"cell.{j}-{i}", self.cell_ops) for j, i in edge_list(cell_nodes)]
        self._names = tuple(d.name for d in self._decisions)
        self._count_list = self._choice_counts().tolist()
        # path encoding: codes of the primitives that compute something (id and none carry no label)
        self._path_ops = {p: k for k, p in enumerate(p for p in self.primitives if p not in ("none", "id"))}
        # levels a mutation can pick: level 2 only if there is a second primitive to switch to
        self._levels = (2, 3) if len(self.primitives) > 1 else (3,)

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, HierarchicalArch):
            raise ParseError(f"expected a 'hierarchical' architecture, got {type(arch).__name__}")
        if len(arch.motifs) != self.n_motifs:
            raise ParseError(f"expected {self.n_motifs} motifs m1..m{self.n_motifs} (space.motifs), "
                             f"got {len(arch.motifs)}")
        out: list[int] = []
        for k, motif in enumerate(arch.motifs):
            self._lookup(f"m{k + 1}", motif, self.motif_nodes, "motif_nodes", self._prim_index, out)
        self._lookup("cell", arch.cell, self.cell_nodes, "cell_nodes", self._cell_index, out)
        return out

    @staticmethod
    def _lookup(name: str, entries: Sequence[str], nodes: int, key: str, index: dict[str, int],
                out: list[int]) -> None:
        if len(entries) != n_edges(nodes):
            have = _nodes_for(len(entries))
            raise ParseError(f"{name}: expected a {nodes}-node DAG ({n_edges(nodes)} entries, space.{key}), got "
                             + (f"{have} nodes" if have else f"{len(entries)} entries"))
        try:
            out.extend([index[e] for e in entries])
        except (KeyError, TypeError):
            for (j, i), e in zip(edge_list(nodes), entries):
                if not isinstance(e, str) or e not in index:
                    raise ParseError(f"{name}: edge {j}->{i}: {str(e)[:20]!r} is not in the space "
                                     f"(valid: {', '.join(index)})") from None
            raise

    def decode(self, indices: Sequence[int]) -> HierarchicalArch:
        counts = self._count_list
        # plain in-range ints (what sample, mutate and encode produce) pass in a few C-level loops;
        # anything else goes through check_indices, which names the bad decision
        if not (len(indices) == len(counts) and set(map(type, indices)) == _INT
                and min(indices) >= 0 and all(map(operator.lt, indices, counts))):
            checks.check_indices(indices, self._choice_counts(), self._names)
        e2, m = self._e2, self.n_motifs
        p, c = self.primitives, self.cell_ops
        motifs = tuple(tuple([p[i] for i in indices[k * e2 : (k + 1) * e2]]) for k in range(m))
        return HierarchicalArch(motifs, tuple([c[i] for i in indices[m * e2 :]]))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> HierarchicalArch:
        """The paper's mutation: a level, a motif of it, a successor i, a predecessor j < i, a new op on j -> i.

        Unlike the paper, the new op always differs from the old one (exactly one decision changes).
        """
        idx = self.encode(arch)
        u = rng.random(5)
        level = self._levels[int(u[0] * len(self._levels))]
        nodes, pos, n_choices = ((self.motif_nodes, self._pos2, len(self.primitives)) if level == 2
                                 else (self.cell_nodes, self._pos3, len(self.cell_ops)))
        i = 1 + int(u[2] * (nodes - 1))
        j = int(u[3] * i)
        offset = (int(u[1] * self.n_motifs) * self._e2 if level == 2 else self.n_motifs * self._e2) + pos[(j, i)]
        new = int(u[4] * (n_choices - 1))
        idx[offset] = new + 1 if new >= idx[offset] else new
        return self.decode(idx)

    def build(self, arch: Architecture, task: Task) -> nn.Module:
        checks.require_image(task, self.name)
        self.validate(arch)
        assert isinstance(arch, HierarchicalArch)
        return HierarchicalNet(arch, task, self.motif_nodes, self.cell_nodes, self.channels, self.cells,
                               self.stages)

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """``channels`` times ``width`` and ``cells`` (per stage) times ``depth`` (rounded, at least 1)."""
        if width == 1.0 and depth == 1.0:
            return self
        return create_space("hierarchical", motifs=self.n_motifs, motif_nodes=self.motif_nodes,
                            cell_nodes=self.cell_nodes, primitives=list(self.primitives),
                            channels=scale_count(self.channels, width), cells=scale_count(self.cells, depth),
                            stages=self.stages)

    # -- encodings for predictors ------------------------------------------------------
    def feature_kinds(self) -> tuple[str, ...]:
        return ("onehot", "path")

    def max_path_length(self) -> int:
        """Most primitives on one input->output path: every cell edge a motif, every motif edge a primitive."""
        return (self.cell_nodes - 1) * (self.motif_nodes - 1)

    def path_length(self) -> int:
        """Length of the ``path`` vector: 1 (the op-free path) + k + k^2 + ... + k^L for the k
        labelled primitives and L = min(PATH_LABELLED_LENGTH, :meth:`max_path_length`), plus one
        entry per longer length up to :meth:`max_path_length`."""
        k, longest = len(self._path_ops), self.max_path_length()
        labelled = sum(k ** n for n in range(1, min(longest, PATH_LABELLED_LENGTH) + 1))
        return 1 + labelled + max(0, longest - PATH_LABELLED_LENGTH)

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """``onehot``: one block per decision. ``path`` (BANANAS-style): which input->output paths
        the network computes, labelled by their primitives.

        The paths run from the cell input to the cell output through the level-3 DAG; each motif
        edge on them is expanded into the paths through that motif's DAG, so a path is a sequence
        of primitives. The orphan rule applies at both levels (an orphan node is fed by the input
        through an identity), and ``id`` edges, identity orphans and all-``none`` motifs add no
        primitive: a path of only such edges is the op-free path (entry 0). Merges (concat+1x1)
        and the stem/downsampling layers are not part of the labels, and paths are a set: two
        paths with the same primitives set the same entry. Entry layout: 0 the op-free path; then
        every sequence of 1..PATH_LABELLED_LENGTH labelled primitives (``conv1, dw3, sep3, max3,
        avg3`` as far as ``space.primitives`` lists them), shorter first, each length in base-k
        order; then one entry per longer length ("some path has this many primitives").
        Only motifs the cell uses and nodes that reach the output matter, so genotypes that
        differ only there get the same vector. Length :meth:`path_length`.
        """
        if kind != "path":
            return super().features(arch, kind)
        self.validate(arch)
        assert isinstance(arch, HierarchicalArch)
        codes, nodes2 = self._path_ops, self.motif_nodes
        prim_paths = {p: {(codes[p],)} if p in codes else {()} for p in self.primitives}
        prim_paths["id"] = {()}  # the orphan rule's implicit identity
        motif_paths: dict[str, set] = {"id": {()}}

        def cell_edge(op: str) -> set:
            if op not in motif_paths:
                motif_paths[op] = dag_paths(nodes2, arch.motifs[int(op[1:]) - 1], prim_paths.__getitem__)
            return motif_paths[op]

        k, longest = len(codes), self.max_path_length()
        labelled = sum(k ** n for n in range(1, min(longest, PATH_LABELLED_LENGTH) + 1))
        starts = [1]  # where the sequences of each length begin
        for n in range(1, PATH_LABELLED_LENGTH + 1):
            starts.append(starts[-1] + k ** n)
        out = np.zeros(self.path_length(), dtype=np.float32)
        for label in dag_paths(self.cell_nodes, arch.cell, cell_edge):
            if isinstance(label, int):
                out[1 + labelled + label - PATH_LABELLED_LENGTH - 1] = 1.0
            else:
                num = 0  # the sequence as a base-k number
                for o in label:
                    num = num * k + o
                out[starts[len(label) - 1] + num if label else 0] = 1.0
        return out

    # -- pictures -------------------------------------------------------------------------
    def diagram(self, arch: Architecture) -> Diagram:
        """The level-3 DAG with motif-labelled edges, then every motif it uses as its own graph.

        Orphan nodes show their implicit input edge as ``id (no input)``; nodes that do not reach
        the output are labelled ``unused``; nodes with several inputs say ``concat+1x1``.
        """
        self.validate(arch)
        assert isinstance(arch, HierarchicalArch)
        d = Diagram(title=f"{self.name}: {arch}")
        self._draw_dag(d, "cell", "cell (level 3): each edge runs a motif", self.cell_nodes, arch.cell)
        used = sorted({int(op[1:]) for op in arch.cell if op.startswith("m")})
        for k in used:
            self._draw_dag(d, f"m{k}", f"motif m{k} (level 2): each edge runs an operation", self.motif_nodes,
                           arch.motifs[k - 1])
        return d

    @staticmethod
    def _draw_dag(d: Diagram, prefix: str, caption: str, nodes: int, entries: Sequence[str]) -> None:
        """One DAG as a framed group (``caption``) of nodes ``{prefix}.{i}``."""
        incoming = dag_inputs(nodes, entries)
        live = live_nodes(incoming)
        for i in range(nodes):
            label = "input" if i == 0 else "output" if i == nodes - 1 else f"node {i}"  # the group names the DAG
            notes = (["concat+1x1"] if len(incoming[i]) > 1 else []) + ([] if live[i] else ["unused"])
            d.node(f"{prefix}.{i}", label + (f" ({', '.join(notes)})" if notes else ""))
        for i in range(1, nodes):
            orphan = all(op == "none" for (j, k), op in zip(edge_list(nodes), entries) if k == i)
            for j, op in incoming[i]:
                d.edge(f"{prefix}.{j}", f"{prefix}.{i}", "id (no input)" if orphan else op)
        d.group(caption, [f"{prefix}.{i}" for i in range(nodes)])
