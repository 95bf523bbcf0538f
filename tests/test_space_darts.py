"""The NASNet/DARTS cell space: genotype forms, the published DARTS size, network, supernet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archsearch.spaces.darts  # noqa: F401  (registers "darts")
from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import create_space
from archsearch.spaces.base import count_params_without_aux
from archsearch.spaces.darts import DARTS_V1, DARTS_V2, OPS, DartsArch

SMALL = {"channels": 4, "cells": 3, "nodes": 3}
DIGITS, CIFAR = Task((1, 8, 8), 10), Task((3, 32, 32), 10)

V2_LITERAL = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def small_space(**options):
    return create_space("darts", **{**SMALL, **options})


# -- string forms --------------------------------------------------------------------
def test_published_genotype_literal_names_and_canonical_form_agree():
    space = create_space("darts")
    assert space.parse(V2_LITERAL) == DARTS_V2 == space.parse("DARTS_V2") == space.parse(" DARTS ")
    assert space.parse("DARTS_V1") == DARTS_V1 != DARTS_V2
    assert DARTS_V2.normal[4:6] == (("sep_conv_3x3", 1), ("skip_connect", 0))  # published order kept
    text = str(DARTS_V2)
    assert text.startswith("normal=sep_conv_3x3~0,sep_conv_3x3~1|") and ";reduce=max_pool_3x3~0" in text
    assert space.parse(text) == DARTS_V2
    assert space.parse(DARTS_V1.genotype_literal()) == DARTS_V1
    # DARTS prints derived genotypes with range(...) concats and may wrap lines
    derived = V2_LITERAL.replace("[2, 3, 4, 5]", "range(2, 6)").replace(", ", ",\n  ")
    assert space.parse(derived) == DARTS_V2
    one_node = create_space("darts", nodes=1)
    assert one_node.parse("normal = sep_conv_3x3 ~ 0 , skip_connect~1 ; reduce=max_pool_3x3~1,none~0") == \
        DartsArch((("sep_conv_3x3", 0), ("skip_connect", 1)), (("max_pool_3x3", 1), ("none", 0)))


@pytest.mark.parametrize("text, message", [
    (V2_LITERAL.replace("'dil_conv_3x3'", "'conv_7x7'"),
     r"normal node 3: op 'conv_7x7' is not in the space \(valid: none, max_pool_3x3, .*dil_conv_5x5\)"),
    (V2_LITERAL.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), r"normal node 3: input 5 is out of range \(valid 0..4"),
    ("normal=sep_conv_3x3~2,sep_conv_3x3~1;reduce=sep_conv_3x3~0,sep_conv_3x3~1", r"normal node 0: input 2 is out of range"),
    ("normal=sep_conv_3x3~0,sep_conv_3x3~1;reduce=sep_conv_3x3~0,sep_conv_3x3~1", r"expected 4 nodes \(space.nodes\), got 1"),
    (V2_LITERAL.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 5]"),
     r"normal_concat=\[2, 3, 5\] but this space concatenates all intermediate nodes: \[2, 3, 4, 5\]"),
    (V2_LITERAL.replace("reduce_concat=", "normal_concat="), r"field 'normal_concat' is given twice"),
    (V2_LITERAL.replace(", reduce_concat=[2, 3, 4, 5]", ""), r"missing field\(s\) reduce_concat"),
    (V2_LITERAL.replace("normal_concat", "normal_cat"), r"unknown field 'normal_cat'"),
    (V2_LITERAL[:-1], r"Genotype literal: not valid syntax"),
    (V2_LITERAL + ")", r"Genotype literal: not valid syntax"),
    (V2_LITERAL.replace("('sep_conv_3x3', 0), ", "", 1), r"normal cell: 7 \(op, input\) pairs; each node takes exactly two"),
    ("Genotype(normal=__import__('os').system('true'))", r"normal must be a literal list of \(op, input\) pairs"),
    ("Genotype(normal=print('x'))", r"normal must be a literal list of \(op, input\) pairs, got \"print\('x'\)\""),
    ("Genotype(normal=[('sep_conv_3x3', 0 + 1)])", r"normal must be a literal list"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range(2, 10**9))", r"normal_concat must be a literal list"),
    ("Genotype(normal=[('sep_conv_3x3', '0')])", r"normal must be a list of \('op', input\) pairs"),
    ("Genotype(" + "[" * 5000 + ")", r"Genotype literal: not valid syntax"),
    ("Genotype(" + "x" * 30_000 + ")", r"too long"),
    ("normal=sep_conv_3x3~0,sep_conv_3x3~1;normal=sep_conv_3x3~0,sep_conv_3x3~1", r"the normal cell is given twice"),
    ("normal=sep_conv_3x3~0,sep_conv_3x3~1", r"expected 'normal=...;reduce=...'"),
    ("normal=sep_conv_3x3~0;reduce=sep_conv_3x3~0,sep_conv_3x3~1", r"normal node 0 'sep_conv_3x3~0': expected two op~input"),
    ("normal=sep_conv_3x3:0,sep_conv_3x3~1;reduce=sep_conv_3x3~0,sep_conv_3x3~1", r"'sep_conv_3x3:0' is not op~input"),
    ("normal=sep_conv_3x3~²,sep_conv_3x3~1;reduce=sep_conv_3x3~0,sep_conv_3x3~1", r"is not op~input"),
    ("darts_v2", r"or a name \(DARTS_V1, DARTS_V2, DARTS\)"),
])
def test_bad_architecture_strings_raise_parse_error_with_the_reason(text, message):
    with pytest.raises(ParseError, match=message):
        create_space("darts").parse(text)


CORRUPTIONS = st.tuples(st.integers(0, 400), st.integers(0, 3), st.sampled_from(list("()[],='~|;= 0129_xa\\\"")))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([V2_LITERAL, str(DARTS_V2)]), st.lists(CORRUPTIONS, max_size=4))
def test_corrupted_genotypes_raise_only_parse_error_or_roundtrip(text, edits):
    """Near-misses of both forms (deleted, replaced, inserted characters) exercise every parser branch."""
    for pos, length, char in edits:
        pos = pos % (len(text) + 1)
        text = text[:pos] + char + text[pos + length:]
    space = create_space("darts")
    try:
        arch = space.parse(text)
    except ParseError:
        return
    assert space.parse(str(arch)) == arch == space.parse(arch.genotype_literal())


def test_json_form_roundtrips_and_rejects_malformed_entries():
    space = create_space("darts")
    assert space.from_dict(DARTS_V2.to_dict()) == DARTS_V2
    assert DARTS_V2.to_dict()["normal"][0] == ["sep_conv_3x3", 0]
    for bad in ({"normal": [["sep_conv_3x3", "0"]] * 8, "reduce": DARTS_V2.to_dict()["reduce"]},
                {"normal": "sep_conv_3x3~0", "reduce": []}, {"reduce": []}):
        with pytest.raises(ParseError):
            space.from_dict(bad)


def test_wrong_node_count_and_restricted_ops_are_rejected_by_the_space():
    with pytest.raises(ParseError, match=r"expected 3 nodes \(space.nodes\), got 4"):
        small_space().parse("DARTS_V2")
    with pytest.raises(ParseError, match=r"op 'skip_connect' is not in the space \(valid: sep_conv_3x3, max_pool_3x3\)"):
        create_space("darts", ops=["sep_conv_3x3", "max_pool_3x3"]).parse("DARTS_V2")


# -- options and "search small, train big" ----------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"channels": 15}, r"space.channels must be even \(FactorizedReduce halves it\), got 15"),
    ({"channels": 2**40}, r"space.channels must be an integer in \[2, 4096\]"),
    ({"channels": 16.0}, r"space.channels must be an integer in \[2, 4096\], got 16.0"),
    ({"final_channels": 0}, r"space.final_channels must be an integer in \[2, 4096\]"),
    ({"cells": 0}, r"space.cells must be an integer in \[1, 100\]"),
    ({"cells": 10**6}, r"space.cells must be an integer in \[1, 100\]"),
    ({"final_cells": 101}, r"space.final_cells must be an integer in \[1, 100\]"),
    ({"nodes": 9}, r"space.nodes must be an integer in \[1, 8\]"),
    ({"nodes": True}, r"space.nodes must be an integer"),
    ({"auxiliary": "yes"}, r"space.auxiliary must be true or false"),
    ({"ops": ["sep_conv_3x3", "conv_7x7"]}, r"space.ops has unknown 'conv_7x7' \(valid: none, max_pool_3x3"),
    ({"ops": "sep_conv_3x3"}, r"space.ops must be a list of strings"),
    ({"ops": ["none"]}, r"space.ops needs an op other than 'none'"),
    ({"ops": ["skip_connect", "skip_connect"]}, r"space.ops lists a value twice"),
    ({"drop_path": 1.0}, r"space.drop_path must be a number in \[0, 1\)"),
    ({"final_drop_path": True}, r"space.final_drop_path must be a number in \[0, 1\)"),
    ({"final_auxiliary": 1}, r"space.final_auxiliary must be true or false"),
    ({"width": 3}, r"unknown option 'width' .*valid: channels, cells, nodes, auxiliary, ops"),
])
def test_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        create_space("darts", **options)


def test_final_space_is_the_same_space_at_the_final_size_and_roundtrips_its_options():
    space = create_space("darts", channels=8, cells=5, nodes=3, ops=["sep_conv_3x3", "skip_connect"],
                         final_channels=12, final_cells=7, final_drop_path=0.1)
    final = space.final_space()
    assert (final.channels, final.cells, final.auxiliary, final.drop_path) == (12, 7, True, 0.1)
    assert (final.nodes, final.ops) == (3, ("sep_conv_3x3", "skip_connect"))
    again = create_space("darts", **final.options())
    assert again.options() == final.options() and again.decisions() == space.decisions()
    assert final.final_space().options() == final.options()


def test_published_darts_v2_has_the_published_size():
    """DARTS (2nd order), C=36, 20 cells, auxiliary head, CIFAR-10: 3.3M parameters without the head."""
    model = create_space("darts").final_space().build(DARTS_V2, CIFAR)
    total = sum(p.numel() for p in model.parameters())
    without_aux = count_params_without_aux(model)
    print(f"DARTS_V2 C=36 20 cells: {total:,} parameters, {without_aux:,} without the auxiliary head")
    assert 3_200_000 <= without_aux <= 3_400_000
    assert total - without_aux == sum(p.numel() for p in model.auxiliary_head.parameters()) > 0
    assert len(model.cells) == 20 and [i for i, c in enumerate(model.cells) if c.reduction] == [6, 13]


# -- the network ---------------------------------------------------------------------------
@pytest.mark.parametrize("task", [DIGITS, CIFAR, Task((2, 5, 7), 3)], ids=["digits", "cifar", "odd"])
def test_network_reduces_twice_doubles_channels_and_aux_head_works_on_small_maps(task):
    space = small_space(cells=5, auxiliary=True)
    model = space.build(space.sample(np.random.default_rng(0)), task)
    assert [c.reduction for c in model.cells] == [False, True, False, True, False]
    assert model.classifier.in_features == 3 * 4 * 4  # nodes * channels * 2 * 2
    sizes = []
    model.cells[-1].register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    model.train()
    x = torch.randn(4, *task.input_shape)
    out = model(x)
    assert out.shape == (4, task.num_classes)
    assert sizes[0][1:] == tuple(-(-n // 4) for n in task.input_shape[1:])  # two halvings (ceil): 8 -> 2, 5x7 -> 2x2
    assert model.aux_logits is not None and model.aux_logits.shape == (4, task.num_classes)
    (out.sum() + model.aux_logits.sum()).backward()
    assert model.auxiliary_head.classifier.weight.grad.abs().sum() > 0
    model.eval()
    model(x)
    assert model.aux_logits is None


def test_batch_of_one_trains_without_the_auxiliary_head():
    """The aux head's last BatchNorm sees a 1x1 map: a batch of one is skipped, not a crash."""
    space = small_space(cells=5, auxiliary=True)
    model = space.build(space.sample(np.random.default_rng(1)), CIFAR).train()
    out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10) and model.aux_logits is None
    out.sum().backward()
    model(torch.randn(2, 3, 32, 32))
    assert model.aux_logits is not None and model.aux_logits.shape == (2, 10)


