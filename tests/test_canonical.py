"""Canonical architectures (issue 14): architectures with one id build the same network.

Per registered space, on its small options: a random sample and a variant that differs only in what
the space's ``canonical`` normalises (each space's "perturb" helper below, drawing from the space's
own choices) share an id, and their networks have the same modules (names and types), parameter
shapes and count, and outputs from the same weights. Every neighbour (one decision changed) that
shares an id passes the same check, which catches a canonical form that normalises too much; one
with another id must build a different network, which catches a redundancy the form misses.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.core import Task
from archsearch.spaces import create_space, list_spaces
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.chain import ChainArch, ChainLayer
from archsearch.spaces.darts_genotype import PARAM_FREE_OPS, DartsArch
from archsearch.spaces.hierarchical_dag import HierarchicalArch, dag_inputs, edge_list, live_nodes, nodes_for
from archsearch.spaces.hyperparams import HyperArch
from archsearch.testing.settings import small_space

TASK = Task((1, 8, 8), 10)  # every space builds it: an image, or 8 steps of 8 features for rnn_cell
# telling networks apart needs maps bigger than the pooling windows: on 8x8 a chain's last layer sees
# 2x2, where a 3x3 average pool before the global average changes nothing
WIDE = Task((1, 20, 20), 10)  # 5x5 before the global average (4x4 averages a 3x3 and a 5x5 pool alike)


def wide(space: SearchSpace) -> SearchSpace:
    """``space`` as it builds WIDE's 20 px at full size (a chain's stem would otherwise halve it to 10)."""
    if space.name != "chain":
        return space
    from archsearch.spaces.base import create_space

    return create_space("chain", **{**space.options(), "stem_max_size": 0})
Perturb = Callable[[SearchSpace, Any, np.random.Generator], Any]


def pick(rng: np.random.Generator, choices: Any) -> Any:
    return choices[int(rng.integers(len(choices)))]


# -- per space: a variant that differs only in what canonical() normalises ---------------
def perturb_chain(space: Any, arch: ChainArch, rng: np.random.Generator) -> ChainArch:
    """Identity layers: any kernel, channels, activation; pools: any channels, activation; a 1x1
    conv and a 1x1 dil_conv swap."""
    out = []
    for x in arch.layers:
        op, k, c, act = x.op, x.kernel, x.channels, x.activation
        if op in ("identity", "max_pool", "avg_pool"):
            c, act = pick(rng, space.channels), pick(rng, space.activations)
            k = pick(rng, space.kernels) if op == "identity" else k
        elif op in ("conv", "dil_conv") and k == 1 and {"conv", "dil_conv"} <= set(space.ops):
            op = pick(rng, ("conv", "dil_conv"))
        out.append(ChainLayer(op, k, c, act))
    return ChainArch(tuple(out))


def perturb_darts(space: Any, arch: DartsArch, rng: np.random.Generator) -> DartsArch:
    """A 'none' edge reads any state its node may read; an edge reading a node that is 'none' plus an
    identity skip (stride 1) reads any copy of that same state instead, and one reading a zero map
    (a node of 'none' edges, or of pools and skips of zero maps) any zero map."""
    def cell(genes: Any, reduction: bool) -> Any:
        root: list[Any] = list(range(2 + len(genes) // 2))
        for i in range(len(genes) // 2):
            pair = genes[2 * i : 2 * i + 2]
            if all(op == "none" or (op in PARAM_FREE_OPS and root[j] == "zero") for op, j in pair):
                root[i + 2] = "zero"
                continue
            for (op, j), (other, _) in (pair, pair[::-1]):
                if op == "skip_connect" and other == "none" and not (reduction and j < 2):
                    root[i + 2] = root[j]
        out = []
        for n, (op, j) in enumerate(genes):
            readable = range(n // 2 + 2)
            if op == "none":
                j = int(rng.integers(len(readable)))
            else:
                j = pick(rng, [k for k in readable if root[k] == root[j]])
            out.append((op, j))
        return tuple(out)
    return DartsArch(cell(arch.normal, False), cell(arch.reduce, True))


def _perturb_dag(entries: tuple[str, ...], choices: tuple[str, ...], rng: np.random.Generator) -> list[str]:
    """Edges into nodes that do not reach the output take any choice; an orphan's all-'none' inputs
    and an explicit 'id' from node 0 swap (where the choices have both)."""
    nodes = nodes_for(len(entries))
    assert nodes is not None
    incoming = dag_inputs(nodes, entries)
    live = live_nodes(incoming)
    pos = {e: k for k, e in enumerate(edge_list(nodes))}
    out = list(entries)
    for (_, i), k in pos.items():
        if not live[i]:
            out[k] = pick(rng, choices)
    for i in range(1, nodes):
        if live[i] and incoming[i] == [(0, "id")] and {"id", "none"} <= set(choices) and rng.random() < 0.5:
            for j in range(i):
                out[pos[(j, i)]] = "none"
            if rng.random() < 0.5:
                out[pos[(0, i)]] = "id"
    return out


def perturb_hierarchical(space: Any, arch: HierarchicalArch, rng: np.random.Generator) -> HierarchicalArch:
    """Motifs relabelled, unused motifs redrawn, edges into dead nodes redrawn, orphans rewritten."""
    cell = _perturb_dag(arch.cell, space.cell_ops, rng)
    incoming = dag_inputs(space.cell_nodes, cell)
    live = live_nodes(incoming)
    used = {op for i, ins in enumerate(incoming) if live[i] for _, op in ins}
    motifs = []
    for k, m in enumerate(arch.motifs):
        if f"m{k + 1}" in used:
            motifs.append(tuple(_perturb_dag(m, space.primitives, rng)))
        else:
            motifs.append(tuple(pick(rng, space.primitives) for _ in m))
    perm = rng.permutation(len(motifs))  # motif k becomes m{perm[k] + 1}
    relabelled: list[tuple[str, ...]] = [()] * len(motifs)
    for k, m in enumerate(motifs):
        relabelled[perm[k]] = m
    rename = {f"m{k + 1}": f"m{perm[k] + 1}" for k in range(len(motifs))}
    return HierarchicalArch(tuple(relabelled), tuple(rename.get(op, op) for op in cell))


def perturb_hyperparams(space: Any, arch: HyperArch, rng: np.random.Generator) -> HyperArch:
    """The inner architecture's redundant fields (the hyper-parameters all change training)."""
    inner = PERTURB.get(space.inner.name)
    return HyperArch(inner(space.inner, arch.arch, rng), arch.params) if inner and space.joint else arch


