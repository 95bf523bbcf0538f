"""Decisions say what they are (DecisionKind); strategies read the kind, never the name."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from archsearch.spaces import create_space, list_spaces
from archsearch.spaces.base import INPUT_CHOICES, Decision, DecisionKind, sized_kind
from archsearch.strategies import create_strategy
from archsearch.controller import plan
from test_spaces import SMALL_OPTIONS


def test_an_inputs_decision_must_say_whose_input_it_is():
    with pytest.raises(ValueError, match="INPUTS"):
        Decision("x", INPUT_CHOICES, DecisionKind.INPUTS)
    with pytest.raises(ValueError, match="INPUTS"):
        Decision("x", ("no", "yes"), DecisionKind.INPUTS, node=1, source=0)


def test_sized_options_are_ordered_only_when_their_values_increase():
    assert sized_kind((1, 3, 5)) is DecisionKind.ORDINAL
    assert sized_kind((0.001, 0.01), DecisionKind.NUMERIC) is DecisionKind.NUMERIC
    assert sized_kind((5, 3, 1)) is DecisionKind.CATEGORICAL
    assert sized_kind(("relu", "gelu")) is DecisionKind.CATEGORICAL
    assert sized_kind((False, True)) is DecisionKind.CATEGORICAL


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_declares_kinds_consistently(name):
    space = create_space(name, **SMALL_OPTIONS.get(name, {}))
    for d in space.decisions():
        assert isinstance(d.kind, DecisionKind)
        if d.kind is DecisionKind.INPUTS:
            assert d.source is not None and d.node is not None and d.source < d.node
        if d.kind.ordered:
            assert all(a < b for a, b in zip(d.choices, d.choices[1:]))


def test_skip_chain_anchor_points_are_inputs_decisions():
    space = create_space("skip_chain", layers=3)
    inputs = [(d.node, d.source) for d in space.decisions() if d.kind is DecisionKind.INPUTS]
    assert inputs == [(1, 0), (2, 0), (2, 1)]
    kinds = {d.name: d.kind for d in space.decisions()}
    assert kinds["layer0.op"] is DecisionKind.CATEGORICAL and kinds["layer0.filters"] is DecisionKind.ORDINAL


def test_the_controller_finds_anchor_points_by_kind_not_by_name():
    named_like_anchors = [Decision("layer0.op", ("a", "b")), Decision("layer1.input0", (False, True))]
    assert [s.kind for s in plan(named_like_anchors)] == ["softmax", "softmax"]  # a name is not a kind
    decisions = [Decision("a", ("x", "y"), node=0), Decision("b", ("x", "y"), node=1),
                 Decision("whatever", INPUT_CHOICES, DecisionKind.INPUTS, node=1, source=0)]
    steps = plan(decisions)
    assert [s.kind for s in steps] == ["softmax", "key", "softmax", "anchor"]
    assert steps[-1].layer == 1 and steps[-1].pairs == ((2, 0),)


def test_tpe_models_declared_order_and_nothing_else():
    space = create_space("chain", **{**SMALL_OPTIONS["chain"], "kernels": [1, 3, 5], "channels": [32, 16, 8]})
    tpe = create_strategy("tpe", space, seed=0)
    dists = dict(zip([d.name for d in space.decisions()], tpe._dists.values()))
    assert isinstance(dists["layer0.kernel"], IntDistribution)  # increasing sizes: ordered
    assert isinstance(dists["layer0.channels"], CategoricalDistribution)  # listed out of order: no order
    assert isinstance(dists["layer0.op"], CategoricalDistribution)
