"""The hierarchical space (Liu et al. 2018): motifs of primitives, a cell of motifs, the paper's mutation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

import archsearch.spaces.hierarchical  # noqa: F401  (registers the space)
from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import create_space
from archsearch.spaces.hierarchical import PRIMITIVES
from archsearch.spaces.hierarchical_dag import HierarchicalArch, edge_list
from archsearch.spaces.hierarchical_network import Dag, primitive

DIGITS, CIFAR = Task((1, 8, 8), 10), Task((3, 32, 32), 7)
SMALL = {"motifs": 2, "motif_nodes": 3, "cell_nodes": 3, "channels": 4}
# 2 motifs of 3 nodes (3 edges each) and a 3-node cell
EXAMPLE = "m1=sep3,conv1/max3;m2=none,none/none;cell=m1,id/m2"


def test_string_form_rows_and_json():
    space = create_space("hierarchical", **SMALL)
    arch = space.parse(" m1 = sep3 , conv1 / max3 ; m2=none,none/none; cell=m1,id/m2 ")
    assert str(arch) == EXAMPLE
    assert arch.motifs == (("sep3", "conv1", "max3"), ("none", "none", "none"))
    assert arch.cell == ("m1", "id", "m2")
    assert space.from_dict(json.loads(arch.to_json())) == arch
    assert arch.to_dict() == {"motifs": [["sep3", "conv1", "max3"], ["none"] * 3], "cell": ["m1", "id", "m2"]}
    # decisions: every motif entry, then every cell entry, in row order
    names = [d.name for d in space.decisions()]
    assert names == ["m1.0-1", "m1.0-2", "m1.1-2", "m2.0-1", "m2.0-2", "m2.1-2", "cell.0-1", "cell.0-2", "cell.1-2"]
    assert space.decisions()[0].choices == PRIMITIVES
    assert space.decisions()[-1].choices == ("none", "id", "m1", "m2")
    assert space.encode(arch) == [3, 1, 4, 0, 0, 0, 2, 1, 3]


def test_default_sizes_follow_the_paper():
    space = create_space("hierarchical")
    arch = space.sample(np.random.default_rng(0))
    assert len(arch.motifs) == 6 and all(len(m) == 6 for m in arch.motifs) and len(arch.cell) == 10
    assert str(arch).count("/") == 6 * 2 + 3
    assert space.size() == 7 ** 36 * 8 ** 10


@pytest.mark.parametrize("text, message", [
    ("m1=sep3,conv1/max3;m2=none,none/none", "missing the level-3 DAG"),
    ("m1=sep3,conv1/max3;cell=m1,id/m1;m2=none,none/none", "'cell=' must be the last part"),
    ("m2=sep3,conv1/max3;cell=m1,id/m1", r"expected m1= or cell=, got 'm2'="),
    ("m1=sep3,conv1/max3;m2=none/none,none;cell=m1,id/m2", r"m2: row 1 has 1 entries, expected 2"),
    ("m1=sep3,conv1/max3;m2=none,none/none;cell=m1,id/", r"cell: row 2: '' is not an op name"),
    ("m1=sep3,conv1/max3;m2=none,none/none;cell m1", "expected NAME=ROWS"),
    ("m1=sep3,conv1/max3;m2=none,none/wat;cell=m1,id/m2", r"m2: edge 1->2: 'wat' is not in the space \(valid: none"),
    ("m1=sep3,conv1/max3;m2=none,none/none;cell=m1,id/m3", r"cell: edge 1->2: 'm3' is not in the space"),
    ("m1=sep3,conv1/max3;cell=m1,id/m1", r"expected 2 motifs m1..m2 \(space.motifs\), got 1"),
    ("m1=sep3/max3,none/id;m2=sep3,conv1/max3;cell=m1,id/m2",
     r"m1: row 1 has 1 entries, expected 3 \(3 rows of an upper triangle have 3, 2, 1 entries\)"),
    ("m1=sep3;m2=sep3,conv1/max3;cell=m1,id/m2",
     r"m1: expected a 3-node DAG \(3 entries, space.motif_nodes\), got 2 nodes"),
    ("m1=sep3,conv1/max3;m2=none,none/none;cell=m1,id,none/m2,none/id", "cell: expected a 3-node DAG"),
])
def test_parse_errors_are_one_line(text, message):
    with pytest.raises(ParseError, match=message) as info:
        create_space("hierarchical", **SMALL).parse(text)
    assert "\n" not in str(info.value)


def test_parse_is_flat_and_handles_long_garbage():
    space = create_space("hierarchical", **SMALL)
    for text in ("m1=" * 5000, "/" * 10000, ";" * 10000, "m1=" + "a," * 5000, "cell=" + "[" * 5000, "=;=;="):
        with pytest.raises(ParseError):
            space.parse(text)
    for bad in ({"motifs": [["sep3", "id"]], "cell": ["id"]}, {"motifs": "m1", "cell": ["id"]},
                {"motifs": [[1, 2, 3]], "cell": ["id"]}, {"motifs": []}):
        with pytest.raises(ParseError):
            space.from_dict(bad)


@pytest.mark.parametrize("name", [p for p in PRIMITIVES if p != "none"])
def test_primitives_keep_shape_and_convs_end_in_bn_relu(name):
    op = primitive(name, 6)
    x = torch.randn(2, 6, 5, 5)
    assert op(x).shape == x.shape
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    if name in ("conv1", "dw3", "sep3"):
        children = list(op.children())
        assert isinstance(children[-2], torch.nn.BatchNorm2d) and isinstance(children[-1], torch.nn.ReLU)
        assert [c.kernel_size for c in convs] == {"conv1": [(1, 1)], "dw3": [(3, 3)], "sep3": [(3, 3), (1, 1)]}[name]
        assert convs[0].groups == (1 if name == "conv1" else 6)
    else:
        assert not convs


def test_orphan_rule_and_unused_nodes():
    # 4 nodes; edges (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): node 1 has no input -> takes node 0;
    # node 2 feeds nothing -> not built; output merges 0->3 (sep3) and 1->3 (id) by concat + 1x1
    entries = ("none", "max3", "sep3", "conv1", "id", "none")
    dag = Dag(4, entries, 5, lambda p: primitive(p, 5))
    assert sorted(dag.edges.keys()) == ["0_1", "0_3", "1_3"]
    assert isinstance(dag.edges["0_1"].op, torch.nn.Identity)
    assert list(dag.merges.keys()) == ["3"] and dag.merges["3"][0].in_channels == 10
    assert dag(torch.randn(2, 5, 4, 4)).shape == (2, 5, 4, 4)
    # an all-none DAG is the identity
    empty = Dag(4, ("none",) * 6, 5, lambda p: primitive(p, 5))
    x = torch.randn(2, 5, 4, 4)
    assert torch.equal(empty(x), x) and not list(empty.parameters())


def test_all_none_architecture_still_trains():
    space = create_space("hierarchical", **SMALL)
    arch = space.parse("m1=none,none/none;m2=none,none/none;cell=none,none/none")
    model = space.build(arch, DIGITS)
    out = model(torch.randn(4, 1, 8, 8))
    out.sum().backward()
    assert out.shape == (4, 10) and model.stem[0].weight.grad.abs().sum() > 0


def test_network_template_downsamples_doubles_width_and_stops_at_2x2():
    space = create_space("hierarchical", **{**SMALL, "stages": 4, "cells": 2})
    arch = space.parse(EXAMPLE)
    model = space.build(arch, DIGITS)
    cells = [m for m in model.body if isinstance(m, Dag)]
    downs = [m for m in model.body if not isinstance(m, Dag)]
    assert len(cells) == 8 and len(downs) == 3
    assert [d[1].out_channels for d in downs] == [8, 16, 32] and model.head.in_features == 32
    assert [d[0].stride for d in downs] == [(2, 2), (2, 2), (1, 1)]  # 8 -> 4 -> 2, then stays 2x2
    # every cell instance has its own weights, and each motif edge of the cell is its own Dag
    assert cells[0].edges["0_1"] is not cells[1].edges["0_1"]
    assert isinstance(cells[0].edges["0_1"], Dag) and isinstance(cells[0].edges["1_2"], Dag)
    out = space.build(arch, CIFAR)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_mutation_follows_the_papers_sampling():
    """Level uniform, then motif, then successor i uniform, then predecessor j < i uniform."""
    space = create_space("hierarchical", motifs=3, motif_nodes=4, cell_nodes=5, channels=4)
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    names = [d.name for d in space.decisions()]
    levels, motifs, cell_edges = Counter(), Counter(), Counter()
    n = 6000
    for _ in range(n):
        child = space.mutate(arch, rng)
        changed = [k for k, (a, b) in enumerate(zip(space.encode(arch), space.encode(child))) if a != b]
        assert len(changed) == 1
        name = names[changed[0]]
        levels[name.startswith("cell")] += 1
        if name.startswith("cell"):
            cell_edges[name] += 1
        else:
            motifs[name.split(".")[0]] += 1
    # level 3 has 10 decisions of 18+10 but gets half of the mutations
    assert abs(levels[True] / n - 0.5) < 0.03
    assert all(abs(c / levels[False] - 1 / 3) < 0.04 for c in motifs.values()) and len(motifs) == 3
    # successor 1 has one predecessor: P(0->1) = 1/4; successor 4 has four: P(j->4) = 1/16
    assert abs(cell_edges["cell.0-1"] / levels[True] - 1 / 4) < 0.03
    assert abs(cell_edges["cell.2-4"] / levels[True] - 1 / 16) < 0.02


def test_mutation_with_a_single_primitive_only_touches_the_cell():
    space = create_space("hierarchical", **{**SMALL, "primitives": ["sep3"]})
    rng = np.random.default_rng(1)
    for _ in range(30):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert child.motifs == arch.motifs and sum(a != b for a, b in zip(arch.cell, child.cell)) == 1


def test_unused_motifs_are_part_of_the_genotype():
    space = create_space("hierarchical", **SMALL)
    arch = space.parse(EXAMPLE.replace("cell=m1,id/m2", "cell=m1,id/id"))
    other = space.parse(EXAMPLE.replace("cell=m1,id/m2", "cell=m1,id/id").replace("m2=none", "m2=sep3"))
    assert arch != other and str(arch) != str(other) and arch.to_json() != other.to_json()
    assert arch.id == other.id  # the id is the network's (canonical form): an unused motif builds nothing


def test_diagram_has_the_cell_and_each_used_motif():
    space = create_space("hierarchical", motifs=3, motif_nodes=3, cell_nodes=4, channels=4)
    arch = space.parse("m1=sep3,conv1/max3;m2=none,dw3/avg3;m3=id,id/id;cell=m2,none,m1/none,none/id")
    d = space.diagram(arch)
    edges = {(s, t): label for s, t, label in d.edges}
    labels = dict(d.nodes)
    # cell: 0->1 m2, 0->3 m1, 2->3 id; node 2 is an orphan (takes the input) and node 1 is unused
    assert {k: v for k, v in edges.items() if k[0].startswith("cell")} == {
        ("cell.0", "cell.1"): "m2", ("cell.0", "cell.3"): "m1", ("cell.2", "cell.3"): "id",
        ("cell.0", "cell.2"): "id (no input)"}
    assert "unused" in labels["cell.1"] and "concat+1x1" in labels["cell.3"]
    # used motifs m1, m2 as their own graphs with prefixed ids; m3 is not drawn
    assert edges[("m1.0", "m1.1")] == "sep3" and edges[("m1.1", "m1.2")] == "max3"
    assert edges[("m2.0", "m2.1")] == "id (no input)" and edges[("m2.0", "m2.2")] == "dw3"
    assert not any(n.startswith("m3.") for n, _ in d.nodes)
    assert "m1=sep3" in d.title and d.to_dot().startswith("digraph")


@pytest.mark.parametrize("options, message", [
    ({"motifs": 0}, r"space.motifs must be an integer in \[1, 20\], got 0"),
    ({"motif_nodes": 1}, r"space.motif_nodes must be an integer in \[2, 10\], got 1"),
    ({"cell_nodes": 11}, "space.cell_nodes"),
    ({"primitives": ["sep3", "conv5"]}, r"unknown 'conv5' \(valid: none, conv1, dw3"),
    ({"primitives": []}, "space.primitives must be a non-empty list"),
    ({"primitives": ["id", "id"]}, "space.primitives lists a value twice"),
    ({"primitives": "sep3"}, "space.primitives must be a list of strings, got 'sep3'"),
    ({"channels": 0}, "space.channels"),
    ({"cells": True}, r"space.cells must be an integer in \[1, 32\], got True"),
    ({"channels": 2.0}, r"space.channels must be an integer in \[1, 4096\], got 2.0"),
    ({"stages": 0}, "space.stages"),
    ({"levels": 3}, "unknown option 'levels'"),
])
def test_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        create_space("hierarchical", **options)


def test_edge_order_is_row_major_upper_triangle():
    assert edge_list(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    space = create_space("hierarchical", **SMALL)
    rng = np.random.default_rng(3)
    for _ in range(20):
        arch = space.sample(rng)
        assert isinstance(arch, HierarchicalArch) and space.decode(space.encode(arch)) == arch


def test_decode_rejects_out_of_range_indices():
    space = create_space("hierarchical", **SMALL)
    good = space.encode(space.parse(EXAMPLE))
    for pos, value, message in ((0, -1, r"m1.0-1: index -1 is out of range 0..6"),
                                (0, 7, r"m1.0-1: index 7"),
                                (8, 4, r"cell.1-2: index 4 is out of range 0..3"),
                                (8, False, r"cell.1-2: index False"),
                                (3, 1.0, r"m2.0-1: index 1.0")):
        with pytest.raises(ParseError, match=message):
            space.decode(good[:pos] + [value] + good[pos + 1:])
    with pytest.raises(ParseError, match="expected 9 decisions, got 8"):
        space.decode(good[:-1])
    assert space.decode(np.array(good)) == space.parse(EXAMPLE)


def test_build_needs_an_image_task():
    space = create_space("hierarchical", **SMALL)
    with pytest.raises(ConfigError, match="space 'hierarchical' builds image networks"):
        space.build(space.parse(EXAMPLE), Task((16,), 2))


def path_entries(space, text):
    """The set entries of the path vector, decoded to primitive sequences (ints: long-path lengths)."""
    codes = [p for p in space.primitives if p not in ("none", "id")]
    k, out, vector = len(codes), set(), space.features(space.parse(text), "path")
    names = [()] + [tuple(codes[(n // k ** (length - 1 - d)) % k] for d in range(length))
                    for length in range(1, 4) for n in range(k ** length)]
    for e in np.flatnonzero(vector):
        out.add(names[e] if e < len(names) else e - len(names) + 4)
    return out


def test_path_encoding_layout_and_length():
    space = create_space("hierarchical", **SMALL)
    assert space.feature_kinds() == ("onehot", "path")
    # 5 labelled primitives; longest path: 2 cell edges x 2 motif edges = 4 primitives
    assert space.path_length() == 1 + 5 + 25 + 125 + 1
    assert create_space("hierarchical").path_length() == 1 + 155 + (4 * 3 - 3)
    assert create_space("hierarchical", **{**SMALL, "primitives": ["none", "id", "sep3"]}).path_length() == 1 + 3 + 1
    # EXAMPLE: m1 has paths sep3->max3 and conv1; m2 is all-none (the identity);
    # cell: 0->1 m1, 0->2 id, 1->2 m2
    assert path_entries(space, EXAMPLE) == {(), ("sep3", "max3"), ("conv1",)}
    # a 4-primitive path lands in the long-path entry
    long = "m1=sep3,none/dw3;m2=avg3,none/max3;cell=m1,none/m2"
    assert path_entries(space, long) == {4}
    vectors = {space.features(space.parse(t), "path").shape for t in (EXAMPLE, long)}
    assert vectors == {(space.path_length(),)}


def test_path_encoding_is_deterministic_and_tells_paths_apart():
    space = create_space("hierarchical", **SMALL)
    rng = np.random.default_rng(0)
    for arch in (space.sample(rng) for _ in range(20)):
        v = space.features(arch, "path")
        assert v.dtype == np.float32 and set(np.unique(v)) <= {0.0, 1.0}
        np.testing.assert_array_equal(v, space.features(space.parse(str(arch)), "path"))
    a = space.features(space.parse(EXAMPLE), "path")
    b = space.features(space.parse(EXAMPLE.replace("m1=sep3", "m1=dw3")), "path")
    c = space.features(space.parse(EXAMPLE.replace("cell=m1,id/m2", "cell=m1,none/m2")), "path")
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_path_encoding_ignores_what_the_network_does_not_compute():
    space = create_space("hierarchical", **SMALL)
    base = space.features(space.parse(EXAMPLE), "path")
    same = [
        EXAMPLE.replace("m2=none,none/none", "m2=id,none/id").replace("cell=m1,id/m2", "cell=m1,id/id"),
        # m2 unused, so its contents do not matter
        "m1=sep3,conv1/max3;m2=dw3,dw3/dw3;cell=m1,id/id",
        # an orphan node takes the input through an identity: node 1 here, which feeds m1 to the output
        "m1=sep3,conv1/max3;m2=none,none/none;cell=none,id/m1",
        # an id edge adds no primitive: m2 = one id edge is the identity, like the all-none m2
        EXAMPLE.replace("m2=none,none/none", "m2=none,id/none"),
    ]
    for text in same:
        assert space.parse(text) != space.parse(EXAMPLE)
        np.testing.assert_array_equal(space.features(space.parse(text), "path"), base, err_msg=text)
    # dead node: in a 4-node motif, node 2 feeds nothing, so the op on 0->2 does not matter
    big = create_space("hierarchical", motifs=1, motif_nodes=4, cell_nodes=2, channels=4)
    x = big.features(big.parse("m1=sep3,conv1,max3/none,avg3/none;cell=m1"), "path")
    y = big.features(big.parse("m1=sep3,dw3,max3/none,avg3/none;cell=m1"), "path")
    np.testing.assert_array_equal(x, y)


def test_path_encoding_is_fast_at_default_options():
    import time

    space = create_space("hierarchical")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(100)]
    start = time.perf_counter()
    for arch in archs:
        space.features(arch, "path")
    assert (time.perf_counter() - start) / len(archs) < 5e-3  # about 0.1 ms; loose for busy machines