PERTURB: dict[str, Perturb] = {"chain": perturb_chain, "darts": perturb_darts,
                               "hierarchical": perturb_hierarchical, "hyperparams": perturb_hyperparams}
NO_REDUNDANCY = ("nb201", "rnn_cell", "skip_chain", "template")  # canonical() is to_dict()


# -- what "the same network" means --------------------------------------------------
def build(space: SearchSpace, arch: Architecture, task: Task) -> torch.nn.Module:
    torch.manual_seed(0)
    return space.build(arch, task)


def same_network(space: SearchSpace, a: Architecture, b: Architecture, task: Task = TASK) -> bool:
    """Same module names and types, same parameter shapes, same outputs (eval and train) from a's weights."""
    net_a, net_b = build(space, a, task), build(space, b, task)
    if [(n, type(m).__name__) for n, m in net_a.named_modules()] != \
            [(n, type(m).__name__) for n, m in net_b.named_modules()]:
        return False
    state = net_a.state_dict()
    if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in net_b.state_dict().items()}:
        return False
    assert sum(p.numel() for p in net_a.parameters()) == sum(p.numel() for p in net_b.parameters())
    net_b.load_state_dict(state)
    x = torch.randn(4, *task.input_shape, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        outs = []
        for net in (net_a, net_b):
            net.load_state_dict(state)  # train mode updates BN statistics: start both from the same
            net.train(train)
            torch.manual_seed(2)
            with torch.no_grad():
                outs.append(net(x))
        if not torch.allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6):
            return False
    return True


def ids_stable(space: SearchSpace, arch: Architecture) -> None:
    assert space.from_dict(json.loads(arch.to_json())).id == arch.id
    assert space.parse(str(arch)).id == arch.id
    json.dumps(arch.canonical())  # plain JSON


