"""The NAS-Bench-201 space: exact string form, exact network, path encoding, supernet."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import archsearch.spaces.nb201  # noqa: F401  (registers the space)
from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces.base import count_params_without_aux, create_space
from archsearch.spaces.nb201 import EXAMPLE, OPS, MixedCell, NB201Arch, NB201Cell, ResidualReduction

CSV = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nb201" / "nb201_12epoch.csv"
CIFAR10 = Task((3, 32, 32), 10)
SMALL = {"channels": 4, "cells_per_stage": 2}


def test_string_form_is_exactly_nb201s():
    space = create_space("nb201")
    arch = space.parse(EXAMPLE)
    assert str(arch) == EXAMPLE
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                        "skip_connect")
    assert space.parse(" | none~0 |+|none~0|none~1|+|none~0|none~1|none~2|\n") == NB201Arch(("none",) * 6)
    assert space.from_dict(arch.to_dict()) == arch


@pytest.mark.parametrize("text, match", [
    ("|none~0|+|none~0|none~1|", r"expected 3 nodes joined by '\+', got 2"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "expected 3 nodes .*got 4"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", r"node 2 .*must read from node 1 \(~1\)"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", r"node 1 .*must read from node 0"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
     r"unknown op 'conv' \(valid: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3\)"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 .*between pipes"),
    ("|none~0|+|none~0|none~1+|none~0|none~1|none~2|", "node 2 .*between pipes"),
    ("|none~0|+|none~0 none~1|+|none~0|none~1|none~2|", "node 2 .*needs 2 incoming edge"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|", "node 3 .*needs 3 incoming edge"),
    ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "expected op~input"),
])
def test_malformed_strings_give_one_line_errors(text, match):
    with pytest.raises(ParseError, match=match) as info:
        create_space("nb201").parse(text)
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="|+~012 \nnone_skip", max_size=60)
       | st.lists(st.sampled_from(["|", "+", "~0", "~1", "~2", "none", "skip_connect", " "]), max_size=25).map("".join))
def test_near_miss_strings_raise_only_parse_errors(text):
    space = create_space("nb201")
    try:
        arch = space.parse(text)
    except ParseError as exc:
        assert "\n" not in str(exc)
        return
    assert space.parse(str(arch)) == arch


def test_ops_outside_a_restricted_space_are_rejected():
    space = create_space("nb201", ops=["nor_conv_3x3", "none"])
    assert space.ops == ("none", "nor_conv_3x3")  # canonical NB201 order
    with pytest.raises(ParseError, match=r"edge 0->2: op 'avg_pool_3x3' is not in the space "
                                         r"\(valid: none, nor_conv_3x3\)"):
        space.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ParseError, match="not in the space"):
        space.from_dict({"ops": ["skip_connect"] * 6})
    with pytest.raises(ParseError, match="list of 6 op names"):
        space.from_dict({"ops": ["none"] * 5})
    assert space.size() == 64
    rng = np.random.default_rng(0)
    assert {op for _ in range(50) for op in space.mutate(space.sample(rng), rng).ops} == {"none", "nor_conv_3x3"}


def test_every_benchmark_string_parses_and_roundtrips():
    if not CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {CSV}")
    with CSV.open(newline="") as f:
        strings = [row["arch"] for row in csv.DictReader(f)]
    space = create_space("nb201")
    archs = [space.parse(s) for s in strings]
    assert [str(a) for a in archs] == strings
    assert len(strings) == 15_625 == len(set(archs)) == space.size()


def test_parameter_count_matches_nb201_formula():
    """73,306 + 243,040 * n3 + 28,000 * n1 on CIFAR-10 for every (n3, n1), conv edges placed at random."""
    space = create_space("nb201")
    rng = np.random.default_rng(0)
    for n3 in range(7):
        for n1 in range(7 - n3):
            ops = ["nor_conv_3x3"] * n3 + ["nor_conv_1x1"] * n1
            ops += [str(o) for o in rng.choice(["none", "skip_connect", "avg_pool_3x3"], 6 - n3 - n1)]
            arch = NB201Arch(tuple(rng.permutation(ops).tolist()))
            model = space.build(arch, CIFAR10)
            assert count_params_without_aux(model) == 73_306 + 243_040 * n3 + 28_000 * n1, str(arch)


def test_network_is_the_nb201_skeleton():
    space = create_space("nb201")
    model = space.build(space.parse(EXAMPLE), CIFAR10)
    stem_conv, stem_bn = model.stem
    assert (stem_conv.kernel_size, stem_conv.out_channels, stem_conv.bias) == ((3, 3), 16, None)
    assert isinstance(stem_bn, nn.BatchNorm2d) and stem_bn.affine
    kinds = [type(m).__name__ for m in model.cells]
    assert kinds == ["NB201Cell"] * 5 + ["ResidualReduction"] + ["NB201Cell"] * 5 + ["ResidualReduction"] \
        + ["NB201Cell"] * 5
    widths = [m.edges[0].op[1].out_channels for m in model.cells if isinstance(m, NB201Cell)]
    assert widths == [16] * 5 + [32] * 5 + [64] * 5
    block = model.cells[5]
    assert isinstance(block, ResidualReduction)
    relu, conv, bn = block.conv_a.op
    assert isinstance(relu, nn.ReLU) and conv.stride == (2, 2) and conv.bias is None and bn.affine
    assert block.conv_b.op[1].stride == (1, 1)
    pool, proj = block.shortcut
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert proj.kernel_size == (1, 1) and proj.bias is None  # no BN on the shortcut
    avg = model.cells[0].edges[2].pool
    assert (avg.kernel_size, avg.stride, avg.padding, avg.count_include_pad) == (3, 1, 1, False)
    assert isinstance(model.lastact[0], nn.BatchNorm2d) and isinstance(model.lastact[1], nn.ReLU)
    assert (model.classifier.in_features, model.classifier.out_features) == (64, 10)


def test_cell_computes_each_node_as_the_sum_of_its_incoming_edges():
    """Against NB201's formula, 'none' edges computed as zeros; BN biases random so zero inputs matter."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cells = [("none",) * 6, ("none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "none")]
    cells += [tuple(rng.choice(OPS, 6).tolist()) for _ in range(20)]
    for ops in cells:
        cell = NB201Cell(ops, 3).eval()
        for m in cell.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.bias)
        x = torch.randn(2, 3, 5, 5)
        e = [(lambda t, i=i: torch.zeros_like(t) if ops[i] == "none" else cell.edges[i](t)) for i in range(6)]
        n1 = e[0](x)
        n2 = e[1](x) + e[2](n1)
        n3 = e[3](x) + e[4](n1) + e[5](n2)
        torch.testing.assert_close(cell(x), n3)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 7), (2, 1, 1), (3, 5, 9), (3, 32, 32)])
