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

Mutation follows the paper: pick a level (2 or 3), a motif of that level, a successor node
``i``, a predecessor ``j < i``, and replace the op on ``j -> i`` with a different one.

Predictor encodings: ``onehot`` (one block per decision) and ``path`` (BANANAS-style indicators
of the input->output paths through the cell, each motif edge expanded into the primitives on
the paths through that motif; see :meth:`HierarchicalSpace.features`).

The genotype and its DAG rules are in :mod:`hierarchical_dag`, the network in
:mod:`hierarchical_network`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.options import Options, all_of, each_in, nonempty_distinct, option
from archsearch.spaces.base import Architecture, Decision, SearchSpace, create_space, register_space, scale_count
from archsearch.spaces.checks import check_indices, require_image
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.hierarchical_dag import (PATH_LABELLED_LENGTH, HierarchicalArch, dag_inputs, dag_paths,
                                                edge_list, live_nodes, n_edges, nodes_for)
from archsearch.spaces.hierarchical_network import HierarchicalNet

PRIMITIVES = ("none", "conv1", "dw3", "sep3", "max3", "avg3", "id")
MAX_NODES = 10
MAX_MOTIFS = 20
_INT = {int}  # decode's fast path: indices that are all plain ints


@register_space("hierarchical")
class HierarchicalSpace(SearchSpace):
    """Level-1 primitives, level-2 motifs (DAGs of primitives), one level-3 DAG of motifs."""

    arch_type = HierarchicalArch

    @dataclass(frozen=True)
    class Options(Options):
        motifs: int = option(6, "level-2 motifs m1..mM", low=1, high=MAX_MOTIFS)
        motif_nodes: int = option(4, "nodes of each motif's DAG", low=2, high=MAX_NODES)
        cell_nodes: int = option(5, "nodes of the level-3 DAG", low=2, high=MAX_NODES)
        primitives: tuple[str, ...] = option(PRIMITIVES, "level-1 choices ('none' only if listed)",
                                             check=all_of(nonempty_distinct, each_in(PRIMITIVES)))
        channels: int = option(16, "stem width C (doubled at each downsampling)", low=1, high=4096)
        cells: int = option(1, "cells per stage", low=1, high=32)
        stages: int = option(3, "groups of cells (stages - 1 downsamplings)", low=1, high=8)

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"motifs": 2, "motif_nodes": 3, "cell_nodes": 3, "channels": 4}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.n_motifs, self.motif_nodes, self.cell_nodes = o.motifs, o.motif_nodes, o.cell_nodes
        self.primitives, self.channels, self.cells, self.stages = o.primitives, o.channels, o.cells, o.stages
        motifs, motif_nodes, cell_nodes = o.motifs, o.motif_nodes, o.cell_nodes
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
            have = nodes_for(len(entries))
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
            check_indices(indices, self._choice_counts(), self._names)
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
        require_image(task, self.name)
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