SPACES = list_spaces()


def test_every_space_says_whether_it_has_redundancy():
    assert set(SPACES) >= set(PERTURB) | set(NO_REDUNDANCY)
    for name in NO_REDUNDANCY:
        arch = small_space(name).sample(np.random.default_rng(0))
        assert arch.canonical() == arch.to_dict()


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_variants_in_normalised_fields_share_an_id_and_build_the_same_network(name: str, seed: int) -> None:
    space = small_space(name)
    rng = np.random.default_rng(seed)
    a = space.sample(rng)
    b = space.validate(PERTURB.get(name, lambda s, x, r: x)(space, a, rng))
    assert a.id == b.id and a.canonical() == b.canonical()
    ids_stable(space, a)
    ids_stable(space, b)
    assert same_network(space, a, b)


@pytest.mark.parametrize("name", sorted(PERTURB))
def test_perturbations_are_not_vacuous(name: str) -> None:
    """The helpers above do change the genotype often: the property test is about something."""
    space = small_space(name)
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(40):
        a = space.sample(rng)
        b = PERTURB[name](space, a, rng)
        changed += a.to_dict() != b.to_dict()
    assert changed >= 10


@pytest.mark.parametrize("name", SPACES)
def test_neighbours_share_an_id_exactly_when_they_build_the_same_network(name: str) -> None:
    space = small_space(name)
    rng = np.random.default_rng(7)
    merged = 0
    for _ in range(2):
        arch = space.sample(rng)
        neighbours = space.neighbours(arch)
        keep: set[int] = set()
        for same in (True, False):  # building is the slow part: at most 10 of each
            group = [n for n in neighbours if (n.id == arch.id) == same]
            keep |= {id(group[k]) for k in rng.permutation(len(group))[:10]}
        for n in neighbours:
            if id(n) not in keep:
                continue
            if n.id == arch.id:
                merged += 1
                assert same_network(space, arch, n), f"{n} shares the id of {arch}"
            elif name == "hyperparams" and n.arch == arch.arch:
                continue  # another learning rate: the same network, trained differently
            elif name != "rnn_cell":  # e.g. relu of a sigmoid is its identity: left to the genotype
                assert not same_network(wide(space), arch, n, WIDE), f"{n} builds what {arch} builds but has another id"
    if name in NO_REDUNDANCY:
        assert merged == 0


@pytest.mark.parametrize("name", SPACES)
def test_different_canonical_forms_give_different_ids(name: str) -> None:
    space = small_space(name)
    rng = np.random.default_rng(3)
    by_form: dict[str, str] = {}
    for _ in range(200):
        arch = space.sample(rng)
        by_form[json.dumps(arch.canonical(), sort_keys=True)] = arch.id
    assert len(set(by_form.values())) == len(by_form) > 20


# -- the rules, one example each ------------------------------------------------------
def test_chain_pool_and_identity_fields_do_not_change_the_id():
    space = create_space("chain", layers=4)
    a = space.parse("conv:3:16:relu|max_pool:3:96:relu|identity:1:64:tanh|dil_conv:1:32:gelu")
    b = space.parse("conv:3:16:relu|max_pool:3:32:gelu|identity:5:16:relu|conv:1:32:gelu")
    assert a.id == b.id and str(a) != str(b) and a.to_dict() != b.to_dict()
    assert same_network(space, a, b)
    for other in ("conv:3:32:relu|max_pool:3:96:relu|identity:1:64:tanh|dil_conv:1:32:gelu",  # conv width
                  "conv:3:16:relu|max_pool:5:96:relu|identity:1:64:tanh|dil_conv:1:32:gelu",  # pool kernel
                  "conv:3:16:relu|avg_pool:3:96:relu|identity:1:64:tanh|dil_conv:1:32:gelu",  # pool kind
                  "conv:3:16:relu|max_pool:3:96:relu|max_pool:1:64:tanh|dil_conv:1:32:gelu",  # not an identity
                  "conv:3:16:relu|max_pool:3:96:relu|identity:1:64:tanh|dil_conv:3:32:gelu",  # dilation matters
                  "conv:3:16:relu|max_pool:3:96:relu|identity:1:64:tanh|dil_conv:1:32:relu"):  # activation
        assert space.parse(other).id != a.id, other


