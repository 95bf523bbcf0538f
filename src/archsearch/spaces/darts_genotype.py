"""The DARTS genotype: a normal and a reduction cell as (op, input) pairs, its string forms and
the published genotypes.

Each cell has B intermediate nodes; node ``i`` sums two inputs, each an (op, input) pair whose
input counts *states* as in DARTS genotypes: 0 is ``c_{k-2}``, 1 is ``c_{k-1}`` and ``j >= 2``
the intermediate node ``j - 2``, so node ``i`` may take inputs 0..i+1. Canonical string form:
per cell, nodes joined by ``|``, each node's two ``op~input`` entries joined by ``,``; the two
cells as ``normal=...;reduce=...``. ``parse`` also reads DARTS's ``Genotype(normal=[...],
normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=range(2, 6))`` literal from its syntax
tree (``ast.literal_eval`` on each field: literals only, never evaluated) and the names
``DARTS_V1``, ``DARTS_V2`` and ``DARTS`` (= V2).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any


from archsearch.errors import ParseError
from archsearch.spaces.base import (
    Architecture,
)


# DARTS's PRIMITIVES order
OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")
PARAM_FREE_OPS = frozenset({"max_pool_3x3", "avg_pool_3x3", "skip_connect"})
CELLS = ("normal", "reduce")
MAX_NODES = 8
MAX_CELLS = 100
MAX_CHANNELS = 4096
# path encoding: paths up to this many edges are labelled by their op sequence; longer ones
# (possible only when nodes > 3) get one indicator per (cell, input, length), as BANANAS truncates
PATH_LABELLED_LENGTH = 3

Gene = tuple[tuple[str, int], ...]


# -- the genotype ---------------------------------------------------------------
def _check_genes(cell: str, genes: Gene) -> None:
    """Structural checks that need no space options: pairs per node, inputs in range."""
    if not genes or len(genes) % 2:
        raise ParseError(f"{cell} cell: {len(genes)} (op, input) pairs; each node takes exactly two "
                         f"and a cell has at least one node")
    for n, (op, j) in enumerate(genes):
        i = n // 2
        if not _OP_NAME.fullmatch(op):
            raise ParseError(f"{cell} node {i}: op {op!r} is not a name (letters, digits, _)")
        if not 0 <= j <= i + 1:
            raise ParseError(f"{cell} node {i}: input {j} is out of range (valid 0..{i + 1}: 0 and 1 are "
                             f"the cell inputs c_{{k-2}}, c_{{k-1}}, j >= 2 is intermediate node j-2)")


@dataclass(frozen=True)
class DartsArch(Architecture):
    """A DARTS genotype: per cell type, two (op, input) pairs per intermediate node, in node order.

    The order of a node's two pairs is kept (DARTS lists the stronger edge first); it does not
    change what the network computes, but it orders the edges' modules (``ops.2i``, ``ops.2i+1``),
    so swapped pairs keep distinct ids: inherited weights would otherwise land on the wrong edge.
    """

    normal: Gene
    reduce: Gene
    space = "darts"

    @property
    def nodes(self) -> int:
        return len(self.normal) // 2

    def __str__(self) -> str:
        return ";".join(f"{cell}=" + "|".join(
            f"{g[2 * i][0]}~{g[2 * i][1]},{g[2 * i + 1][0]}~{g[2 * i + 1][1]}" for i in range(len(g) // 2))
            for cell, g in (("normal", self.normal), ("reduce", self.reduce)))

    def genotype_literal(self) -> str:
        """The DARTS ``Genotype(...)`` form, for use with DARTS code (``parse`` reads it back)."""
        def pairs(g: Gene) -> str:
            return "[" + ", ".join(f"({op!r}, {j})" for op, j in g) + "]"

        def concat(g: Gene) -> str:
            return "[" + ", ".join(str(s) for s in range(2, 2 + len(g) // 2)) + "]"

        return (f"Genotype(normal={pairs(self.normal)}, normal_concat={concat(self.normal)}, "
                f"reduce={pairs(self.reduce)}, reduce_concat={concat(self.reduce)})")

    def sorted_inputs(self) -> "DartsArch":
        """The same network with each node's two pairs ordered by input index (what ``derive`` gives on ties)."""
        def srt(g: Gene) -> Gene:
            out: list[tuple[str, int]] = []
            for i in range(0, len(g), 2):
                a, b = g[i], g[i + 1]
                out += [b, a] if b[1] < a[1] else [a, b]
            return tuple(out)

        return DartsArch(srt(self.normal), srt(self.reduce))

    def to_dict(self) -> dict[str, Any]:
        return {"normal": [[op, j] for op, j in self.normal], "reduce": [[op, j] for op, j in self.reduce]}

    def canonical(self) -> dict[str, Any]:
        """What the cells compute from which state. A ``none`` edge's input is null (a zero map of the
        node's shape whatever it reads: a cell's states share one width and, after the stride, one
        size). A node that is ``none`` plus a stride-1 ``skip_connect`` is a copy of that state, and
        one whose edges are ``none`` or pools and skips of zero maps is a zero map (``"zero"``); an
        edge reading such a node reads what it copies, through the same module (both are
        intermediate states, or a normal cell's input: stride 1 either way)."""
        def cell(genes: Gene, reduction: bool) -> list[list[Any]]:
            same: list[Any] = list(range(2 + len(genes) // 2))  # each state: itself, a state it copies, "zero"
            out: list[list[Any]] = []
            for n, (op, j) in enumerate(genes):
                out.append([op, None if op == "none" else same[j] if type(j) is int and 0 <= j < len(same) else j])
                if n % 2:
                    pair = out[-2:]
                    if all(o == "none" or (o in PARAM_FREE_OPS and src == "zero") for o, src in pair):
                        same[2 + n // 2] = "zero"
                    elif sorted(o for o, _ in pair) == ["none", "skip_connect"]:
                        src = next(src for o, src in pair if o == "skip_connect")
                        if not (reduction and src < 2):  # from a reduction cell's input it is a FactorizedReduce
                            same[2 + n // 2] = src
            return out

        return {"normal": cell(self.normal, False), "reduce": cell(self.reduce, True)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DartsArch":
        cells = {}
        for cell in CELLS:
            items = data[cell]
            if not isinstance(items, list):
                raise ParseError(f"darts architecture JSON: {cell!r} must be a list of [op, input] pairs")
            genes = []
            for n, item in enumerate(items):
                if (not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str)
                        or type(item[1]) is not int):
                    raise ParseError(f"darts architecture JSON: {cell} entry {n} must be [op name, input index]")
                genes.append((item[0], item[1]))
            cells[cell] = tuple(genes)
            _check_genes(cell, cells[cell])
        return cls(cells["normal"], cells["reduce"])

    @classmethod
    def parse(cls, text: str) -> "DartsArch":
        text = text.strip()
        if text in NAMED:
            return NAMED[text]
        if text.startswith("Genotype"):
            return _parse_genotype(text)
        return _parse_canonical(text)


_OP_NAME = re.compile(r"[A-Za-z0-9_]+")
_INDEX = re.compile(r"[0-9]{1,4}")


def _parse_canonical(text: str) -> DartsArch:
    example = "normal=op~0,op~1|...;reduce=op~0,op~1|..."
    parts = text.split(";")
    if len(parts) != 2:
        raise ParseError(f"expected 'normal=...;reduce=...' (e.g. {example}), a DARTS Genotype(...) literal "
                         f"or a name ({', '.join(NAMED)})")
    cells: dict[str, Gene] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in CELLS:
            raise ParseError(f"{part.strip()[:40]!r}: expected normal=... or reduce=... (e.g. {example})")
        if key in cells:
            raise ParseError(f"the {key} cell is given twice")
        genes: list[tuple[str, int]] = []
        for i, node in enumerate(value.split("|")):
            entries = node.split(",")
            if len(entries) != 2:
                raise ParseError(f"{key} node {i} {node.strip()!r}: expected two op~input entries joined by ','")
            for entry in entries:
                op, tilde, j = (s.strip() for s in entry.partition("~"))
                if not tilde or not _OP_NAME.fullmatch(op) or not _INDEX.fullmatch(j):
                    raise ParseError(f"{key} node {i}: {entry.strip()!r} is not op~input (e.g. sep_conv_3x3~0)")
                genes.append((op, int(j)))
        cells[key] = tuple(genes)
        _check_genes(key, cells[key])
    return DartsArch(cells["normal"], cells["reduce"])


# -- the DARTS Genotype(...) literal, read as a syntax tree: never evaluated -----------
_GENOTYPE_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
MAX_LITERAL = 20_000  # characters: a genotype is a few hundred; the parser's recursion stays bounded


def _literal(node: ast.expr, key: str) -> Any:
    """``node`` as a Python literal (``ast.literal_eval``: no names, calls or operators), or ParseError."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        what = "list of integers or range(a, b)" if key.endswith("_concat") else "list of (op, input) pairs"
        raise ParseError(f"Genotype literal: {key} must be a literal {what}, got {ast.unparse(node)[:40]!r}") from None


def _concat(node: ast.expr, key: str) -> list[int]:
    """A ``*_concat`` field: a literal list of integers or ``range(a, b)`` of two integer literals."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and len(node.args) == 2:
        bounds = [_literal(a, key) for a in node.args]
        if all(type(b) is int and 0 <= b < 10_000 for b in bounds):
            return list(range(bounds[0], bounds[1]))
    value = _literal(node, key)
    if not isinstance(value, (list, tuple)) or not all(type(v) is int for v in value):
        raise ParseError(f"Genotype literal: {key} must be a list of integers or range(a, b), got {value!r}"[:160])
    return list(value)


def _pairs(node: ast.expr, key: str) -> Gene:
    value = _literal(node, key)
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) is int for p in value):
        raise ParseError(f"Genotype literal: {key} must be a list of ('op', input) pairs, got {value!r}"[:160])
    return tuple((op, j) for op, j in value)


def _parse_genotype(text: str) -> DartsArch:
    if len(text) > MAX_LITERAL:
        raise ParseError(f"Genotype literal: {len(text)} characters is too long (at most {MAX_LITERAL})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ParseError(f"Genotype literal: not valid syntax ({detail})") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"
            and not call.args):
        raise ParseError(f"Genotype literal: expected Genotype(normal=..., normal_concat=..., reduce=..., "
                         f"reduce_concat=...), got {ast.unparse(call)[:40]!r}")
    fields: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg not in _GENOTYPE_KEYS:
            raise ParseError(f"Genotype literal: unknown field {kw.arg!r} (valid: {', '.join(_GENOTYPE_KEYS)})")
        if kw.arg in fields:
            raise ParseError(f"Genotype literal: field {kw.arg!r} is given twice")
        fields[kw.arg] = _concat(kw.value, kw.arg) if kw.arg.endswith("_concat") else _pairs(kw.value, kw.arg)
    missing = [k for k in _GENOTYPE_KEYS if k not in fields]
    if missing:
        raise ParseError(f"Genotype literal: missing field(s) {', '.join(missing)}")
    for cell in CELLS:
        _check_genes(cell, fields[cell])
        want = list(range(2, 2 + len(fields[cell]) // 2))
        if fields[f"{cell}_concat"] != want:
            raise ParseError(f"Genotype literal: {cell}_concat={fields[cell + '_concat']} but this space "
                             f"concatenates all intermediate nodes: {want} for {len(want)} nodes")
    return DartsArch(fields["normal"], fields["reduce"])


# the published genotypes (Liu et al., 2019, DARTS repository genotypes.py)
DARTS_V1 = DartsArch(
    normal=(("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)),
)
DARTS_V2 = DartsArch(
    normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
)
NAMED = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2}
