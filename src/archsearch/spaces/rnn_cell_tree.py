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

This module is the genotype: the tree, the token form and the published cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from archsearch.errors import ParseError
from archsearch.spaces.base import Architecture

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
    ``canonical`` is ``to_dict``: every field is computed (folding needs its nodes' fields to be
    ``Add``/``Identity``), and swapping a commutative node's subtrees would reorder the weight rows.
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
