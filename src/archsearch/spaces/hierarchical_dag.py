"""The hierarchical genotype: motifs and the cell as upper-triangular DAGs, and how they wire.

String form: ``m1=ROWS;m2=ROWS;...;cell=ROWS``. ``ROWS`` lists the upper triangle row by row,
rows separated by ``/`` and entries by ``,``: row ``j`` holds the edges from node ``j`` to nodes
``j+1 .. n-1``. A 4-node motif and a 5-node cell::

    m1=sep3,none,max3/id,dw3/conv1;...;m6=...;cell=m1,id,none,m4/m2,none,m3/m6,none/m1

:func:`dag_inputs` applies the orphan rule (a node with no incoming edge reads node 0 through
``id``), :func:`live_nodes` finds the nodes that reach the output, and :func:`dag_paths` the
labelled input->output paths the ``path`` predictor encoding counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from archsearch.errors import ParseError
from archsearch.spaces.base import Architecture

PATH_LABELLED_LENGTH = 3  # the path encoding names op sequences up to this length, longer ones by length only

_TOKEN_RE = re.compile(r"[A-Za-z0-9_]{1,32}", re.ASCII)


def n_edges(nodes: int) -> int:
    return nodes * (nodes - 1) // 2


def edge_list(nodes: int) -> list[tuple[int, int]]:
    """Upper-triangle edges (j, i) in the flat order: row by row over the source node j."""
    return [(j, i) for j in range(nodes) for i in range(j + 1, nodes)]


def nodes_for(entries: int) -> int | None:
    """The node count whose upper triangle has ``entries`` entries (None if not triangular)."""
    n = int((1 + (1 + 8 * entries) ** 0.5) / 2 + 0.5)
    return n if entries >= 1 and n_edges(n) == entries else None


def _rows(entries: Sequence[str]) -> str:
    n = nodes_for(len(entries)) or len(entries) + 1  # an invalid length still prints (as one row)
    out, k = [], 0
    for j in range(n - 1):
        width = n - 1 - j
        out.append(",".join(entries[k : k + width]))
        k += width
    return "/".join(r for r in out if r)


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

    def canonical(self) -> dict[str, Any]:
        """The DAGs as the network builds them: the cell's edges with each motif it uses written out
        in place of its name (so unused motifs, and which label a motif has, drop out), and in every
        DAG only the edges into live nodes, the orphan rule applied (an orphan's ``id`` from node 0)."""
        sizes = [nodes_for(len(m)) or 0 for m in (*self.motifs, self.cell)]
        if 0 in sizes:  # not a DAG (the space rejects it): nothing to normalise
            return self.to_dict()
        cell = built_entries(sizes[-1], self.cell)
        used = {op: int(op[1:]) - 1 for op in cell if op[:1] == "m" and op[1:].isdigit()}
        motifs = {op: built_entries(sizes[k], self.motifs[k]) for op, k in used.items() if 0 <= k < len(self.motifs)}
        return {"cell": [motifs.get(op, op) for op in cell]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HierarchicalArch":
        motifs, cell = data["motifs"], data["cell"]
        if not isinstance(motifs, list) or not all(isinstance(m, list) for m in motifs):
            raise ParseError("hierarchical architecture JSON: 'motifs' must be a list of lists of op names")
        for name, entries in [(f"m{k + 1}", m) for k, m in enumerate(motifs)] + [("cell", cell)]:
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise ParseError(f"hierarchical architecture JSON: {name} must be a list of op names")
            if nodes_for(len(entries)) is None:
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


def built_entries(nodes: int, entries: Sequence[str]) -> list[str]:
    """``entries`` with what the network builds of them: an edge into a node that does not reach the
    output is ``none``, an orphan reads node 0 through an explicit ``id`` (same network, one form)."""
    incoming = dag_inputs(nodes, entries)
    live = live_nodes(incoming)
    built = {(j, i): op for i in range(1, nodes) if live[i] for j, op in incoming[i]}
    return [built.get(e, "none") for e in edge_list(nodes)]


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
