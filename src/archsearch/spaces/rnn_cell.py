"""Recurrent cells as NAS trees with cell injection (Zoph & Le, "Neural Architecture Search with
Reinforcement Learning", ICLR 2017, section 3.4 and appendix A).

A cell maps (x_t, h_{t-1}, c_{t-1}) to (h_t, c_t) through a balanced binary tree. Its nodes are
numbered level by level, leaves first: with 2 leaves the tree indices are 0, 1 (leaves) and 2 (root);
with 8 leaves, 0-7 are the leaves, 8-11 the next level (8 = (0, 1), 9 = (2, 3), ...), 12-13 the
next and 14 the root. Every node has a combine and an activation:

- leaf i:      a_i = act_i(combine_i(W_i x_t + b_i, U_i h_{t-1} + b'_i))
- inner node:  a_k = act_k(combine_k(a_left, a_right))
- injection:   right after node j is computed, a_j <- act_inj(combine_inj(a_j, c_{t-1})) (no parameters)
- outputs:     h_t = the root; c_t = node m's value before its activation (its combine's output,
               before any injection into that same node).

The string form is the paper's token sequence: a combine and an activation per node in index
order, then the injection's combine and activation, then the two indices m (new cell state) and
j (injection target). The seed's example, ``[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add,
ReLU, 1, 0]``, is the 2-leaf cell a_0 = tanh(W_0 x + U_0 h), a_1 = relu(W_1 x * U_1 h),
a_0 <- relu(a_0 + c_{t-1}), h_t = a_2 = sigmoid(a_0 * a_1), c_t = W_1 x * U_1 h. Tokens are
case-insensitive and the brackets optional; ``LSTM`` and ``NASCELL`` name the published cells.

Every leaf has its own input and recurrent projections, with biases (as torch.nn.LSTM has
``b_ih`` and ``b_hh``), so a cell with L leaves has L * H * (input + H + 2) parameters, less where
a linear subtree (``Add`` nodes over ``Identity``-activated ``Add`` leaves) folds into one
projection (:func:`projected_nodes`; same function class). A layer computes W x for the whole
sequence in one matmul and U h for all projections in one matmul per step; the rest of a step is
a few elementwise ops (benchmarks/rnn_cell_speed.py measures it against torch.nn.LSTM).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces.base import Architecture, Decision, SearchSpace, create_space, register_space, scale_count
from archsearch.spaces.checks import check_bool, check_indices, check_int, check_names, check_prob
from archsearch.spaces.diagram import Diagram

COMBINES = ("add", "mul", "max")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
# canonical tokens (the paper's spelling) and the names parse accepts, lower-cased
COMBINE_TOKENS = {"add": "Add", "mul": "Multiply", "max": "Max"}
ACTIVATION_TOKENS = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid", "identity": "Identity"}
COMBINE_NAMES = {"add": "add", "multiply": "mul", "mul": "mul", "max": "max"}
ACTIVATION_NAMES = {"tanh": "tanh", "relu": "relu", "sigmoid": "sigmoid", "identity": "identity"}
LEAVES = (2, 4, 8)
MAX_LEAVES = 64  # what parse accepts (a power of two); spaces offer LEAVES
EXAMPLE = "[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0]"
_INDEX = re.compile(r"[0-9]+")


# -- the tree -------------------------------------------------------------------
def tree_children(leaves: int) -> list[tuple[int, int]]:
    """(left, right) child indices of the inner nodes ``leaves .. 2*leaves-2``, in index order."""
    out: list[tuple[int, int]] = []
    start, width = 0, leaves
    while width > 1:
        nxt = start + width
        out += [(start + 2 * j, start + 2 * j + 1) for j in range(width // 2)]
        start, width = nxt, width // 2
    return out


def _leaf_count(tokens: int) -> Optional[int]:
    """Leaves of a tree whose token sequence has ``tokens`` tokens (4 * leaves + 2), else None."""
    if tokens < 10 or (tokens - 2) % 4:
        return None
    leaves = (tokens - 2) // 4
    return leaves if leaves & (leaves - 1) == 0 and leaves <= MAX_LEAVES else None


# -- the genotype ---------------------------------------------------------------
@dataclass(frozen=True)
class RNNCellArch(Architecture):
    """The tree's (combine, activation) per node in index order, the injection's (combine,
    activation), the node whose pre-activation value is c_t, and the node c_{t-1} is injected into.

    Names are the internal ones (:data:`COMBINES`, :data:`ACTIVATIONS`); ``str`` gives the tokens.
    """

    nodes: tuple[tuple[str, str], ...]
    inject: tuple[str, str]
    cell_index: int
    inject_index: int
    space = "rnn_cell"

    @property
    def leaves(self) -> int:
        return (len(self.nodes) + 1) // 2

    def tokens(self) -> list[str]:
        out: list[str] = []
        for combine, act in (*self.nodes, self.inject):
            out += [COMBINE_TOKENS.get(combine, combine), ACTIVATION_TOKENS.get(act, act)]
        return out + [str(self.cell_index), str(self.inject_index)]

    def __str__(self) -> str:
        return "[" + ", ".join(self.tokens()) + "]"

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [list(n) for n in self.nodes], "inject": list(self.inject),
                "cell_index": self.cell_index, "inject_index": self.inject_index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RNNCellArch":
        nodes, inject = data["nodes"], data["inject"]
        pair = lambda p: isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)  # noqa: E731
        if not isinstance(nodes, list) or not all(pair(n) for n in nodes) or not pair(inject):
            raise ParseError("rnn_cell architecture JSON: 'nodes' must be a list of [combine, activation] "
                             "pairs and 'inject' one pair")
        ints = [data["cell_index"], data["inject_index"]]
        if any(not isinstance(i, int) or isinstance(i, bool) for i in ints):
            raise ParseError("rnn_cell architecture JSON: 'cell_index' and 'inject_index' must be integers")
        arch = cls(tuple((a, b) for a, b in nodes), (inject[0], inject[1]), ints[0], ints[1])
        arch.check()
        return arch

    def check(self) -> None:
        """Raise ParseError unless this is a well-formed tree (any leaf count that is a power of two)."""
        n = len(self.nodes)
        if _leaf_count(2 * n + 4) is None:
            raise ParseError(f"rnn_cell: {n} tree nodes is not a balanced binary tree (2 * leaves - 1 nodes, "
                             f"leaves a power of two from 2 to {MAX_LEAVES})")
        for where, (combine, act) in [*((f"node {k}", p) for k, p in enumerate(self.nodes)), ("inject", self.inject)]:
            if combine not in COMBINES:
                raise ParseError(f"rnn_cell {where}: unknown combine {combine!r} (valid: {', '.join(COMBINES)})")
            if act not in ACTIVATIONS:
                raise ParseError(f"rnn_cell {where}: unknown activation {act!r} (valid: {', '.join(ACTIVATIONS)})")
        for what, i in (("cell_index", self.cell_index), ("inject_index", self.inject_index)):
            if not 0 <= i < n:
                raise ParseError(f"rnn_cell {what} {i} is not a tree index (0..{n - 1})")

    @classmethod
    def parse(cls, text: str) -> "RNNCellArch":
        body = text.strip()
        named = NAMED.get(body.upper())
        if named is not None:
            return named
        if body.startswith("[") != body.endswith("]"):
            raise ParseError(f"unbalanced brackets in {body!r}: write the tokens as {EXAMPLE} (brackets optional)")
        if body.startswith("["):
            body = body[1:-1]
        tokens = [t.strip() for t in body.split(",")]
        leaves = _leaf_count(len(tokens))
        if leaves is None:
            raise ParseError(
                f"expected 4 * leaves + 2 comma-separated tokens (10 for 2 leaves, 18 for 4, 34 for 8: a combine "
                f"and an activation per tree node, the injection's combine and activation, then the cell index "
                f"and the inject index, e.g. {EXAMPLE}; or a name: {', '.join(NAMED)}), got {len(tokens)}")
        n = 2 * leaves - 1
        total = len(tokens)

        def pick(pos: int, role: str, table: dict[str, str], kind: str, canon: dict[str, str]) -> str:
            tok = tokens[pos]
            name = table.get(tok.lower())
            if name is None:
                raise ParseError(f"token {pos + 1} of {total} {tok!r} ({role}): unknown {kind} "
                                 f"(valid: {', '.join(canon.values())})")
            return name

        pairs: list[tuple[str, str]] = []
        for k in range(n + 1):
            role = f"node {k}" if k < n else "inject"
            pairs.append((pick(2 * k, f"{role} combine", COMBINE_NAMES, "combine", COMBINE_TOKENS),
                          pick(2 * k + 1, f"{role} activation", ACTIVATION_NAMES, "activation", ACTIVATION_TOKENS)))
        indices = []
        for pos, role in ((total - 2, "cell index"), (total - 1, "inject index")):
            tok = tokens[pos]
            if not _INDEX.fullmatch(tok) or int(tok) >= n:
                raise ParseError(f"token {pos + 1} of {total} {tok!r} ({role}): expected a tree index "
                                 f"0..{n - 1} ({leaves} leaves)")
            indices.append(int(tok))
        return cls(tuple(pairs[:n]), pairs[n], indices[0], indices[1])


NAMED: dict[str, RNNCellArch] = {}  # filled below; parse looks names up here (upper-cased)


# The LSTM in this encoding needs 8 leaves: c_t = f * c_{t-1} + i * g is a sum of two products, so
# the node adding them (12) has two children that are products: 9 = i * g (leaves 2, 3) and
# 8 = f, into which c_{t-1} is injected by multiplication; f = sigmoid(leaf 0 + leaf 1) sits one
# level above the leaves, so the adding node is two levels up and the root (h = tanh(c) * o, with
# o = sigmoid(node 10 + node 11) = sigmoid(leaves 4..7)) a third: a balanced tree of 8 leaves.
# Leaves 0-1 and 4-7 are linear (Add, Identity) and fold (see projected_nodes) into nodes 8 and 13:
# the built cell has 4 projections, i, g, f, o, and exactly torch.nn.LSTMCell's parameters.
LSTM = RNNCellArch.parse(
    "[Add, Identity, Add, Identity, Add, Sigmoid, Add, Tanh, Add, Identity, Add, Identity, Add, Identity, "
    "Add, Identity, Add, Sigmoid, Multiply, Identity, Add, Identity, Add, Identity, Add, Tanh, Add, Sigmoid, "
    "Multiply, Identity, Multiply, Identity, 12, 8]")
LSTM_GATES = {"i": 2, "f": 8, "g": 3, "o": 13}  # the node each gate's projections feed (after folding)

# The NASCell (the paper's figure 8, as TensorFlow's tf.contrib.rnn.NASCell / tfa.rnn.NASCell implement it):
# leaves sigmoid(+), relu(+), sigmoid(+), relu(*), tanh(+), sigmoid(+), tanh(+), sigmoid(+);
# 8 = tanh(0 * 1), 9 = tanh(2 + 3), 10 = tanh(4 * 5), 11 = sigmoid(6 + 7); c_{t-1} injected into 8
# as tanh(a_8 + c_{t-1}); 12 = 8 * 9 with identity, which is the new cell state; 13 = tanh(10 + 11);
# h_t = root 14 = tanh(12 * 13). Derived from the equations of TensorFlow's NASCell (one block per
# tree level, "inject the cell" after the second), which its ports document; seed 003 shows the
# paper's figure only as an image, so the token order (level by level) is this module's numbering.
NASCELL = RNNCellArch.parse(
    "[Add, Sigmoid, Add, ReLU, Add, Sigmoid, Multiply, ReLU, Add, Tanh, Add, Sigmoid, Add, Tanh, Add, Sigmoid, "
    "Multiply, Tanh, Add, Tanh, Multiply, Tanh, Add, Sigmoid, Multiply, Identity, Add, Tanh, Multiply, Tanh, "
    "Add, Tanh, 12, 8]")
NAMED.update({"LSTM": LSTM, "NASCELL": NASCELL})


# -- operations -----------------------------------------------------------------
def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


COMBINE_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "mul": torch.mul, "max": torch.maximum}
ACTIVATION_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": _identity}


# -- the cell and the recurrent layer --------------------------------------------
def projected_nodes(arch: RNNCellArch) -> list[int]:
    """The nodes computed straight from one projection pair (W x + b, U h + b'), in index order.

    Every leaf is one, unless it is folded into its parent: an ``Add`` node whose two children are
    linear (an ``Add`` leaf, or a folded node, with ``Identity`` activation, that is neither the
    cell-state node nor the injection target) has a pre-activation W_a x + U_a h + W_b x + U_b h =
    (W_a + W_b) x + (U_a + U_b) h: one projection pair instead of two, the same function class.
    Folding repeats upwards, so a linear subtree costs one matmul slice, not one per leaf (the LSTM
    encoding needs 8 leaves but folds to its 4 gates, exactly torch.nn.LSTM's parameters).
    """
    projected, parent = _fold(arch)
    return [k for k in range(len(arch.nodes)) if projected[k] and not (k in parent and projected[parent[k]])]


def _fold(arch: RNNCellArch) -> tuple[list[bool], dict[int, int]]:
    """Per node: is it computed from projections alone (a leaf, or a folded linear subtree)? And each node's parent."""
    L, n = arch.leaves, len(arch.nodes)
    special = {arch.cell_index, arch.inject_index}
    projected = [k < L for k in range(n)]
    linear = [k < L and arch.nodes[k] == ("add", "identity") and k not in special for k in range(n)]
    parent: dict[int, int] = {}
    for k, (a, b) in enumerate(tree_children(L), start=L):
        parent[a] = parent[b] = k
        if arch.nodes[k][0] == "add" and linear[a] and linear[b]:
            projected[k] = True
            linear[k] = arch.nodes[k][1] == "identity" and k not in special
    return projected, parent


class RNNTreeCell(nn.Module):
    """One step of a tree cell: ``forward(x_t, (h, c)) -> (h_t, c_t)``, shapes (B, input), (B, H).

    Parameters as torch.nn.LSTMCell names them: ``weight_ih`` (P*H, input), ``weight_hh`` (P*H, H),
    ``bias_ih`` and ``bias_hh`` (P*H), where P = len(``projection_nodes``) (see :func:`projected_nodes`;
    P = leaves unless linear subtrees fold); rows ``p*H:(p+1)*H`` belong to node ``projection_nodes[p]``.
    """

    def __init__(self, arch: RNNCellArch, input_size: int, hidden_size: int) -> None:
        super().__init__()
        arch.check()
        self.arch, self.input_size, self.hidden_size = arch, input_size, hidden_size
        self.cell_index, self.inject_index = arch.cell_index, arch.inject_index  # read by step
        self.projection_nodes = projected_nodes(arch)
        P = len(self.projection_nodes)
        self.weight_ih = nn.Parameter(torch.empty(P * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(P * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(P * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(P * hidden_size))
        self.reset_parameters()
        # the compiled plan: the projected nodes' combines (a folded node adds), then the inner
        # nodes left to compute, in index order (children before parents)
        L = arch.leaves
        combine = lambda k: arch.nodes[k][0] if k < L else "add"  # noqa: E731
        self._all_add = all(combine(k) == "add" for k in self.projection_nodes)
        self._proj_combine = [COMBINE_OPS[combine(k)] for k in self.projection_nodes]
        self._acts = [None if a == "identity" else ACTIVATION_OPS[a] for _, a in arch.nodes]
        projected, _ = _fold(arch)
        self._inner = [(k, a, b, COMBINE_OPS[arch.nodes[k][0]])
                       for k, (a, b) in enumerate(tree_children(L), start=L) if not projected[k]]
        inj_act = arch.inject[1]
        self._inject = (COMBINE_OPS[arch.inject[0]], None if inj_act == "identity" else ACTIVATION_OPS[inj_act])

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch.nn.LSTM."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, leaves={self.arch.leaves}, "
                f"projections={len(self.projection_nodes)}, arch={self.arch}")

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """W x + b for every projection, any leading shape: (..., input) -> (..., P*H).

        When every projected node adds, U's bias is folded in here and :meth:`step` adds U h with
        one addmm.
        """
        bias = self.bias_ih + self.bias_hh if self._all_add else self.bias_ih
        return F.linear(x, self.weight_ih, bias)

    def step(self, wx: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the projected input ``wx`` (B, P*H) and the state (B, H) each."""
        H = self.hidden_size
        if self._all_add:
            pre = torch.addmm(wx, h, self.weight_hh.t()).split(H, dim=1)
        else:
            uh = torch.addmm(self.bias_hh, h, self.weight_hh.t()).split(H, dim=1)
            pre = [op(a, b) for op, a, b in zip(self._proj_combine, wx.split(H, dim=1), uh)]
        m, j = self.cell_index, self.inject_index
        acts, (inj_combine, inj_act) = self._acts, self._inject
        values: list[Any] = [None] * len(acts)
        c_new = c
        for k, p in zip(self.projection_nodes, pre):
            values[k] = self._node(k, p, acts[k], j, c, inj_combine, inj_act)
            if k == m:
                c_new = p
        for k, a, b, op in self._inner:
            p = op(values[a], values[b])
            values[k] = self._node(k, p, acts[k], j, c, inj_combine, inj_act)
            if k == m:
                c_new = p
        return values[-1], c_new

    @staticmethod
    def _node(k: int, p: torch.Tensor, act: Any, j: int, c: torch.Tensor, inj_combine: Any,
              inj_act: Any) -> torch.Tensor:
        v = p if act is None else act(p)
        if k == j:  # cell injection: no parameters
            v = inj_combine(v, c)
            if inj_act is not None:
                v = inj_act(v)
        return v

    def forward(self, x: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return self.step(self.project_inputs(x), *state)


class RNNTreeLayer(nn.Module):
    """Runs a :class:`RNNTreeCell` over a sequence, like torch.nn.LSTM with one layer.

    ``forward(x, state=None) -> (output, (h, c))``: x is (B, T, input) when ``batch_first`` else
    (T, B, input); output has the same layout with H features; the state is zeros when None.
    ``dropout_hidden`` is variational recurrent dropout (Gal & Ghahramani): one mask per sequence
    on h_{t-1} before U h_{t-1}, in training mode only.
    """

    def __init__(self, arch: RNNCellArch, input_size: int, hidden_size: int, batch_first: bool = True,
                 dropout_hidden: float = 0.0) -> None:
        super().__init__()
        self.cell = RNNTreeCell(arch, input_size, hidden_size)
        self.batch_first, self.dropout_hidden = batch_first, dropout_hidden

    def forward(self, x: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        time_dim = 1 if self.batch_first else 0
        batch = x.shape[1 - time_dim]
        if state is None:
            zeros = x.new_zeros(batch, self.cell.hidden_size)
            state = (zeros, zeros)
        h, c = state
        wx = self.cell.project_inputs(x).unbind(time_dim)  # one matmul for the whole sequence
        mask = None
        if self.training and self.dropout_hidden > 0:
            keep = 1.0 - self.dropout_hidden
            mask = h.new_empty(batch, self.cell.hidden_size).bernoulli_(keep) / keep
        step = self.cell.step
        outputs = []
        for wx_t in wx:
            h, c = step(wx_t, h if mask is None else h * mask, c)
            outputs.append(h)
        return torch.stack(outputs, time_dim), (h, c)


def copy_lstm_weights(cell: RNNTreeCell, lstm: nn.LSTMCell) -> None:
    """Load a torch.nn.LSTMCell's weights into a cell built from :data:`LSTM` (exact equivalence).

    LSTMCell stacks its gates (i, f, g, o) in ``weight_ih``/``weight_hh``/biases; each goes to the
    projection of the node in :data:`LSTM_GATES`.
    """
    if cell.arch != LSTM:
        raise ConfigError("copy_lstm_weights needs a cell built from the LSTM architecture")
    H = cell.hidden_size
    if lstm.hidden_size != H or lstm.input_size != cell.input_size:
        raise ConfigError(f"LSTMCell({lstm.input_size}, {lstm.hidden_size}) does not match the cell "
                          f"({cell.input_size}, {H})")
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        for src, gate in enumerate("ifgo"):
            rows, p = slice(src * H, (src + 1) * H), cell.projection_nodes.index(LSTM_GATES[gate])
            dst = slice(p * H, (p + 1) * H)
            cell.weight_ih[dst] = lstm.weight_ih[rows]
            cell.weight_hh[dst] = lstm.weight_hh[rows]
            if lstm.bias:
                cell.bias_ih[dst] = lstm.bias_ih[rows]
                cell.bias_hh[dst] = lstm.bias_hh[rows]


# -- networks -------------------------------------------------------------------
def _locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout on (B, T, F): one mask per sequence, shared over time."""
    if not training or p <= 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - p) / (1.0 - p)
    return x * mask


class RNNStack(nn.Module):
    """``layers`` tree-cell layers, batch first; ``dropout_between`` (variational) between layers."""

    def __init__(self, arch: RNNCellArch, input_size: int, hidden: int, layers: int, dropout_hidden: float,
                 dropout_between: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(RNNTreeLayer(arch, input_size if i == 0 else hidden, hidden,
                                                 batch_first=True, dropout_hidden=dropout_hidden)
                                    for i in range(layers))
        self.dropout_between = dropout_between

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if i:
                x = _locked_dropout(x, self.dropout_between, self.training)
            x, _ = layer(x)
        return x


class SequenceClassifier(nn.Module):
    """Reads an image (B, C, H, W) as H time steps of C*W features (or a (B, T, F) sequence) and
    classifies from the **last** hidden state of the top layer."""

    def __init__(self, arch: RNNCellArch, features: int, num_classes: int, space: "RNNCellSpace") -> None:
        super().__init__()
        self.rnn = RNNStack(arch, features, space.hidden, space.layers, space.dropout_hidden, space.dropout_output)
        self.dropout_input, self.dropout_output = space.dropout_input, space.dropout_output
        self.classifier = nn.Linear(space.hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (B, C, H, W) -> (B, H, C*W): one row per step
            x = x.permute(0, 2, 1, 3).flatten(2)
        x = _locked_dropout(x, self.dropout_input, self.training)
        last = self.rnn(x)[:, -1]  # (B, H)
        if self.training and self.dropout_output > 0:
            last = F.dropout(last, self.dropout_output)
        return self.classifier(last)


class LanguageModel(nn.Module):
    """Embedding -> tree-cell layers -> decoder: token ids (B, T) -> next-token logits (B, T, V).

    Every batch of sequences is independent: the state starts at zero for each call and is not
    carried to the next batch (so the evaluator's shuffled windows are valid training data).
    Float inputs are cast with ``.long()`` (count_flops feeds zeros).
    """

    def __init__(self, arch: RNNCellArch, vocab: int, space: "RNNCellSpace") -> None:
        super().__init__()
        emb = space.embedding_size
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = RNNStack(arch, emb, space.hidden, space.layers, space.dropout_hidden, space.dropout_output)
        self.decoder = nn.Linear(space.hidden, vocab)
        self.dropout_input, self.dropout_output = space.dropout_input, space.dropout_output
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if space.tie_weights:  # Press & Wolf / Inan et al.: the decoder reuses the embedding matrix
            self.decoder.weight = self.embedding.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = _locked_dropout(self.embedding(x.long()), self.dropout_input, self.training)  # (B, T, E)
        out = _locked_dropout(self.rnn(e), self.dropout_output, self.training)  # (B, T, H)
        return self.decoder(out)  # (B, T, V)


# -- the space ------------------------------------------------------------------
@register_space("rnn_cell")
class RNNCellSpace(SearchSpace):
    """NAS recurrent cells: a tree of ``leaves`` leaves with cell injection (see the module docstring).

    Decisions, in token order: ``node{k}.combine`` and ``node{k}.activation`` for k = 0 .. 2*leaves-2,
    ``inject.combine``, ``inject.activation``, ``cell_index`` and ``inject_index`` (0 .. 2*leaves-2).

    Options: ``leaves`` (2, 4 or 8; default 8 as the paper, which ``LSTM`` and ``NASCELL`` need),
    ``combines`` (subset of add, mul, max; default add, mul as the paper), ``activations`` (subset
    of tanh, relu, sigmoid, identity), ``hidden`` (state size, default 64), ``embedding`` (LM token
    embedding size; default = hidden), ``layers`` (default 1), ``dropout_input`` (variational, on
    the embeddings or input rows), ``dropout_hidden`` (variational, on h_{t-1} in the recurrence),
    ``dropout_output`` (variational, between layers and before the decoder/classifier), all 0 by
    default, and ``tie_weights`` (LM decoder shares the embedding matrix; needs embedding == hidden).

    Tasks: ``language_model`` (input (T,) token ids, ``num_classes`` = vocabulary) builds a
    :class:`LanguageModel`; ``classification`` of images (C, H, W) or sequences (T, F) builds a
    :class:`SequenceClassifier`.

    Some cells diverge in training (unbounded activations compounding over time steps); their
    trials fail with "loss is not finite", about 1 in 6 in benchmarks/rnn_search.py. A long
    search may need a higher ``budget.max_failures`` than the default.
    """

    arch_type = RNNCellArch

    def __init__(self, leaves: int = 8, combines: Sequence[str] = ("add", "mul"),
                 activations: Sequence[str] = ACTIVATIONS, hidden: int = 64, embedding: Optional[int] = None,
                 layers: int = 1, dropout_input: float = 0.0, dropout_hidden: float = 0.0,
                 dropout_output: float = 0.0, tie_weights: bool = False) -> None:
        if leaves not in LEAVES or isinstance(leaves, bool):
            raise ConfigError(f"space.leaves must be one of {', '.join(map(str, LEAVES))}, got {leaves!r}")
        check_names("combines", combines, COMBINES)
        check_names("activations", activations, ACTIVATIONS)
        check_int("hidden", hidden, 1, 8192)
        if embedding is not None:
            check_int("embedding", embedding, 1, 8192)
        check_int("layers", layers, 1, 16)
        for key, value in (("dropout_input", dropout_input), ("dropout_hidden", dropout_hidden),
                           ("dropout_output", dropout_output)):
            check_prob(key, value)
        check_bool("tie_weights", tie_weights)
        self.embedding_size = hidden if embedding is None else embedding
        if tie_weights and self.embedding_size != hidden:
            raise ConfigError(f"space.tie_weights needs space.embedding == space.hidden (got {self.embedding_size} "
                              f"and {hidden}); set space.tie_weights=false or make them equal")
        self.leaves, self.hidden, self.layers = leaves, hidden, layers
        self.combines = tuple(c for c in COMBINES if c in combines)
        self.activations = tuple(a for a in ACTIVATIONS if a in activations)
        self.dropout_input, self.dropout_hidden = float(dropout_input), float(dropout_hidden)
        self.dropout_output, self.tie_weights = float(dropout_output), tie_weights
        self.num_nodes = 2 * leaves - 1
        indices = tuple(range(self.num_nodes))
        self._decisions: list[Decision] = []
        for k in range(self.num_nodes):
            self._decisions += [Decision(f"node{k}.combine", self.combines),
                                Decision(f"node{k}.activation", self.activations)]
        self._decisions += [Decision("inject.combine", self.combines), Decision("inject.activation", self.activations),
                            Decision("cell_index", indices), Decision("inject_index", indices)]
        self._combine_index = {c: i for i, c in enumerate(self.combines)}
        self._act_index = {a: i for i, a in enumerate(self.activations)}

    def decisions(self) -> list[Decision]:
        return list(self._decisions)

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, RNNCellArch):
            raise ParseError(f"expected a 'rnn_cell' architecture, got {type(arch).__name__}")
        arch.check()
        if arch.leaves != self.leaves:
            raise ParseError(f"the architecture has {arch.leaves} leaves ({4 * arch.leaves + 2} tokens) but the "
                             f"space has space.leaves={self.leaves} ({4 * self.leaves + 2} tokens)")
        total = 4 * self.leaves + 2
        out: list[int] = []
        for k, (combine, act) in enumerate((*arch.nodes, arch.inject)):
            role = f"node {k}" if k < self.num_nodes else "inject"
            for pos, name, index, tokens, kind in ((2 * k, combine, self._combine_index, COMBINE_TOKENS, "combine"),
                                                   (2 * k + 1, act, self._act_index, ACTIVATION_TOKENS, "activation")):
                if name not in index:
                    valid = ", ".join(tokens[n] for n in index)
                    raise ParseError(f"token {pos + 1} of {total} {tokens[name]!r} ({role} {kind}) is not in "
                                     f"the space (valid: {valid}; see space.{kind}s)")
                out.append(index[name])
        return out + [arch.cell_index, arch.inject_index]

    def decode(self, indices: Sequence[int]) -> RNNCellArch:
        check_indices(indices, self._choice_counts(), [d.name for d in self._decisions])
        n = self.num_nodes
        pairs = [(self.combines[indices[2 * k]], self.activations[indices[2 * k + 1]]) for k in range(n + 1)]
        return RNNCellArch(tuple(pairs[:n]), pairs[n], int(indices[-2]), int(indices[-1]))

    # -- building ---------------------------------------------------------------------
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        self.validate(arch)
        assert isinstance(arch, RNNCellArch)
        shape = tuple(task.input_shape)
        if task.kind == "language_model":
            if len(shape) != 1:
                raise ConfigError(f"space 'rnn_cell': a language_model task needs input shape (T,), got {shape}")
            return LanguageModel(arch, task.num_classes, self)
        if task.kind != "classification":
            raise ConfigError(f"space 'rnn_cell' builds classification and language_model tasks, got {task.kind!r}")
        if len(shape) not in (2, 3) or any(not isinstance(d, int) or d < 1 for d in shape):
            raise ConfigError(f"space 'rnn_cell' classifies sequences and needs input shape (C, H, W) (an image read "
                              f"as H steps of C*W features) or (T, F), or a language_model task; got {shape}")
        features = shape[0] * shape[2] if len(shape) == 3 else shape[1]
        return SequenceClassifier(arch, features, task.num_classes, self)

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """``hidden`` and ``embedding`` times ``width``, ``layers`` times ``depth`` (rounded, at least 1)."""
        if width == 1.0 and depth == 1.0:
            return self
        return create_space(
            "rnn_cell", leaves=self.leaves, combines=list(self.combines), activations=list(self.activations),
            hidden=scale_count(self.hidden, width), embedding=scale_count(self.embedding_size, width),
            layers=scale_count(self.layers, depth), dropout_input=self.dropout_input,
            dropout_hidden=self.dropout_hidden, dropout_output=self.dropout_output, tie_weights=self.tie_weights)

    # -- pictures -----------------------------------------------------------------------
    def diagram(self, arch: Architecture) -> Diagram:
        """The network (input, one node per tree-cell layer with its hidden size, the linear
        output), then the cell of one time step: leaves read x_t and h_{t-1}, c_{t-1} enters the
        injected node, c_t leaves node m. The task decides the input (token embeddings for a
        language model, image rows or sequence steps for classification), so both are named."""
        self.validate(arch)
        assert isinstance(arch, RNNCellArch)
        d = Diagram(title=f"rnn_cell ({arch.leaves} leaves, hidden size {self.hidden}): {arch}")
        net = [d.node("net.input", f"input: tokens -> embedding {self.embedding_size} (language model), "
                                   "or one image row / step per time step (classification)")]
        for i in range(self.layers):
            net.append(d.node(f"net.layer{i + 1}", f"tree-cell layer {i + 1}, hidden {self.hidden}"))
            d.edge(net[-2], net[-1], "sequence" if i == 0 else "")
        net.append(d.node("net.output", "linear: vocabulary logits per step, or classes from the last step"))
        d.edge(net[-2], net[-1], f"{self.hidden} per step")
        d.group(f"network ({self.layers} layer{'s' if self.layers != 1 else ''})", net)
        first = len(d.nodes)
        label = lambda k: f"{k}: {COMBINE_TOKENS[arch.nodes[k][0]]}, {ACTIVATION_TOKENS[arch.nodes[k][1]]}"  # noqa: E731
        for k in range(self.num_nodes):
            d.node(f"node{k}", label(k))
        for k in range(self.leaves):
            d.edge("x_t", f"node{k}", f"W{k}")
            d.edge("h_{t-1}", f"node{k}", f"U{k}")
        for k, (a, b) in enumerate(tree_children(self.leaves), start=self.leaves):
            d.edge(f"node{a}", f"node{k}")
            d.edge(f"node{b}", f"node{k}")
        inj = f"inject: {COMBINE_TOKENS[arch.inject[0]]}, {ACTIVATION_TOKENS[arch.inject[1]]}"
        d.edge("c_{t-1}", f"node{arch.inject_index}", inj)
        d.edge(f"node{arch.cell_index}", "c_t", "before activation")
        d.edge(f"node{self.num_nodes - 1}", "h_t")
        d.group("cell: one time step (every node is hidden-sized)", [n for n, _ in d.nodes[first:]])
        return d