def test_any_input_shape_and_class_count(shape):
    space = create_space("nb201", channels=4, cells_per_stage=1)
    model = space.build(space.parse(EXAMPLE), Task(shape, 3))
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert model.stem[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match=r"needs input shape \(C, H, W\)"):
        space.build(space.parse(EXAMPLE), Task((10,), 3))


def test_path_encoding():
    space = create_space("nb201")
    assert space.feature_kinds() == ("onehot", "path") and space.path_length() == 4 + 16 + 64
    # non-none ops indexed skip 0, 1x1 1, 3x3 2, avg 3; paths 0->3 (skip), 0->1->3 (3x3,3x3),
    # 0->2->3 (3x3,skip), 0->1->2->3 (3x3,avg,skip)
    vec = space.features(space.parse(EXAMPLE), "path")
    assert vec.shape == (84,) and vec.dtype == np.float32
    assert np.flatnonzero(vec).tolist() == sorted([0, 4 + 2 * 4 + 2, 4 + 2 * 4 + 0, 20 + 2 * 16 + 3 * 4 + 0])
    assert not space.features(NB201Arch(("none",) * 6), "path").any()
    only_direct = space.features(NB201Arch(("nor_conv_1x1", "none", "none", "nor_conv_3x3", "none", "none")), "path")
    assert np.flatnonzero(only_direct).tolist() == [2]  # 0->1 leads nowhere: one path, 0->3
    small = create_space("nb201", ops=["none", "skip_connect", "nor_conv_3x3"])
    assert small.path_length() == 2 + 4 + 8
    assert len(small.features(small.sample(np.random.default_rng(0)), "path")) == 14
    assert space.features(space.parse(EXAMPLE)).shape == (30,)
    with pytest.raises(ConfigError, match="no 'graph' encoding"):
        space.features(space.parse(EXAMPLE), "graph")