def test_darts_none_edges_ignore_their_input_but_pair_order_counts():
    space = small_space("darts")
    a = space.parse("normal=none~0,sep_conv_3x3~1|skip_connect~0,none~2|none~3,max_pool_3x3~1;"
                    "reduce=none~1,avg_pool_3x3~0|dil_conv_3x3~2,none~0|none~0,none~3")
    b = space.parse("normal=none~1,sep_conv_3x3~1|skip_connect~0,none~0|none~1,max_pool_3x3~1;"
                    "reduce=none~0,avg_pool_3x3~0|dil_conv_3x3~2,none~2|none~3,none~1")
    assert a.id == b.id and same_network(space, a, b)
    swapped = space.parse("normal=sep_conv_3x3~1,none~0|skip_connect~0,none~2|none~3,max_pool_3x3~1;"
                          "reduce=none~1,avg_pool_3x3~0|dil_conv_3x3~2,none~0|none~0,none~3")
    assert swapped.id != a.id  # same function, but the edges' weights are named the other way round


def test_darts_a_node_that_copies_a_state_can_be_read_as_that_state():
    space = small_space("darts")
    # normal node 1 = skip(c_{k-2}) + none: reading node 1 (input 3) is reading c_{k-2} (input 0)
    a = space.parse("normal=sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,none~1|sep_conv_5x5~3,max_pool_3x3~2;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~3,max_pool_3x3~2")
    b = space.parse("normal=sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,none~1|sep_conv_5x5~0,max_pool_3x3~2;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~3,max_pool_3x3~2")
    assert a.id == b.id and same_network(space, a, b)
    # in the reduction cell a skip from c_{k-1} is a FactorizedReduce (weights): node 1 is no copy
    c = space.parse("normal=sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,none~1|sep_conv_5x5~3,max_pool_3x3~2;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~1,max_pool_3x3~2")
    assert c.id != a.id and not same_network(space, a, c, WIDE)


def test_darts_zero_maps_are_one_state():
    space = small_space("darts")
    # normal nodes 0 and 1 are zero maps (all 'none'; a max-pool and a skip of a zero map): node 2
    # convolves a zero map either way
    a = space.parse("normal=none~0,none~1|max_pool_3x3~2,skip_connect~2|sep_conv_3x3~2,dil_conv_5x5~1;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~3,max_pool_3x3~2")
    b = space.parse("normal=none~1,none~0|max_pool_3x3~2,skip_connect~2|sep_conv_3x3~3,dil_conv_5x5~1;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~3,max_pool_3x3~2")
    assert a.id == b.id and same_network(space, a, b)
    c = space.parse("normal=none~0,none~1|max_pool_3x3~2,sep_conv_3x3~2|sep_conv_3x3~3,dil_conv_5x5~1;"
                    "reduce=sep_conv_3x3~0,skip_connect~1|none~0,skip_connect~1|avg_pool_3x3~3,max_pool_3x3~2")
    assert c.id != a.id  # a convolution of a zero map is its BN bias: node 1 is no zero map


def test_hierarchical_ids_ignore_unused_motifs_labels_and_dead_edges():
    space = create_space("hierarchical", motifs=3, motif_nodes=3, cell_nodes=4, channels=4)
    a = space.parse("m1=sep3,conv1/max3;m2=none,dw3/avg3;m3=id,id/id;cell=m2,none,m1/none,none/id")
    # m1 and m2 swap labels, m3 (unused) changes, node 1 (dead) reads m3, node 2's orphan id is explicit
    b = space.parse("m1=none,dw3/avg3;m2=sep3,conv1/max3;m3=sep3,none/dw3;cell=m3,id,m2/none,none/id")
    assert a.id == b.id and same_network(space, a, b)
    c = space.parse("m1=sep3,conv1/max3;m2=none,dw3/avg3;m3=id,id/id;cell=m2,none,m1/none,none/m3")
    assert c.id != a.id  # node 2 -> 3 now runs m3: another network