@pytest.mark.parametrize("task", [Task((16,), 2), Task((3, 32), 2)], ids=["vector", "2d"])
def test_non_image_tasks_are_a_clear_config_error(task):
    space = small_space()
    with pytest.raises(ConfigError, match=r"space 'darts' builds image networks and needs input shape \(C, H, W\)"):
        space.build(space.sample(np.random.default_rng(0)), task)
    with pytest.raises(ConfigError, match=r"space 'darts' builds image networks"):
        space.supernet(task)


def test_path_features_have_path_length_entries():
    for nodes in (1, 3, 5):
        space = create_space("darts", nodes=nodes, ops=["none", "skip_connect", "sep_conv_3x3"])
        arch = space.sample(np.random.default_rng(nodes))
        assert space.features(arch, "path").shape == (space.path_length(),)


def test_reduction_cell_edges_from_cell_inputs_have_stride_two():
    space = create_space("darts", channels=4, cells=3, nodes=2)
    arch = space.parse("normal=sep_conv_3x3~0,max_pool_3x3~1|skip_connect~2,dil_conv_5x5~0;"
                       "reduce=skip_connect~0,avg_pool_3x3~1|skip_connect~2,sep_conv_5x5~1")
    model = space.build(arch, DIGITS)
    reduce = model.cells[1]
    assert reduce.reduction and type(reduce.ops[0].op).__name__ == "FactorizedReduce"
    assert type(reduce.ops[2].op).__name__ == "Identity"  # node 0 -> node 1 stays at stride 1
    assert type(model.cells[2].pre0).__name__ == "FactorizedReduce"  # after a reduction


