"""The rnn_cell networks: the tree cell, the recurrent layer and the classifier and language model.

Every leaf has its own input and recurrent projections, with biases (as torch.nn.LSTM has
``b_ih`` and ``b_hh``), so a cell with L leaves has L * H * (input + H + 2) parameters, less where
a linear subtree (``Add`` nodes over ``Identity``-activated ``Add`` leaves) folds into one
projection (:func:`projected_nodes`; same function class). A layer computes W x for the whole
sequence in one matmul and U h for all projections in one matmul per step; the rest of a step is
a few elementwise ops (benchmarks/rnn_cell_speed.py measures it against torch.nn.LSTM).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.errors import ConfigError
from archsearch.spaces.rnn_cell_tree import LSTM, LSTM_GATES, RNNCellArch, tree_children

if TYPE_CHECKING:
    from archsearch.spaces.rnn_cell import RNNCellSpace


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
