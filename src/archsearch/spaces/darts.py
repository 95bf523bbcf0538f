"""NASNet/DARTS cells: a normal and a reduction cell, stacked by a fixed template.

Each cell has ``nodes`` (B) intermediate nodes. Node ``i`` (0-based) sums two inputs, each an
(op, input) pair; the input index counts *states* as in DARTS genotypes: 0 is the output of the
cell before the previous one (``c_{k-2}``), 1 the previous cell's (``c_{k-1}``) and ``j >= 2`` the
intermediate node ``j - 2``, so node ``i`` may take inputs 0..i+1. The cell's output
concatenates every intermediate node (DARTS's ``concat = [2, ..., B+1]``).

Canonical string form: per cell, nodes joined by ``|``, each node's two ``op~input`` entries
joined by ``,``; the two cells as ``normal=...;reduce=...``::

    normal=sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~1,skip_connect~0|skip_connect~0,dil_conv_3x3~2;reduce=max_pool_3x3~0,max_pool_3x3~1|skip_connect~2,max_pool_3x3~1|max_pool_3x3~0,skip_connect~2|skip_connect~2,max_pool_3x3~1

``parse`` also reads the DARTS genotype literal ``Genotype(normal=[('sep_conv_3x3', 0), ...],
normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`` (``range(2, 6)`` for a
concat too, as DARTS prints derived genotypes) with a small tokenizer, never ``eval``; and the
names ``DARTS_V1``, ``DARTS_V2`` and ``DARTS`` (= V2), the published genotypes.

Network (DARTS NetworkCIFAR): stem conv3x3 to 3C + BN; ``cells`` cells with reductions (stride
2 on the edges from the cell inputs, channels doubled) at ``cells // 3`` and ``2 * cells // 3``;
global average pool + linear. The optional auxiliary head sits after cell ``2 * cells // 3``.
"Search small, train big": ``channels``/``cells``/``auxiliary``/``drop_path`` are for the
search, the ``final_*`` options for :meth:`DartsSpace.final_space`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Options, all_of, as_dict, each_in, nonempty_distinct, option
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.spaces import checks
from archsearch.spaces.base import (
    Architecture, AuxiliaryClassifier, Decision, SearchSpace, create_space, register_space, scale_count,
)
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.ops import DilConv, FactorizedReduce, Identity, Pool, ReLUConvBN, SepConv, Zero

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
    change the network.
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


# -- the DARTS Genotype(...) literal, tokenized and parsed without eval -----------
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)|(?P<str>'[^'\\\n]*'|\"[^\"\\\n]*\")"
                    r"|(?P<punct>[()\[\],=]))")


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].isspace():
                break
            raise ParseError(f"Genotype literal: unexpected {text[pos:].lstrip()[:12]!r} "
                             f"(only names, integers, quoted op names and ( ) [ ] , = are allowed)")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Tokens:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "end of text")

    def take(self, kind: str, value: str | None = None, what: str = "") -> str:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            raise ParseError(f"Genotype literal: expected {what or repr(value)}, found {v!r}")
        self.pos += 1
        return v

    def accept(self, value: str) -> bool:
        if self.peek() == ("punct", value):
            self.pos += 1
            return True
        return False

    def integer(self) -> int:
        v = self.take("int", what="an integer")
        if len(v) > 4:
            raise ParseError(f"Genotype literal: integer {v[:8]}... is too large")
        return int(v)

    def pairs(self, key: str) -> Gene:
        self.take("punct", "[")
        genes = []
        while not self.accept("]"):
            self.take("punct", "(", what=f"'(' starting an (op, input) pair in {key}")
            op = self.take("str", what="a quoted op name")[1:-1]
            self.take("punct", ",")
            j = self.integer()
            self.accept(",")
            self.take("punct", ")")
            genes.append((op, j))
            if not self.accept(","):
                self.take("punct", "]", what=f"',' or ']' in {key}")
                break
        return tuple(genes)

    def concat(self, key: str) -> list[int]:
        if self.peek() == ("name", "range"):
            self.pos += 1
            self.take("punct", "(")
            lo = self.integer()
            self.take("punct", ",")
            hi = self.integer()
            self.take("punct", ")")
            return list(range(lo, hi))
        self.take("punct", "[", what=f"a list or range(...) for {key}")
        out = []
        while not self.accept("]"):
            out.append(self.integer())
            if not self.accept(","):
                self.take("punct", "]", what=f"',' or ']' in {key}")
                break
        return out


_GENOTYPE_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _parse_genotype(text: str) -> DartsArch:
    toks = _Tokens(_tokenize(text))
    toks.take("name", "Genotype")
    toks.take("punct", "(")
    fields: dict[str, Any] = {}
    while not toks.accept(")"):
        key = toks.take("name", what=f"a field name ({', '.join(_GENOTYPE_KEYS)})")
        if key not in _GENOTYPE_KEYS:
            raise ParseError(f"Genotype literal: unknown field {key!r} (valid: {', '.join(_GENOTYPE_KEYS)})")
        if key in fields:
            raise ParseError(f"Genotype literal: field {key!r} is given twice")
        toks.take("punct", "=")
        fields[key] = toks.concat(key) if key.endswith("_concat") else toks.pairs(key)
        if not toks.accept(","):
            toks.take("punct", ")", what="',' or ')'")
            break
    if toks.pos != len(toks.tokens):
        raise ParseError(f"Genotype literal: unexpected {toks.peek()[1]!r} after the closing ')'")
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


# -- operations -----------------------------------------------------------------
def edge_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """One cell edge: ``name`` from :data:`OPS` at width ``c``."""
    if name == "none":
        return Zero(c, stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], c, c, stride, affine)
    if name == "skip_connect":
        return Identity(c, c, stride, affine)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return SepConv(c, c, k, stride, k // 2, affine)
    return DilConv(c, c, k, stride, k - 1, 2, affine)  # dilation 2: padding k - 1 keeps the size


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p`` and rescale the rest (DARTS/NASNet regularizer)."""
    keep = 1.0 - p
    mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep)
    return x * mask / keep