def test_options_are_validated():
    with pytest.raises(ConfigError, match=r"space.ops has unknown 'sep_conv_3x3' \(valid: none, skip_connect"):
        create_space("nb201", ops=["none", "sep_conv_3x3"])
    with pytest.raises(ConfigError, match="twice"):
        create_space("nb201", ops=["none", "none", "skip_connect"])
    with pytest.raises(ConfigError, match="space.ops needs an op other than 'none'"):
        create_space("nb201", ops=["none"])
    with pytest.raises(ConfigError, match="space.ops must be a list of strings, got 'none'"):
        create_space("nb201", ops="none")
    with pytest.raises(ConfigError, match="space.channels"):
        create_space("nb201", channels=0)
    with pytest.raises(ConfigError, match="space.cells_per_stage"):
        create_space("nb201", cells_per_stage=2.5)
    with pytest.raises(ConfigError, match="unknown option 'layers'"):
        create_space("nb201", layers=3)


def test_operators_stay_in_the_space_and_mutate_one_edge():
    space = create_space("nb201")
    assert space.size() == 15_625 and [d.name for d in space.decisions()][:3] == ["edge0->1", "edge0->2", "edge1->2"]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, child.ops)) == 1
        seen.update(arch.ops)
    assert seen == set(OPS)
    assert len(space.neighbours(space.parse(EXAMPLE))) == 24
    with pytest.raises(ParseError, match="indices must be in 0..4"):
        space.decode([0, 0, 0, 0, 0, 5])


def test_diagram_is_the_cell_dag_without_none_edges():
    space = create_space("nb201")
    d = space.diagram(space.parse("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"))
    assert len(d.nodes) == 4
    assert sorted(d.edges) == sorted([("node0", "node1", "nor_conv_3x3"), ("node1", "node2", "avg_pool_3x3"),
                                      ("node0", "node3", "skip_connect"), ("node2", "node3", "nor_conv_1x1")])
    assert "nor_conv_3x3" in d.to_dot()


# -- the supernet ----------------------------------------------------------------
def test_supernet_choice_points_and_derivation():
    space = create_space("nb201", **SMALL)
    assert space.has_supernet
    net = space.supernet(CIFAR10)
    assert [cp.name for cp in net.choice_points] == [d.name for d in space.decisions()]
    assert all(cp.candidates == OPS for cp in net.choice_points)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert net.path(arch) == space.encode(arch)
        assert net.derive(net.path_weights(arch)) == arch
    soft = [torch.tensor([0.1, 0.2, 0.3, 0.9, 0.4])] * 6
    assert net.derive(soft) == NB201Arch(("nor_conv_3x3",) * 6)


def test_supernet_soft_mix_trains_the_architecture_weights():
    space = create_space("nb201", **SMALL)
    net = space.supernet(CIFAR10)
    torch.manual_seed(0)
    alphas = [(1e-3 * torch.randn(5)).requires_grad_() for _ in range(6)]
    out = net(torch.randn(4, 3, 32, 32), [torch.softmax(a, 0) for a in alphas])
    assert out.shape == (4, 10)
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)


@pytest.mark.parametrize("task", [Task((1, 8, 8), 10), Task((3, 32, 32), 7)], ids=["digits", "cifar"])
def test_supernet_one_hot_path_runs_only_the_selected_candidates(task):
    space = create_space("nb201", **SMALL)
    net = space.supernet(task)
    calls: dict[tuple[int, int, int], int] = {}

    def counter(key):
        def hook(module, inputs, output):
            calls[key] = calls.get(key, 0) + 1
        return hook

    cells = [m for m in net.modules() if isinstance(m, MixedCell)]
    assert len(cells) == 3 * SMALL["cells_per_stage"]
    for c, cell in enumerate(cells):
        for e, candidates in enumerate(cell.edges):
            for k, op in enumerate(candidates):
                op.register_forward_hook(counter((c, e, k)))
    rng = np.random.default_rng(1)
    for _ in range(3):
        arch = space.sample(rng)
        calls.clear()
        x = torch.randn(2, *task.input_shape)
        out = net(x, net.path_weights(arch))
        path = net.path(arch)
        assert calls == {(c, e, path[e]): 1 for c, e in itertools.product(range(len(cells)), range(6))}
        assert out.shape == space.build(arch, task)(x).shape == (2, task.num_classes)
    with pytest.raises(ValueError, match="expected 6 weight vectors"):
        net(torch.randn(2, *task.input_shape), net.path_weights(arch)[:5])
