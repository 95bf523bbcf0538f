"""Recurrent cells as NAS trees with cell injection (Zoph & Le, "Neural Architecture Search with
Reinforcement Learning", ICLR 2017, section 3.4 and appendix A): the registered space.

The encoding (a combine and an activation per tree node, the injection, two indices) and the
published cells are in :mod:`rnn_cell_tree`; the cell, the recurrent layer and the networks
built for classification and language modelling in :mod:`rnn_cell_network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Options, all_of, each_in, invalid, nonempty_distinct, option
from archsearch.spaces.base import (Architecture, Decision, SearchSpace, create_space, register_space,
                                    scale_count)
from archsearch.spaces.checks import check_indices
from archsearch.spaces.diagram import Diagram
from archsearch.spaces.rnn_cell_network import (LanguageModel, RNNTreeCell, RNNTreeLayer, SequenceClassifier,
                                                copy_lstm_weights, projected_nodes)
from archsearch.spaces.rnn_cell_tree import (ACTIVATION_TOKENS, ACTIVATIONS, COMBINE_TOKENS, COMBINES, LEAVES, LSTM,
                                             NASCELL, RNNCellArch, tree_children)

__all__ = ["LSTM", "NASCELL", "RNNCellArch", "RNNCellSpace", "RNNTreeCell", "RNNTreeLayer", "copy_lstm_weights",
           "projected_nodes", "tree_children"]


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

    @dataclass(frozen=True)
    class Options(Options):
        leaves: int = option(8, "tree leaves (8 as the paper, which LSTM and NASCELL need)", choices=LEAVES)
        combines: tuple[str, ...] = option(("add", "mul"), "how a node combines its two inputs",
                                           check=all_of(nonempty_distinct, each_in(COMBINES)))
        activations: tuple[str, ...] = option(ACTIVATIONS, "a node's activations to choose from",
                                              check=all_of(nonempty_distinct, each_in(ACTIVATIONS)))
        hidden: int = option(64, "state size", low=1, high=8192)
        embedding: Optional[int] = option(None, "language-model token embedding size (null: hidden)",
                                          low=1, high=8192)
        layers: int = option(1, "stacked tree-cell layers", low=1, high=16)
        dropout_input: float = option(0.0, "variational dropout on the embeddings or input rows", low=0, below=1)
        dropout_hidden: float = option(0.0, "variational dropout on h_{t-1} in the recurrence", low=0, below=1)
        dropout_output: float = option(0.0, "variational dropout between layers and before the output",
                                       low=0, below=1)
        tie_weights: bool = option(False, "the language model's decoder shares the embedding matrix")

        def __post_init__(self) -> None:
            if self.tie_weights and self.embedding is not None and self.embedding != self.hidden:
                raise invalid("tie_weights", f"needs space.embedding == space.hidden (got {self.embedding} and "
                                             f"{self.hidden}); set space.tie_weights=false or make them equal")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"leaves": 2, "hidden": 8}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.embedding_size = o.hidden if o.embedding is None else o.embedding
        self.leaves, self.hidden, self.layers = o.leaves, o.hidden, o.layers
        self.combines = tuple(c for c in COMBINES if c in o.combines)
        self.activations = tuple(a for a in ACTIVATIONS if a in o.activations)
        self.dropout_input, self.dropout_hidden = o.dropout_input, o.dropout_hidden
        self.dropout_output, self.tie_weights = o.dropout_output, o.tie_weights
        self.num_nodes = 2 * o.leaves - 1
        indices = tuple(range(self.num_nodes))
        self._decisions: list[Decision] = []
        for k in range(self.num_nodes):
            self._decisions += [Decision(f"node{k}.combine", self.combines),
                                Decision(f"node{k}.activation", self.activations)]
        self._decisions += [Decision("inject.combine", self.combines), Decision("inject.activation", self.activations),
                            # tree indices, ordered as TPE has always treated them (3+ increasing numbers)
                            Decision("cell_index", indices), Decision("inject_index", indices)]  # tree nodes: unordered
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