def _preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to width ``c`` and the same map size (c_{k-2} is twice as large
    when the previous cell reduced)."""
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=affine)
    return pre0, ReLUConvBN(c_p, c, 1, affine=affine)


# -- the network built from a genotype --------------------------------------------
class DartsCell(nn.Module):
    def __init__(self, genes: Gene, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        strides = [2 if reduction and j < 2 else 1 for _, j in genes]
        self.ops = nn.ModuleList(edge_op(op, c, s) for (op, _), s in zip(genes, strides))
        self.inputs = [j for _, j in genes]
        # as DARTS: drop path on every edge except a plain identity
        self.droppable = [not (op == "skip_connect" and s == 1) for (op, _), s in zip(genes, strides)]
        self.nodes = len(genes) // 2

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(self.nodes):
            total = None
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]])
                if drop_prob > 0.0 and self.training and self.droppable[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS AuxiliaryHeadCIFAR: ReLU, avg-pool to 2x2, conv1x1 128, conv2x2 768, linear.

    DARTS pools with a 5x5 window at stride 3, which makes 2x2 only from 8..10-pixel maps (CIFAR
    at 2/3 depth); any other map size (8x8 digits give 2x2 there) is pooled adaptively to 2x2.
    """

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if 8 <= x.shape[2] <= 10 and 8 <= x.shape[3] <= 10:
            x = F.avg_pool2d(x, 5, stride=3, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


def reduction_cells(cells: int) -> set[int]:
    """Indices of the reduction cells: 1/3 and 2/3 of the depth (they coincide for 1 cell)."""
    return {cells // 3, 2 * cells // 3}


def _stem(c_in: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))


class DartsNetwork(nn.Module, AuxiliaryClassifier):
    """DARTS NetworkCIFAR for any input shape. ``drop_path_prob`` may be changed (scheduled) by a trainer."""

    def __init__(self, arch: DartsArch, task: Task, channels: int, cells: int, auxiliary: bool,
                 drop_path_prob: float = 0.0) -> None:
        super().__init__()
        c_stem = 3 * channels
        self.stem = _stem(task.input_shape[0], c_stem)
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_cells(cells)
        self.aux_index = 2 * cells // 3
        self.cells = nn.ModuleList()
        reduction_prev, c_aux = False, c_p
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = DartsCell(arch.reduce if reduction else arch.normal, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.nodes * c
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, task.num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_p, task.num_classes)
        self.drop_path_prob = drop_path_prob
        self.aux_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            # the auxiliary head ends in BatchNorm on a 1x1 map: in training a batch of one gives
            # it a single value per channel, which BatchNorm rejects, so that batch gets no aux loss
            if i == self.aux_index and self.auxiliary_head is not None and self.training and x.shape[0] > 1:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(s1.mean(dim=(2, 3)))


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
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, affine=False)
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
        self.stem = _stem(task.input_shape[0], c_stem)
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


# -- the space ------------------------------------------------------------------
def _even(value: int) -> Optional[str]:
    return "must be even (FactorizedReduce halves it)" if value % 2 else None


def _not_only_none(ops: Sequence[str]) -> Optional[str]:
    return f"needs an op other than 'none' (valid: {', '.join(OPS)})" if all(op == "none" for op in ops) else None


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
                                      check=all_of(nonempty_distinct, each_in(OPS), _not_only_none))
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
