"""The rnn_cell space: the NAS tree encoding with cell injection, the cell, the LSTM and the NASCell."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import create_space
from archsearch.spaces.base import DecisionKind
from archsearch.spaces.rnn_cell import (
    LSTM, NASCELL, RNNCellArch, RNNTreeCell, RNNTreeLayer, copy_lstm_weights, projected_nodes, tree_children,
)

SEED_EXAMPLE = "[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0]"


@pytest.fixture
def small():
    return create_space("rnn_cell", leaves=2, hidden=8)


# -- the string form ----------------------------------------------------------------
def test_seed_example_parses_and_prints_exactly(small):
    arch = small.parse(SEED_EXAMPLE)
    assert str(arch) == SEED_EXAMPLE
    assert arch.nodes == (("add", "tanh"), ("mul", "relu"), ("mul", "sigmoid"))
    assert arch.inject == ("add", "relu") and arch.cell_index == 1 and arch.inject_index == 0
    # the spelling (lower-case 'sigmoid'), any case, no brackets, 'Mul' for Multiply
    for text in ("[Add, Tanh, Multiply, ReLU, Multiply, sigmoid, Add, ReLU, 1, 0]",
                 "add,TANH, multiply ,relu,MULTIPLY,Sigmoid,aDD,relu,1,0",
                 "[Add, Tanh, Mul, ReLU, Mul, Sigmoid, Add, ReLU, 1, 0]"):
        assert small.parse(text) == arch
    assert small.decode(small.encode(arch)) == arch
    assert small.encode(arch) == [0, 0, 1, 1, 1, 2, 0, 1, 1, 0]  # combines (add, mul), acts (tanh, relu, ...)


def test_decisions_follow_the_token_order(small):
    names = [d.name for d in small.decisions()]
    assert names == ["node0.combine", "node0.activation", "node1.combine", "node1.activation", "node2.combine",
                     "node2.activation", "inject.combine", "inject.activation", "cell_index", "inject_index"]
    assert small.decisions()[-1].choices == (0, 1, 2)
    kinds = [d.kind for d in small.decisions()]  # operations unordered, tree indices ordered (as TPE read them)
    assert kinds == [DecisionKind.CATEGORICAL] * 10  # tree-node indices name nodes, they are not ordered
    big = create_space("rnn_cell")  # default: 8 leaves, 15 nodes, 34 tokens
    assert len(big.decisions()) == 34 and big.decisions()[-2].choices == tuple(range(15))


def test_named_cells_parse_and_round_trip():
    space = create_space("rnn_cell")
    assert space.parse("LSTM") == LSTM and space.parse("lstm") == LSTM
    assert space.parse("NASCell") == NASCELL and space.parse(" nascell ") == NASCELL
    for arch in (LSTM, NASCELL):
        assert space.parse(str(arch)) == arch and arch.leaves == 8
        assert space.decode(space.encode(arch)) == arch


@pytest.mark.parametrize("text, match", [
    ("[Add, Tanh, Multiply, ReLU, Divide, Sigmoid, Add, ReLU, 1, 0]",
     r"token 5 of 10 'Divide' \(node 2 combine\): unknown combine \(valid: Add, Multiply, Max\)"),
    ("[Add, Tanh, Multiply, ReLU, Multiply, Softmax, Add, ReLU, 1, 0]",
     r"token 6 of 10 'Softmax' \(node 2 activation\): unknown activation \(valid: Tanh, ReLU, Sigmoid, Identity\)"),
    ("[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 3, 0]",
     r"token 9 of 10 '3' \(cell index\): expected a tree index 0..2"),
    ("[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, x]", r"token 10 of 10 'x' \(inject index\)"),
    ("[Add, Tanh, Multiply, ReLU, 1, 0]", r"expected 4 \* leaves \+ 2 comma-separated tokens .* got 6"),
    ("[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0", "unbalanced brackets"),
    ("[Add, , Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0]", r"token 2 of 10 '' \(node 0 activation\)"),
])
def test_bad_strings_are_one_line_errors_naming_token_position_and_choices(small, text, match):
    with pytest.raises(ParseError, match=match) as info:
        small.parse(text)
    assert "\n" not in str(info.value)


def test_architectures_outside_the_space_are_refused(small):
    with pytest.raises(ParseError, match=r"4 leaves .* space.leaves=2"):
        small.parse("[" + ", ".join(["Add, Tanh"] * 8) + ", 0, 0]")
    with pytest.raises(ParseError, match=r"space.leaves=2"):
        small.parse("LSTM")
    with pytest.raises(ParseError, match=r"token 1 of 10 'Max' \(node 0 combine\) is not in the space "
                                         r"\(valid: Add, Multiply"):
        small.parse("[Max, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0]")
    no_relu = create_space("rnn_cell", leaves=2, activations=["tanh", "sigmoid"])
    with pytest.raises(ParseError, match=r"token 4 of 10 'ReLU' \(node 1 activation\) is not in the space"):
        no_relu.parse(SEED_EXAMPLE)
    with_max = create_space("rnn_cell", leaves=2, combines=["max", "add"])
    assert with_max.decisions()[0].choices == ("add", "max")
    assert str(with_max.parse("[max, tanh, add, relu, add, tanh, max, relu, 2, 2]")).startswith("[Max, Tanh, Add")


@pytest.mark.parametrize("options, match", [
    ({"leaves": 3}, "space.leaves must be one of: 2, 4, 8 \\(got 3\\)"),
    ({"combines": ["add", "pow"]}, "unknown 'pow'"),
    ({"activations": []}, "non-empty list"),
    ({"dropout_hidden": 1.0}, r"space.dropout_hidden must be a number in \[0, 1\), got 1.0"),
    ({"tie_weights": True, "hidden": 16, "embedding": 8}, "tie_weights needs space.embedding == space.hidden"),
    ({"layers": 0}, r"space.layers must be an integer in \[1, 16\], got 0"),
])
def test_options_are_validated(options, match):
    with pytest.raises(ConfigError, match=match):
        create_space("rnn_cell", **options)


def test_tree_numbering_is_level_order():
    assert tree_children(2) == [(0, 1)]
    assert tree_children(8) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13)]


# -- the cell -----------------------------------------------------------------------
def projections(cell: RNNTreeCell, x: torch.Tensor, h: torch.Tensor) -> tuple[list, list]:
    """(W_p x + b_p, U_p h + b'_p) per projection, computed independently of the cell's step."""
    H = cell.hidden_size
    wx = (x @ cell.weight_ih.T + cell.bias_ih).split(H, 1)
    uh = (h @ cell.weight_hh.T + cell.bias_hh).split(H, 1)
    return list(wx), list(uh)


def test_seed_worked_example_by_hand():
    torch.manual_seed(0)
    cell = RNNTreeCell(RNNCellArch.parse(SEED_EXAMPLE), input_size=3, hidden_size=4)
    assert cell.projection_nodes == [0, 1]
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    (w1x, w3x), (w2h, w4h) = projections(cell, x, h)
    a0 = torch.tanh(w1x + w2h)  # tree index 0
    a1 = torch.relu(w3x * w4h)  # tree index 1
    a0 = torch.relu(a0 + c)  # inject c_{t-1} into index 0, with the inject part's Add and ReLU
    a2 = torch.sigmoid(a0 * a1)  # tree index 2 = h_t
    h_t, c_t = cell(x, (h, c))
    torch.testing.assert_close(h_t, a2)
    torch.testing.assert_close(c_t, w3x * w4h)  # index 1 before its activation


def test_lstm_equals_torch_lstm_cell_with_the_same_weights():
    torch.manual_seed(1)
    ref = nn.LSTMCell(6, 5)
    cell = RNNTreeCell(LSTM, 6, 5)
    assert sum(p.numel() for p in cell.parameters()) == sum(p.numel() for p in ref.parameters())
    assert cell.projection_nodes == [2, 3, 8, 13]  # i, g, f (+ c_{t-1} injection), o
    copy_lstm_weights(cell, ref)
    h = c = torch.zeros(4, 5)
    hr, cr = h, c
    for _ in range(6):  # several steps, so the state path is exercised too
        x = torch.randn(4, 6)
        h, c = cell(x, (h, c))
        hr, cr = ref(x, (hr, cr))
        torch.testing.assert_close(h, hr, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(c, cr, atol=1e-6, rtol=1e-5)


def test_lstm_layer_equals_torch_lstm_and_batch_first_agrees_with_time_first():
    torch.manual_seed(2)
    ref = nn.LSTM(3, 4, batch_first=True)
    ref_cell = nn.LSTMCell(3, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref_cell, name).copy_(getattr(ref, f"{name}_l0"))
    bf = RNNTreeLayer(LSTM, 3, 4, batch_first=True)
    copy_lstm_weights(bf.cell, ref_cell)
    tf = RNNTreeLayer(LSTM, 3, 4, batch_first=False)
    tf.load_state_dict(bf.state_dict())
    x = torch.randn(2, 7, 3)
    out, (h, c) = bf(x)
    out_ref, (h_ref, c_ref) = ref(x)
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c, c_ref[0], atol=1e-6, rtol=1e-5)
    out_tf, (h_tf, c_tf) = tf(x.transpose(0, 1))
    torch.testing.assert_close(out_tf.transpose(0, 1), out)
    torch.testing.assert_close((h_tf, c_tf), (h, c))


def test_nascell_computes_the_published_equations():
    torch.manual_seed(3)
    cell = RNNTreeCell(NASCELL, 3, 4)
    assert cell.projection_nodes == list(range(8))
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    wx, uh = projections(cell, x, h)
    o = [torch.sigmoid(wx[0] + uh[0]), torch.relu(wx[1] + uh[1]), torch.sigmoid(wx[2] + uh[2]),
         torch.relu(wx[3] * uh[3]), torch.tanh(wx[4] + uh[4]), torch.sigmoid(wx[5] + uh[5]),
         torch.tanh(wx[6] + uh[6]), torch.sigmoid(wx[7] + uh[7])]
    l1, l2 = torch.tanh(o[0] * o[1]), torch.tanh(o[2] + o[3])
    l3, l4 = torch.tanh(o[4] * o[5]), torch.sigmoid(o[6] + o[7])
    l1 = torch.tanh(l1 + c)  # inject the cell
    c_new = l1 * l2
    h_new = torch.tanh(c_new * torch.tanh(l3 + l4))
    h_t, c_t = cell(x, (h, c))
    torch.testing.assert_close(h_t, h_new)
    torch.testing.assert_close(c_t, c_new)


def test_linear_subtrees_fold_into_one_projection_with_the_same_function():
    arch = RNNCellArch.parse("[Add, Identity, Add, Identity, Add, Tanh, Multiply, Sigmoid, 2, 2]")
    assert projected_nodes(arch) == [2]
    torch.manual_seed(4)
    cell = RNNTreeCell(arch, 3, 4)
    assert cell.weight_ih.shape == (4, 3)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    (wx,), (uh,) = projections(cell, x, h)
    h_t, c_t = cell(x, (h, c))
    torch.testing.assert_close(c_t, wx + uh)
    torch.testing.assert_close(h_t, torch.sigmoid(torch.tanh(wx + uh) * c))
    # a leaf that is the cell-state node or is injected into keeps its own projection
    assert projected_nodes(RNNCellArch.parse("[Add, Identity, Add, Identity, Add, Tanh, Add, Tanh, 0, 2]")) == [0, 1]
    assert projected_nodes(RNNCellArch.parse("[Add, Identity, Add, ReLU, Add, Tanh, Add, Tanh, 2, 2]")) == [0, 1]


def test_hidden_dropout_is_a_mask_per_sequence_in_training_only():
    torch.manual_seed(5)
    layer = RNNTreeLayer(LSTM, 3, 4, dropout_hidden=0.5)
    x = torch.randn(2, 5, 3)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.equal(layer(x)[0], layer(x)[0])


# -- networks -------------------------------------------------------------------------
def test_language_model_shapes_tying_and_flops_input():
    space = create_space("rnn_cell", leaves=2, hidden=8, tie_weights=True, layers=2, dropout_input=0.1,
                         dropout_hidden=0.1, dropout_output=0.2)
    model = space.build(space.parse(SEED_EXAMPLE), Task((12,), 30, kind="language_model"))
    ids = torch.randint(0, 30, (3, 12))
    assert model(ids).shape == (3, 12, 30)
    assert model.decoder.weight is model.embedding.weight
    model.eval()
    assert model(torch.zeros(1, 12)).shape == (1, 12, 30)  # float zeros (count_flops) are cast to ids
    untied = create_space("rnn_cell", leaves=2, hidden=8, embedding=5).build(
        space.parse(SEED_EXAMPLE), Task((12,), 30, kind="language_model"))
    assert untied.embedding.weight.shape == (30, 5) and untied.decoder.weight.shape == (30, 8)


def test_sequence_classifier_reads_image_rows_or_sequences(small):
    arch = small.parse(SEED_EXAMPLE)
    torch.manual_seed(6)
    image = small.build(arch, Task((2, 5, 3), 4))
    assert image.rnn.layers[0].cell.input_size == 6  # C * W features per row
    x = torch.randn(3, 2, 5, 3)
    assert image(x).shape == (3, 4)
    seq = small.build(arch, Task((5, 6), 4))
    seq.load_state_dict(image.state_dict())
    seq.eval()
    image.eval()
    torch.testing.assert_close(seq(x.permute(0, 2, 1, 3).reshape(3, 5, 6)), image(x))
    with pytest.raises(ConfigError, match=r"language_model task needs input shape \(T,\)"):
        small.build(arch, Task((3, 4), 10, kind="language_model"))
    with pytest.raises(ConfigError, match="builds classification and language_model"):
        small.build(arch, Task((3, 4), 10, kind="regression"))


def test_samples_build_and_train_a_step_without_nan(small):
    rng = np.random.default_rng(0)
    task = Task((8,), 11, kind="language_model")
    for _ in range(10):
        model = small.build(small.sample(rng), task)
        logits = model(torch.randint(0, 11, (2, 8)))
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), torch.randint(0, 11, (16,)))
        loss.backward()
        assert torch.isfinite(loss)
