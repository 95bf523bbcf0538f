"""DARTS's search network: every edge a mixture of the candidate ops, PC-DARTS's partial
channel connections (K) and the node groups its edge normalisation needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.spaces.base import (
    Architecture,
)
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.spaces.darts_genotype import CELLS, PARAM_FREE_OPS, DartsArch, Gene
from archsearch.spaces.darts_network import edge_op, preprocess, reduction_cells, stem

if TYPE_CHECKING:
    from archsearch.spaces.darts import DartsSpace


# -- the supernet (DARTS's search network) ----------------------------------------
def check_partial_channels(channels: int, partial_channels: Any) -> None:
    """PC-DARTS's K must be a positive integer dividing the search width (the edge ops get C/K channels)."""
    if partial_channels is None:
        return
    if type(partial_channels) is not int or partial_channels < 1:
        raise ConfigError(f"strategy.partial_channels must be an integer >= 1 or null, got {partial_channels!r}")
    if channels % partial_channels:
        divisors = [k for k in range(1, channels + 1) if channels % k == 0]
        raise ConfigError(f"strategy.partial_channels={partial_channels} must divide space.channels={channels} "
                          f"(valid: {', '.join(map(str, divisors[:12]))}{', ...' if len(divisors) > 12 else ''})")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) with channel g * C/groups + i moved to i * groups + g (ShuffleNet's shuffle)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def partial_mix(ops: Sequence[nn.Module], x: torch.Tensor, w: torch.Tensor, k: int) -> torch.Tensor:
    """PC-DARTS's partial channel connection: only the first C/K channels go through the mixed
    candidates (K times less memory and compute per edge); the rest bypass them unchanged
    (max-pooled 2x2 on a stride-2 edge, so the sizes match), and a K-group channel shuffle makes
    the next edge see a different part of the channels through its ops."""
    c = x.shape[1] // k
    y = mix(ops, x[:, :c], w)
    rest = x[:, c:]
    if y.shape[2:] != rest.shape[2:]:  # a stride-2 edge; ceil_mode halves odd sizes as the ops do
        rest = F.max_pool2d(rest, 2, 2, ceil_mode=True)
    return channel_shuffle(torch.cat([y, rest], dim=1), k)


class MixedCell(nn.Module):
    """Every edge i <- j (j in 0..i+1) holds every candidate; pools get a non-affine BN as in DARTS.

    ``partial`` (PC-DARTS's K): the candidates are built at width c / K and see only that part
    of the channels (:func:`partial_mix`); None runs every channel through them (DARTS).
    """

    def __init__(self, candidates: Sequence[str], nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, partial: int | None = None) -> None:
        super().__init__()
        self.reduction, self.nodes = reduction, nodes
        self.partial = partial if partial and partial > 1 else None  # K = 1 is DARTS itself
        self.pre0, self.pre1 = preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        c_op = c // partial if partial else c
        self.edges = nn.ModuleList()
        for i in range(nodes):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                cands = []
                for name in candidates:
                    op = edge_op(name, c_op, stride, affine=False)
                    if "pool" in name:
                        op = nn.Sequential(op, nn.BatchNorm2d(c_op, affine=False))
                    cands.append(op)
                self.edges.append(nn.ModuleList(cands))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(self.nodes):
            total = None
            for h in states:
                ops = self.edges[e]
                if self.partial:
                    y = partial_mix(ops, h, weights[e], self.partial)  # type: ignore[arg-type]
                else:
                    y = mix(ops, h, weights[e])  # type: ignore[arg-type]
                total = y if total is None else total + y
                e += 1
            states.append(total)  # type: ignore[arg-type]
        return torch.cat(states[2:], dim=1)


def _edge_offset(i: int) -> int:
    """Index of node i's first edge within a cell: sum over t < i of (t + 2)."""
    return i * (i + 3) // 2


class DartsSupernet(Supernet):
    """DARTS's search network at the space's search size (``channels``, ``cells``; no auxiliary head).

    Choice points: every edge of the normal cell, then every edge of the reduction cell, each
    shared by all cells of its type (DARTS's alphas_normal / alphas_reduce). Candidates: the
    space's ops plus ``none`` (appended if the space leaves it out: an unused edge is ``none``).

    ``node_groups`` lists, per cell type and node, the range of choice points (edges) entering
    that node: PC-DARTS's edge normalisation is a softmax over each such range.
    ``partial_channels`` (PC-DARTS's K) builds the edge candidates at 1/K of the width, see
    :class:`MixedCell`; None is DARTS's full supernet.
    """

    def __init__(self, space: "DartsSpace", task: Task, partial_channels: int | None = None) -> None:
        super().__init__()
        check_partial_channels(space.channels, partial_channels)
        self.space = space
        self.partial_channels = partial_channels
        self.candidates = space.ops + (() if "none" in space.ops else ("none",))
        self.none_index = self.candidates.index("none")
        self._cand_index = {name: k for k, name in enumerate(self.candidates)}
        b = space.nodes
        self.edges_per_cell = _edge_offset(b)
        self.choice_points = [ChoicePoint(f"{cell}.node{i}.input{j}", self.candidates)
                              for cell in CELLS for i in range(b) for j in range(i + 2)]
        self.param_free = frozenset(self.candidates) & PARAM_FREE_OPS
        self.skip_candidates = frozenset(self.candidates) & {"skip_connect"}
        e = self.edges_per_cell
        self.node_groups = [(c * e + _edge_offset(i), c * e + _edge_offset(i + 1)) for c in range(len(CELLS))
                            for i in range(b)]
        c_stem = 3 * space.channels
        self.stem = stem(task.input_shape[0], c_stem)
        c_pp, c_p, c = c_stem, c_stem, space.channels
        reductions = reduction_cells(space.cells)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(space.cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            self.cells.append(MixedCell(self.candidates, b, c_pp, c_p, c, reduction, reduction_prev,
                                        partial_channels))
            reduction_prev = reduction
            c_pp, c_p = c_p, b * c
        self.classifier = nn.Linear(c_p, task.num_classes)

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        e = self.edges_per_cell
        if len(weights) != 2 * e:
            raise ValueError(f"expected {2 * e} weight vectors (one per choice point), got {len(weights)}")
        w_normal, w_reduce = weights[:e], weights[e:]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(s1.mean(dim=(2, 3)))

    def derive(self, weights: Sequence[torch.Tensor]) -> DartsArch:
        """DARTS's rule: per node the two incoming edges with the strongest non-``none`` weight
        (stronger first, ties to the lower input), each with its strongest non-``none`` op
        (ties to the earlier candidate)."""
        rows = [[float(v) for v in torch.as_tensor(w).detach().flatten().cpu()] for w in weights]
        if len(rows) != len(self.choice_points) or any(len(r) != len(self.candidates) for r in rows):
            raise ValueError(f"expected {len(self.choice_points)} weight vectors of {len(self.candidates)} entries")
        keep = [k for k in range(len(self.candidates)) if k != self.none_index]
        cells = []
        for c in range(2):
            genes: list[tuple[str, int]] = []
            for i in range(self.space.nodes):
                edge = [rows[c * self.edges_per_cell + _edge_offset(i) + j] for j in range(i + 2)]
                best = sorted(range(i + 2), key=lambda j: -max(edge[j][k] for k in keep))[:2]
                for j in best:
                    k_best = max(keep, key=lambda k: (edge[j][k], -k))
                    genes.append((self.candidates[k_best], j))
            cells.append(tuple(genes))
        arch = DartsArch(cells[0], cells[1])
        self.space.validate(arch)
        return arch

    def path(self, arch: Architecture) -> list[int]:
        """Each edge's op, ``none`` where unused. A node whose two pairs share an input cannot be
        represented exactly (one edge, one op): that edge gets the first non-``none`` op of the two."""
        self.space.validate(arch)
        assert isinstance(arch, DartsArch)
        out = [self.none_index] * len(self.choice_points)
        for c, genes in enumerate((arch.normal, arch.reduce)):
            for n, (op, j) in enumerate(genes):
                e = c * self.edges_per_cell + _edge_offset(n // 2) + j
                if out[e] == self.none_index:
                    out[e] = self._cand_index[op]
        return out

    def as_run(self, arch: Architecture) -> Architecture:
        """A node whose two genes share an input runs one op there (see ``path``): the gene that did
        not run becomes ``none`` (which adds nothing), when the space offers ``none``."""
        assert isinstance(arch, DartsArch)
        if "none" not in self.space.ops:
            return arch

        def cell(genes: Gene) -> Gene:
            out = list(genes)
            for n in range(0, len(out), 2):
                (op_a, j_a), (op_b, j_b) = out[n], out[n + 1]
                if j_a == j_b and op_a != "none" and op_b != "none":
                    out[n + 1] = ("none", j_b)
            return tuple(out)

        return DartsArch(cell(arch.normal), cell(arch.reduce))