def test_drop_path_is_random_in_training_only():
    space = small_space(drop_path=0.5)
    model = space.build(space.sample(np.random.default_rng(3)), DIGITS)
    x = torch.randn(4, 1, 8, 8)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(x), model(x))


# -- decisions, operators, encodings ---------------------------------------------------------
def test_decisions_are_an_op_and_an_input_per_node_input():
    space = create_space("darts")
    names = [d.name for d in space.decisions()]
    assert len(names) == 2 * 4 * 2 * 2 and names[:4] == ["normal.node0.op0", "normal.node0.input0",
                                                         "normal.node0.op1", "normal.node0.input1"]
    inputs = {d.name: d.choices for d in space.decisions()}
    assert inputs["reduce.node3.input1"] == (0, 1, 2, 3, 4) and inputs["normal.node0.input0"] == (0, 1)
    assert inputs["normal.node2.op0"] == OPS
    assert space.encode(DARTS_V2)[:4] == [OPS.index("sep_conv_3x3"), 0, OPS.index("sep_conv_3x3"), 1]
    assert space.size() == (8 ** 16) * (2 * 3 * 4 * 5) ** 4


def test_single_op_space_mutates_only_inputs():
    space = create_space("darts", nodes=3, ops=["sep_conv_3x3"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        diff = [d.name for d, x, y in zip(space.decisions(), space.encode(arch), space.encode(child)) if x != y]
        assert len(diff) == 1 and ".input" in diff[0]


def test_path_encoding_labels_paths_by_op_sequence():
    space = create_space("darts", nodes=2, ops=["none", "skip_connect", "sep_conv_3x3"])
    assert space.feature_kinds() == ("onehot", "path")
    k = 2  # ops other than none
    block = k + k * k
    assert space.path_length() == 4 * block
    arch = space.parse("normal=sep_conv_3x3~0,none~1|skip_connect~2,skip_connect~1;"
                       "reduce=none~0,none~1|none~2,none~0")
    f = space.features(arch, "path")
    assert f.shape == (space.path_length(),)
    # normal: c_{k-2}->sep (len 1), c_{k-2}->sep->skip (len 2), c_{k-1}->skip; reduce: nothing
    skip, sep = 0, 1
    expect = {0 * block + sep, 0 * block + k + sep * k + skip, 1 * block + skip}
    assert set(np.flatnonzero(f)) == expect
    # paths longer than the labelled length get one indicator per length
    deep = create_space("darts", nodes=5)
    chain = "|".join(f"sep_conv_3x3~{i + 1},none~0" for i in range(5))
    g = deep.features(deep.parse(f"normal={chain};reduce={chain}"), "path")
    assert len(g) == deep.path_length() == 4 * (7 + 49 + 343 + 2) and g.sum() == 2 * 5
    assert len(create_space("darts").features(DARTS_V2, "path")) == 1600


def test_diagram_draws_both_cells_with_op_labelled_edges():
    space = create_space("darts")
    d = space.diagram(DARTS_V2)
    labelled = [(s, t, op) for s, t, op in d.edges if op]
    assert len(labelled) == 16 and ("normal.c_k-1", "normal.2", "sep_conv_3x3") in labelled
    assert ("reduce.0", "reduce.1", "skip_connect") in labelled
    assert sum(1 for _, t, op in d.edges if t.endswith(".c_k") and not op) == 8
    assert "c_{k-2}" in d.to_dot()
    no_edge = space.parse(str(DARTS_V2).replace("dil_conv_3x3~2", "none~2"))
    assert len([e for e in space.diagram(no_edge).edges if e[2]]) == 15


# -- the supernet --------------------------------------------------------------------------
def supernet_space(**options):
    return create_space("darts", **{"channels": 4, "cells": 3, "nodes": 3, **options})


def test_supernet_has_one_shared_choice_point_per_edge_and_cell_type():
    space = create_space("darts")
    net = space.supernet(CIFAR)
    assert len(net.choice_points) == 2 * (2 + 3 + 4 + 5) == 28
    assert net.choice_points[0].name == "normal.node0.input0" and net.choice_points[14].name == "reduce.node0.input0"
    assert all(cp.candidates == OPS for cp in net.choice_points)
    cell_bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and not any(m.affine for m in cell_bns)  # as DARTS (the stem's BN is affine)
    restricted = supernet_space(ops=["sep_conv_3x3", "skip_connect"]).supernet(DIGITS)
    assert restricted.choice_points[0].candidates == ("sep_conv_3x3", "skip_connect", "none")


def test_derive_of_a_path_gives_the_architecture_back():
    space = supernet_space(ops=[op for op in OPS if op != "none"])
    net = space.supernet(DIGITS)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        arch = space.sample(rng)
        if any(g[i][1] == g[i + 1][1] for g in (arch.normal, arch.reduce) for i in range(0, len(g), 2)):
            continue  # a duplicate input is one edge; see the next test
        derived = net.derive(net.path_weights(arch))
        assert derived == arch.sorted_inputs()  # equal weights: the lower input comes first
        assert net.derive(net.path_weights(derived)) == derived
        checked += 1
    assert checked >= 10


def test_duplicate_inputs_keep_the_first_non_none_op_on_the_shared_edge():
    space = supernet_space(nodes=2)
    net = space.supernet(DIGITS)
    arch = space.parse("normal=none~1,sep_conv_5x5~1|max_pool_3x3~0,avg_pool_3x3~0;"
                       "reduce=sep_conv_3x3~0,skip_connect~1|skip_connect~2,dil_conv_3x3~1")
    path = net.path(arch)
    cands = net.candidates
    assert [cands[k] for k in path[:5]] == ["none", "sep_conv_5x5", "max_pool_3x3", "none", "none"]
    assert [cands[k] for k in path[5:]] == ["sep_conv_3x3", "skip_connect", "none", "dil_conv_3x3", "skip_connect"]


def test_derive_follows_darts_top2_rule_and_ignores_none():
    space = supernet_space(nodes=2)
    net = space.supernet(DIGITS)
    none = net.none_index
    w = [torch.full((len(OPS),), 0.01) for _ in net.choice_points]
    # node 1 (edges 2, 3, 4): edge 2 is dominated by none, edges 3 and 4 have the strongest real ops
    w[2][none] = 5.0
    w[3][OPS.index("dil_conv_5x5")] = 0.3
    w[4][OPS.index("avg_pool_3x3")] = 0.6
    w[0][OPS.index("sep_conv_3x3")] = 0.9
    arch = net.derive(w)
    assert arch.normal[2:] == (("avg_pool_3x3", 2), ("dil_conv_5x5", 1))  # stronger edge first
    assert arch.normal[0] == ("sep_conv_3x3", 0) and "none" not in str(arch)


def test_supernet_soft_weights_backprop_into_architecture_parameters():
    space = supernet_space()
    net = space.supernet(CIFAR)
    alphas = torch.randn(len(net.choice_points), len(OPS), requires_grad=True)
    out = net(torch.randn(2, 3, 32, 32), list(torch.softmax(alphas, dim=-1)))
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).sum().backward()
    assert alphas.grad is not None and (alphas.grad.abs().sum(dim=1) > 0).all()


def test_one_hot_path_runs_only_the_selected_candidates():
    space = supernet_space()
    net = space.supernet(DIGITS)
    calls = []
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge):
                op.register_forward_hook(lambda m, i, o, key=(c, e, k): calls.append(key))
    arch = space.sample(np.random.default_rng(7))
    path = net.path(arch)
    out = net(torch.randn(2, 1, 8, 8), net.path_weights(arch))
    assert out.shape == (2, 10)
    n = net.edges_per_cell
    expect = sorted((c, e, path[e + (n if cell.reduction else 0)]) for c, cell in enumerate(net.cells) for e in range(n))
    assert sorted(calls) == expect


