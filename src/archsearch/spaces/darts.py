"""The DARTS cell space (NASNet/DARTS normal + reduction cells, one-shot capable).

Files: ``darts_genotype.py`` (the genotype, its string forms, the published genotypes),
``darts_network.py`` (the network a genotype builds), ``darts_supernet.py`` (the search network,
PC-DARTS); this file is the registered space: options, the decision encoding, features and
diagrams. "Search small, train big": ``channels``/``cells``/``auxiliary``/``drop_path`` are for
the search, the ``final_*`` options for :meth:`DartsSpace.final_space`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ParseError
from archsearch.options import Options, all_of, as_dict, each_in, nonempty_distinct, option
from archsearch.spaces import checks
from archsearch.spaces.checks import not_only_none
from archsearch.spaces.base import (
    Architecture, Decision, SearchSpace, create_space, register_space, scale_count,
)
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.darts_genotype import (
    CELLS, DARTS_V1, DARTS_V2, MAX_CELLS, MAX_CHANNELS, MAX_NODES, NAMED, OPS, PATH_LABELLED_LENGTH, DartsArch,
)
from archsearch.spaces.darts_network import DartsNetwork, reduction_cells
from archsearch.spaces.darts_supernet import DartsSupernet, check_partial_channels

__all__ = ["DARTS_V1", "DARTS_V2", "NAMED", "OPS", "DartsArch", "DartsNetwork", "DartsSpace", "DartsSupernet"]


# -- the space ------------------------------------------------------------------
def _even(value: int) -> Optional[str]:
    return "must be even (FactorizedReduce halves it)" if value % 2 else None


@register_space("darts")
class DartsSpace(SearchSpace):
    """NASNet/DARTS normal + reduction cells (one-shot capable).

    Decisions, per cell type, node i and each of its two inputs k: ``{cell}.node{i}.op{k}``
    (the ``ops`` option) and ``{cell}.node{i}.input{k}`` (0..i+1).

    Option ranges: ``channels``/``final_channels`` even, 2..4096; ``cells``/``final_cells``
    1..100; ``nodes`` 1..8; ``drop_path``/``final_drop_path`` in [0, 1).
    """

    arch_type = DartsArch
    has_supernet = True
    supernet_partial_channels = True
    supernet_node_groups = True

    @dataclass(frozen=True)
    class Options(Options):
        channels: int = option(16, "search width C (even: FactorizedReduce halves it)", low=2, high=MAX_CHANNELS,
                               check=_even)
        cells: int = option(8, "cells of the search network", low=1, high=MAX_CELLS)
        nodes: int = option(4, "intermediate nodes per cell", low=1, high=MAX_NODES)
        auxiliary: bool = option(False, "an auxiliary head during search training")
        ops: tuple[str, ...] = option(OPS, "operations an edge chooses from",
                                      check=all_of(nonempty_distinct, each_in(OPS), not_only_none))
        final_channels: int = option(36, "width of the final network (search small, train big)", low=2,
                                     high=MAX_CHANNELS, check=_even)
        final_cells: int = option(20, "cells of the final network", low=1, high=MAX_CELLS)
        final_auxiliary: bool = option(True, "an auxiliary head in final training")
        drop_path: float = option(0.0, "drop-path probability in search training", low=0, below=1)
        final_drop_path: float = option(0.0, "drop-path probability in final training", low=0, below=1)

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"channels": 4, "cells": 3, "nodes": 3, "final_channels": 4,
                                                  "final_cells": 3}
    small_supernet_options: ClassVar[Mapping[str, Any]] = {"channels": 4, "cells": 2, "nodes": 2}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.channels, self.cells, self.nodes, self.auxiliary = o.channels, o.cells, o.nodes, o.auxiliary
        self.final_channels, self.final_cells, self.final_auxiliary = o.final_channels, o.final_cells, \
            o.final_auxiliary
        self.drop_path, self.final_drop_path = o.drop_path, o.final_drop_path
        self.ops: tuple[str, ...] = o.ops
        nodes = o.nodes
        self._op_index = {op: k for k, op in enumerate(self.ops)}
        self._decisions = [
            Decision(f"{cell}.node{i}.{what}{k}", self.ops if what == "op" else tuple(range(i + 2)))
            for cell in CELLS for i in range(nodes) for k in (0, 1) for what in ("op", "input")
        ]
        self._path_ops = {op: k for k, op in enumerate(o for o in self.ops if o != "none")}

    def _all_options(self) -> dict[str, Any]:
        return {**as_dict(self.opts), "ops": list(self.ops)}

    # -- the canonical encoding --------------------------------------------------
    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, DartsArch):
            raise ParseError(f"expected a 'darts' architecture, got {type(arch).__name__}")
        idx: list[int] = []
        for cell, genes in (("normal", arch.normal), ("reduce", arch.reduce)):
            if len(genes) != 2 * self.nodes:
                raise ParseError(f"{cell} cell: expected {self.nodes} nodes (space.nodes), "
                                 f"got {len(genes) // 2}")
            for n, (op, j) in enumerate(genes):
                i = n // 2
                k = self._op_index.get(op)
                if k is None:
                    raise ParseError(f"{cell} node {i}: op {op!r} is not in the space (valid: {', '.join(self.ops)})")
                if type(j) is not int or not 0 <= j <= i + 1:
                    raise ParseError(f"{cell} node {i}: input {j!r} is out of range (valid 0..{i + 1})")
                idx += (k, j)
        return idx

    def decode(self, indices: Sequence[int]) -> DartsArch:
        n = 4 * self.nodes
        if len(indices) != 2 * n:
            raise ParseError(f"expected {2 * n} decisions, got {len(indices)}")
        ops, cells = self.ops, []
        for c in range(2):
            genes = []
            for p in range(c * n, c * n + n, 2):
                k, j = indices[p], indices[p + 1]
                if not (0 <= k < len(ops) and 0 <= j < (p % n) // 4 + 2):
                    raise ParseError(f"decision index out of range at {self._decisions[p].name}")
                genes.append((ops[k], int(j)))
            cells.append(tuple(genes))
        return DartsArch(cells[0], cells[1])

    # -- building ----------------------------------------------------------------
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        checks.require_image(task, self.name)
        self.validate(arch)
        assert isinstance(arch, DartsArch)
        return DartsNetwork(arch, task, self.channels, self.cells, self.auxiliary, self.drop_path)

    def final_space(self) -> "DartsSpace":
        """The same space at the final-training size (``final_channels``, ``final_cells``, ...)."""
        options = {**self._all_options(), "channels": self.final_channels, "cells": self.final_cells,
                   "auxiliary": self.final_auxiliary, "drop_path": self.final_drop_path}
        return create_space("darts", **options)  # type: ignore[return-value]

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> "DartsSpace":
        """The same space with ``channels`` times ``width`` (kept even, at least 2) and ``cells``
        times ``depth`` (at least 1): a fidelity's network scale."""
        if width == 1.0 and depth == 1.0:
            return self
        options = {**self._all_options(), "channels": scale_count(self.channels, width, 2, even=True),
                   "cells": scale_count(self.cells, depth, 1)}
        return create_space("darts", **options)  # type: ignore[return-value]

    def check_partial_channels(self, partial_channels: int) -> None:
        check_partial_channels(self.channels, partial_channels)

    def supernet(self, task: Task, partial_channels: int | None = None) -> DartsSupernet:
        """DARTS's search network; ``partial_channels`` K: PC-DARTS's partial channel connections
        (K must divide ``channels``)."""
        checks.require_image(task, self.name)
        return DartsSupernet(self, task, partial_channels)

    # -- encodings for predictors and pictures -----------------------------------
    def feature_kinds(self) -> tuple[str, ...]:
        return ("onehot", "path")

    def path_length(self) -> int:
        """Length of the ``path`` encoding: per cell type and cell input, one indicator per op
        sequence (ops other than none) of 1..PATH_LABELLED_LENGTH edges, plus one per longer length."""
        k = len(self._path_ops)
        labelled = sum(k ** n for n in range(1, min(self.nodes, PATH_LABELLED_LENGTH) + 1))
        return 4 * (labelled + max(0, self.nodes - PATH_LABELLED_LENGTH))

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """``path`` (BANANAS): which input->output paths exist, labelled by their op sequence.

        Every intermediate node feeds the cell output, so a path is a cell input followed by a
        chain of edges ending at any node; edges with ``none`` carry nothing and break a path.
        """
        if kind != "path":
            return super().features(arch, kind)
        self.validate(arch)
        assert isinstance(arch, DartsArch)
        k = len(self._path_ops)
        block = self.path_length() // 4  # per (cell type, cell input): labelled sequences, then longer lengths
        labelled = block - max(0, self.nodes - PATH_LABELLED_LENGTH)
        out = np.zeros(4 * block, dtype=np.float32)
        for c, genes in enumerate((arch.normal, arch.reduce)):
            arriving: list[set[tuple[int, tuple[int, ...]]]] = []
            for i in range(self.nodes):
                here: set[tuple[int, tuple[int, ...]]] = set()
                for op, j in genes[2 * i : 2 * i + 2]:
                    if op == "none":
                        continue
                    o = self._path_ops[op]
                    here |= {(j, (o,))} if j < 2 else {(s, seq + (o,)) for s, seq in arriving[j - 2]}
                arriving.append(here)
            for s, seq in set().union(*arriving):
                base = (2 * c + s) * block
                if len(seq) <= PATH_LABELLED_LENGTH:
                    num = 0  # the op sequence as a base-k number, after all shorter sequences
                    for o in seq:
                        num = num * k + o
                    out[base + sum(k ** n for n in range(1, len(seq))) + num] = 1.0
                else:
                    out[base + labelled + len(seq) - PATH_LABELLED_LENGTH - 1] = 1.0
        return out

    def diagram(self, arch: Architecture) -> Diagram:
        """Both cells, each framed: c_{k-2}, c_{k-1} -> intermediate nodes 0..B-1 -> c_{k} (their
        concatenation); edges labelled by op (``none`` edges are left out: they connect nothing).
        In the reduction cell the ops reading c_{k-2}, c_{k-1} have stride 2, so c_{k} is half the
        size with twice the channels. The title gives the network's stacking of the cells."""
        self.validate(arch)
        assert isinstance(arch, DartsArch)
        cells = self.cells
        reductions = sorted(reduction_cells(cells))
        d = Diagram(title=f"darts: {cells} cells from C={self.channels} channels, reduction cells at "
                          f"{', '.join(str(r + 1) for r in reductions)} (each /2 size, 2x channels), "
                          f"the others normal; {self.nodes} nodes per cell")
        for cell, genes in (("normal", arch.normal), ("reduce", arch.reduce)):
            inputs = [d.node(f"{cell}.c_k-2", "c_{k-2}", layer=0), d.node(f"{cell}.c_k-1", "c_{k-1}", layer=0)]
            nodes = [d.node(f"{cell}.{i}", f"node {i}") for i in range(self.nodes)]
            out = d.node(f"{cell}.c_k", f"c_{{k}} = concat({self.nodes} x C)" + (", /2" if cell == "reduce" else ""))
            for n, (op, j) in enumerate(genes):
                if op != "none":
                    d.edge((inputs + nodes)[j], nodes[n // 2], op)
            for node in nodes:
                d.edge(node, out)
            d.group("normal cell" if cell == "normal" else "reduction cell (ops on c_{k-2}, c_{k-1} have stride 2)",
                    inputs + nodes + [out])
        return d