# -- PC-DARTS partial channels -------------------------------------------------------------
def edge_op_params(net):
    return sum(p.numel() for cell in net.cells for p in cell.edges.parameters())


def test_partial_channels_shrink_the_edge_ops_and_keep_every_shape():
    space = supernet_space(channels=8, cells=3, nodes=2)
    full = space.supernet(CIFAR)
    assert space.supernet(CIFAR, partial_channels=None).state_dict().keys() == full.state_dict().keys()
    weights = [torch.full((len(OPS),), 1.0 / len(OPS)) for _ in full.choice_points]
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    for k in (1, 2, 4):
        net = space.supernet(CIFAR, partial_channels=k)
        seen = []
        hooks = [cell.register_forward_hook(lambda m, i, o: seen.append(o.shape)) for cell in net.cells]
        assert net(x, weights).shape == (2, 10)
        shapes[k] = seen
        for h in hooks:
            h.remove()
        ratio = edge_op_params(full) / edge_op_params(net)
        assert k <= ratio <= k * k, (k, ratio)  # depthwise weights shrink K-fold, pointwise K^2-fold
    assert shapes[1] == shapes[2] == shapes[4]
    assert edge_op_params(space.supernet(CIFAR, partial_channels=1)) == edge_op_params(full)


def test_partial_mix_runs_one_kth_of_the_channels_and_passes_the_rest():
    from archsearch.spaces.darts_network import edge_op
    from archsearch.spaces.darts_supernet import channel_shuffle, partial_mix

    k, c = 4, 8
    x = torch.randn(2, c, 5, 5)
    w = torch.tensor([0.3, 0.7])
    for stride in (1, 2):
        ops = [edge_op(name, c // k, stride, affine=False) for name in ("sep_conv_3x3", "skip_connect")]
        out = partial_mix(ops, x, w, k)
        size = 5 if stride == 1 else 3
        assert out.shape == (2, c, size, size)
        unshuffled = channel_shuffle(out, c // k)  # the inverse of a K-group shuffle of C channels
        head = w[0] * ops[0](x[:, : c // k]) + w[1] * ops[1](x[:, : c // k])
        rest = x[:, c // k:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, c // k:], 2, 2, ceil_mode=True)
        assert torch.allclose(unshuffled[:, : c // k], head, atol=1e-6)
        assert torch.equal(unshuffled[:, c // k:], rest)


def test_partial_channels_must_divide_the_channels():
    message = r"^strategy.partial_channels=3 must divide space.channels=4 \(valid: 1, 2, 4\)$"
    with pytest.raises(ConfigError, match=message):
        supernet_space(channels=4).supernet(DIGITS, partial_channels=3)
    with pytest.raises(ConfigError, match="strategy.partial_channels must be an integer >= 1"):
        supernet_space(channels=4).supernet(DIGITS, partial_channels=0)


def test_node_groups_are_the_edges_entering_each_node():
    net = supernet_space(nodes=3).supernet(DIGITS)
    assert net.node_groups == [(0, 2), (2, 5), (5, 9), (9, 11), (11, 14), (14, 18)]
    assert [net.choice_points[e].name for e in range(*net.node_groups[4])] == [
        "reduce.node1.input0", "reduce.node1.input1", "reduce.node1.input2"]
