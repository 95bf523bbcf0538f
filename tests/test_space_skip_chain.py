"""The chain-with-skips space: anchors, orphan fix-ups, the size rule, string form, supernet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import archsearch.spaces.skip_chain  # noqa: F401  (registers the space)
from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import create_space
from archsearch.spaces.base import DecisionKind
from archsearch.spaces.skip_chain_arch import SkipChainArch, SkipLayer

SMALL = {"layers": 4, "kernels": [1, 3], "filters": [4, 8], "stem_channels": 4}
# L1 reads nothing (fix-up: the stem); nobody reads L1 (fix-up: it joins the final concat)
FIXUP = "conv:3x1:8|conv:1x3:4|sep_conv:3x3:8<-0|max_pool:3x3:4<-0,2"


def small(**options):
    return create_space("skip_chain", **{**SMALL, **options})


# -- string form and parsing ----------------------------------------------------
def test_string_form_roundtrips_and_normalises():
    space = small(strides=[1, 2])
    arch = space.parse(" conv:3x1:8 | sep_conv:3:4:s1<-0 | max_pool:1x3:8<- 1, 0 | avg_pool:3x1:4:S2<-0,2 ")
    assert str(arch) == "conv:3x1:8|sep_conv:3x3:4<-0|max_pool:1x3:8<-0,1|avg_pool:3x1:4:s2<-0,2"
    assert arch.layers[2] == SkipLayer("max_pool", 1, 3, 8, 1, (0, 1))
    assert arch.layers[3].stride == 2 and arch.layers[0].inputs == ()
    assert space.parse(str(arch)) == arch
    assert SkipChainArch.from_dict(arch.to_dict()) == arch
    unsorted = SkipChainArch(arch.layers[:3] + (SkipLayer("conv", 3, 3, 4, 1, (2, 0)),))
    with pytest.raises(ParseError, match=r"layer 3: inputs \[2, 0\] must be in increasing order"):
        space.encode(unsorted)


BASE = "conv:3x3:8|conv:3x3:8|conv:3x3:8|conv:3x3:8"


@pytest.mark.parametrize("text, match", [
    ("conv:3x3:8", "expected 4 layers"),
    ("wat:3x3:8|conv:3x3:8|conv:3x3:8|conv:3x3:8",
     r"layer 0: op 'wat' is not in the space \(valid: conv, sep_conv, max_pool, avg_pool\)"),
    ("conv:5x3:8|conv:3x3:8|conv:3x3:8|conv:3x3:8", r"kernel_h 5 is not in the space \(valid: 1, 3\)"),
    ("conv:3x3x1:8|conv:3x3:8|conv:3x3:8|conv:3x3:8", "kernel '3x3x1' must be KHxKW"),
    ("conv:³x3:8|conv:3x3:8|conv:3x3:8|conv:3x3:8", "must be KHxKW"),
    ("conv:3x3:16|conv:3x3:8|conv:3x3:8|conv:3x3:8", r"filters 16 is not in the space \(valid: 4, 8\)"),
    ("conv:3x3:8:s2|conv:3x3:8|conv:3x3:8|conv:3x3:8", r"stride 2 is not in the space \(valid: 1\)"),
    ("conv:3x3:8:2|conv:3x3:8|conv:3x3:8|conv:3x3:8", "stride '2' must be written s1"),
    ("conv:3x3:8<-0|conv:3x3:8|conv:3x3:8|conv:3x3:8", "layer 0: input 0 is not an earlier layer "
                                                        r"\(layer 0 always reads the stem\)"),
    ("conv:3x3:8|conv:3x3:8<-1|conv:3x3:8|conv:3x3:8", r"layer 1: input 1 is not an earlier layer \(valid: 0..0\)"),
    ("conv:3x3:8|conv:3x3:8|conv:3x3:8<-1,1|conv:3x3:8", "layer 2: an input is listed twice"),
    ("conv:3x3:8|conv:3x3:8<-|conv:3x3:8|conv:3x3:8", "inputs after '<-' must be layer indices"),
    ("conv:3x3:8|conv:3x3:8<-0<-0|conv:3x3:8|conv:3x3:8", "expected op:KHxKW:filters"),
    ("conv:3x3:8||conv:3x3:8|conv:3x3:8", "layer 1 '': expected op:KHxKW:filters"),
])
def test_parse_errors_are_one_clear_line(text, match):
    with pytest.raises(ParseError, match=match) as info:
        small().parse(text)
    assert "\n" not in str(info.value)


def test_from_dict_rejects_bad_anchors_and_types():
    space = small()
    good = space.parse(BASE).to_dict()
    bad = {"layers": [list(row) for row in good["layers"]]}
    bad["layers"][2][5] = [3]
    with pytest.raises(ParseError, match="layer 2: input 3 is not an earlier layer"):
        space.from_dict(bad)
    bad["layers"][2][5] = []
    bad["layers"][1][1] = True
    with pytest.raises(ParseError, match="integer sizes"):
        space.from_dict(bad)
    with pytest.raises(ParseError):
        space.from_dict({"layers": "conv"})


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="conv_sepmaxg:x0123s<-,| ", max_size=60))
def test_parse_near_misses_raise_parse_error_or_roundtrip(text):
    space = small(layers=2, strides=[1, 2])
    try:
        arch = space.parse(text)
    except ParseError:
        return
    assert space.parse(str(arch)) == arch


# -- decisions: the anchor is one binary decision per earlier layer -------------
def test_decisions_expose_anchor_points_as_named_binary_decisions():
    space = create_space("skip_chain")  # defaults: 6 layers, no stride decision
    names = [d.name for d in space.decisions()]
    assert names[:5] == ["layer0.op", "layer0.kernel_h", "layer0.kernel_w", "layer0.filters", "layer1.op"]
    assert not any(n.endswith(".stride") for n in names)
    anchors = space.anchors()
    assert len(anchors) == 6 * 5 // 2
    assert {(i, j) for _, i, j in anchors} == {(i, j) for i in range(6) for j in range(i)}
    for pos, i, j in anchors:
        assert names[pos] == f"layer{i}.input{j}" and space.decisions()[pos].choices == (False, True)
    assert sum(d.kind is DecisionKind.INPUTS for d in space.decisions()) == len(anchors)
    kinds = {d.name: d for d in space.decisions()}
    for pos, i, j in anchors:  # the anchors say what they are: layer i may read layer j
        d = space.decisions()[pos]
        assert (d.kind, d.node, d.source) == (DecisionKind.INPUTS, i, j)
    assert kinds["layer0.op"].kind is DecisionKind.CATEGORICAL
    assert kinds["layer0.kernel_h"].kind is kinds["layer0.filters"].kind is DecisionKind.ORDINAL
    assert small().decisions()[1].kind is DecisionKind.ORDINAL  # two increasing kernels are still ordered
    strided = create_space("skip_chain", strides=[1, 2])
    assert [d.choices for d in strided.decisions() if d.name.endswith(".stride")] == [(1, 2)] * 6


def test_encoding_sets_anchor_bits_and_decode_checks_ranges():
    space = small()
    arch = space.parse(FIXUP)
    idx = space.encode(arch)
    bits = {(i, j): idx[pos] for pos, i, j in space.anchors()}
    assert bits == {(1, 0): 0, (2, 0): 1, (2, 1): 0, (3, 0): 1, (3, 1): 0, (3, 2): 1}
    assert space.decode(idx) == arch
    pos = space.anchors()[0][0]
    for bad in (2, -1):
        with pytest.raises(ParseError, match=f"layer1.input0: index {bad} is out of range 0..1"):
            space.decode(idx[:pos] + [bad] + idx[pos + 1:])


# -- the network: fix-ups, concatenation, the size rule --------------------------
def test_orphan_fixups_stem_for_no_input_and_unused_layers_concatenated():
    space = small()
    arch = space.parse(FIXUP)
    assert arch.unused() == (1,)
    model = space.build(arch, Task((1, 8, 8), 10))
    assert model.sources == [(-1,), (-1,), (0,), (0, 2)]
    assert model.layers[1][0].in_channels == 4  # L1 reads the stem (stem_channels=4)
    assert model.layers[3][0][0].in_channels == 8 + 8  # L3 concatenates L0 and L2, projects to 4
    assert model.head.in_features == 4 + 4  # unused L1 joins the last layer L3
    out = model(torch.randn(4, 1, 8, 8))
    out.sum().backward()
    assert model.layers[1][0].weight.grad.abs().sum() > 0  # the orphan reaches the loss


def _capture(model, index):
    """The input a layer receives and the output another produces, via hooks."""
    seen = {}
    model.layers[index].register_forward_pre_hook(lambda m, args: seen.__setitem__("input", args[0]))
    return seen


@pytest.mark.parametrize("size, small_side", [(32, 16), (9, 5)])
def test_inputs_of_different_size_are_average_pooled_to_the_smallest(size, small_side):
    space = small(strides=[1, 2], reductions=0)
    # L0 halves the map; L2 reads L0 (small) and L1 (full size, it reads the stem)
    arch = space.parse("conv:3x3:8:s2|conv:3x3:4|conv:1x1:4<-0,1|avg_pool:1x3:8:s2<-2")
    model = space.build(arch, Task((3, size, size), 5))
    seen = _capture(model, 2)
    model.layers[1].register_forward_hook(lambda m, args, out: seen.__setitem__("l1", out))
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    x = seen["input"]
    assert x.shape == (2, 8 + 4, small_side, small_side)
    assert torch.allclose(x[:, 8:], F.adaptive_avg_pool2d(seen["l1"], small_side))


def test_reductions_cap_every_stage_and_stop_on_small_maps():
    space = create_space("skip_chain", layers=6, reductions=2, filters=[4], kernels=[3], stem_channels=4)
    arch = space.parse("|".join(["conv:3x3:4"] * 6))  # every layer reads the stem (fix-up)
    for side, expected in ((32, [32, 32, 16, 16, 8, 8]), (8, [8, 8, 4, 4, 2, 2]), (3, [3] * 6)):
        model = space.build(arch, Task((1, side, side), 3))
        seen = [_capture(model, i) for i in range(6)]
        assert model(torch.randn(2, 1, side, side)).shape == (2, 3)
        assert [s["input"].shape[-1] for s in seen] == expected
    assert space.build(arch, Task((1, 3, 40), 3))(torch.randn(2, 1, 3, 40)).shape == (2, 3)


def test_pool_layers_project_to_filters_only_when_widths_differ():
    space = small()
    model = space.build(space.parse("conv:3x3:8|max_pool:3x1:8<-0|avg_pool:3x3:4<-0,1|max_pool:1x1:4<-2"),
                        Task((1, 8, 8), 3))
    assert isinstance(model.layers[1], torch.nn.MaxPool2d)  # 8 in, 8 out: a plain pool
    assert model.layers[2][0][0].in_channels == 16 and model.layers[2][0][0].out_channels == 4
    assert model.head.in_features == 4


# -- encodings and pictures -----------------------------------------------------
def test_adjacency_features_include_fixups_and_ops():
    space = small()
    arch = space.parse(FIXUP)
    vec = space.features(arch, "adjacency")
    n = 4
    k = (n + 2) * (n + 1) // 2
    assert vec.shape == (k + n * 4,)
    adj = np.zeros((n + 2, n + 2))
    adj[np.triu_indices(n + 2, 1)] = vec[:k]
    edges = {(int(a), int(b)) for a, b in zip(*np.nonzero(adj))}
    # nodes: 0 stem, 1..4 layers L0..L3, 5 output
    assert edges == {(0, 1), (0, 2), (1, 3), (1, 4), (3, 4), (2, 5), (4, 5)}
    assert vec[k:].reshape(n, 4).argmax(1).tolist() == [0, 0, 1, 2]
    assert space.features(arch).shape == (sum(len(d.choices) for d in space.decisions()),)
    with pytest.raises(ConfigError, match="valid: onehot, adjacency"):
        space.features(arch, "path")


def test_diagram_shows_chain_skip_and_fixup_edges():
    space = small()
    d = space.diagram(space.parse(FIXUP))
    assert {("stem", "L1", "fix-up: no input"), ("L1", "concat", "fix-up: unused"), ("L0", "L2", "skip"),
            ("L2", "L3", ""), ("L3", "concat", ""), ("concat", "head", "")} <= set(d.edges)
    assert "L0: conv 3x1, 8 filters" in dict(d.nodes).values()
    plain = space.diagram(space.parse("conv:3x3:8|conv:3x3:8<-0|conv:3x3:8<-1|conv:3x3:8<-2"))
    assert "concat" not in dict(plain.nodes) and ("L3", "head", "") in plain.edges


@pytest.mark.parametrize("options, match", [
    ({"ops": ["conv", "bogus"]}, r"space.ops has unknown 'bogus' \(valid: conv, sep_conv, max_pool, avg_pool\)"),
    ({"kernels": [2]}, "space.kernels must be odd"),
    ({"kernels": [3, 3]}, r"space.kernels lists a value twice: \[3, 3\]"),
    ({"filters": [0]}, r"space.filters must hold numbers in 1..4096, got \[0\]"),
    ({"strides": []}, "space.strides must be a non-empty list"),
    ({"ops": "conv"}, "space.ops must be a list of strings, got 'conv'"),
    ({"layers": 0}, r"space.layers must be an integer in \[1, 64\], got 0"),
    ({"layers": True}, r"space.layers must be an integer in \[1, 64\], got True"),
    ({"stem_channels": 2.0}, r"space.stem_channels must be an integer in \[1, 4096\], got 2.0"),
    ({"reductions": 9}, "space.reductions must be at most space.layers - 1 = 3, got 9"),
    ({"reductions": 4}, "space.reductions must be at most space.layers - 1 = 3"),
    ({"layers": 1, "reductions": 1}, "space.reductions must be at most space.layers - 1 = 0"),
    ({"reductions": -1}, r"space.reductions must be an integer in \[0, 64\] or null, got -1"),
    ({"supernet_filters": 5}, r"space.supernet_filters must be one of space.filters \(4, 8\)"),
    ({"supernet_filters": 8.0}, r"space.supernet_filters must be an integer or null, got 8.0"),
    ({"supernet_filters": True}, r"space.supernet_filters must be an integer or null, got True"),
    ({"width": 3}, "unknown option 'width'"),
])
def test_options_are_validated(options, match):
    with pytest.raises(ConfigError, match=match):
        small(**options)


def test_default_reductions_fit_short_chains():
    assert [small(layers=n).reductions for n in (1, 2, 3, 6)] == [0, 1, 2, 2]
    assert small(layers=4, reductions=3).reductions == 3
    assert "reductions" not in small(layers=2).options()  # the default is not written into options


def test_non_image_tasks_are_a_clear_config_error():
    space = small()
    arch = space.parse(BASE)
    for task in (Task((16,), 2), Task((1, 8), 2)):
        with pytest.raises(ConfigError, match=r"space 'skip_chain' builds image networks and needs input shape"):
            space.build(arch, task)
        with pytest.raises(ConfigError, match=r"space 'skip_chain' builds image networks"):
            space.supernet(task)


def _count_pools(monkeypatch):
    import archsearch.spaces.skip_chain_network as mod

    calls = []
    real = mod.F.adaptive_avg_pool2d

    class _F:
        def __getattr__(self, name):
            return getattr(F, name)

        @staticmethod
        def adaptive_avg_pool2d(x, size):
            calls.append(size)
            return real(x, size)

    monkeypatch.setattr(mod, "F", _F())
    return calls


def test_each_source_is_pooled_once_per_target_size(monkeypatch):
    """Many layers reading the same big map (the stem, an early layer) pool it once per size."""
    space = create_space("skip_chain", layers=6, reductions=2, filters=[4], kernels=[3], stem_channels=4)
    # every later layer reads L0 (full size) and the stem through nothing: stages 0 0 1 1 2 2
    arch = space.parse("conv:3x3:4|conv:3x3:4<-0|conv:3x3:4<-0,1|conv:3x3:4<-0,2|conv:3x3:4<-0,3|conv:3x3:4<-0,4")
    torch.manual_seed(0)
    model = space.build(arch, Task((1, 16, 16), 3)).eval()
    x = torch.randn(2, 1, 16, 16)
    calls = _count_pools(monkeypatch)
    out = model(x)
    # 8x8: L0 once (read by L2 and L3) and L1; 4x4: L0 once (read by L4 and L5) and L3.
    # Pooling per read would make it 3 and 3
    assert sorted(calls) == [(4, 4), (4, 4), (8, 8), (8, 8)]
    monkeypatch.undo()
    assert torch.equal(out, model(x))


def test_supernet_forward_syncs_once_for_all_skips(monkeypatch):
    """The skip weights' zero mask is read with one .tolist() per forward, not a bool() per skip."""
    space = create_space("skip_chain", layers=8, filters=[4], kernels=[3], stem_channels=4)
    net = space.supernet(Task((1, 8, 8), 3))
    weights = [torch.softmax(torch.randn(len(cp.candidates)), 0) for cp in net.choice_points]
    syncs = []
    real_bool = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: syncs.append(1) or real_bool(t))
    net(torch.randn(2, 1, 8, 8), weights)
    monkeypatch.undo()
    assert syncs == []


# -- the supernet -----------------------------------------------------------------
def _in_subnet(space, arch):
    """The supernet's subspace: square kernels, supernet_filters wide, stride 1."""
    return SkipChainArch(tuple(x._replace(kernel_w=x.kernel_h, filters=space.supernet_filters, stride=1)
                               for x in arch.layers))


def test_supernet_choice_points_and_derive_of_path_is_identity():
    space = small(reductions=1)
    net = space.supernet(Task((1, 8, 8), 3))
    names = [cp.name for cp in net.choice_points]
    assert names == [d.name for d in space.decisions() if d.name.endswith(".op") or d.kind is DecisionKind.INPUTS]
    assert net.choice_points[0].candidates == ("conv_1x1", "conv_3x3", "sep_conv_1x1", "sep_conv_3x3",
                                               "max_pool_1x1", "max_pool_3x3", "avg_pool_1x1", "avg_pool_3x3")
    assert net.choice_points[2].candidates == ("off", "on")
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = _in_subnet(space, space.sample(rng))
        assert net.derive(net.path_weights(arch)) == arch
    lossy = space.parse("conv:1x3:4|conv:3x3:4<-0|conv:1x1:8|conv:1x1:8:s1<-1")
    assert str(net.derive(net.path_weights(lossy))) == "conv:3x3:8|conv:3x3:8<-0|conv:1x1:8|conv:1x1:8<-1"


def test_supernet_soft_weights_backprop_into_every_alpha():
    space = small(strides=[1, 2])
    net = space.supernet(Task((3, 8, 8), 3))
    alphas = [torch.randn(len(cp.candidates), requires_grad=True) for cp in net.choice_points]
    out = net(torch.randn(4, 3, 8, 8), [torch.softmax(a, 0) for a in alphas])
    assert out.shape == (4, 3)
    out.pow(2).sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    with pytest.raises(ValueError, match="weight vectors"):
        net(torch.randn(4, 3, 8, 8), alphas[:-1])


def test_supernet_one_hot_path_runs_only_the_selected_candidates():
    space = small()
    net = space.supernet(Task((1, 8, 8), 3))
    ran = set()
    for i, cell in enumerate(net.cells):
        for c, op in enumerate(cell):
            op.register_forward_hook(lambda m, a, o, key=(i, c): ran.add(key))
    arch = _in_subnet(space, space.parse(FIXUP))
    net(torch.randn(2, 1, 8, 8), net.path_weights(arch))
    path = net.path(arch)
    assert ran == {(i, path[net._op_cp[i]]) for i in range(4)}


def _reference_supernet_forward(net, x, weights):
    """The relaxation written out term by term (every product explicit, no skipping of zeros)."""
    s = net.stem(x)
    outs = []
    for i in range(len(net.cells)):
        inp = sum(weights[net._skip_cp[i][j]][1] * outs[j] for j in range(i))
        off = torch.stack([weights[net._skip_cp[i][j]][0] for j in range(i)]).prod() if i else 1.0
        inp = inp + off * s
        outs.append(sum(w * op(inp) for w, op in zip(weights[net._op_cp[i]], net.cells[i])))
    final = outs[-1]
    for j in range(len(outs) - 1):
        final = final + torch.stack([weights[net._skip_cp[i][j]][0] for i in range(j + 1, len(outs))]).prod() * outs[j]
    return net.head(final.mean(dim=(2, 3)))


def test_supernet_soft_and_sparse_weights_match_the_written_out_relaxation():
    torch.manual_seed(0)
    space = small(reductions=0)
    net = space.supernet(Task((1, 8, 8), 3)).eval()
    x = torch.randn(2, 1, 8, 8)
    soft = [torch.softmax(torch.randn(len(cp.candidates)), 0) for cp in net.choice_points]
    assert torch.allclose(net(x, soft), _reference_supernet_forward(net, x, soft), atol=1e-5)
    # some skips exactly off or on, some op weights exactly zero: the zero terms are skipped
    sparse = [w.clone() for w in soft]
    sparse[net._skip_cp[3][0]] = torch.tensor([1.0, 0.0])
    sparse[net._skip_cp[2][1]] = torch.tensor([0.0, 1.0])
    sparse[net._op_cp[1]][2:] = 0.0
    assert torch.allclose(net(x, sparse), _reference_supernet_forward(net, x, sparse), atol=1e-5)


def test_supernet_one_hot_path_sums_inputs_and_applies_the_fixups():
    """Reference: inputs summed, no-input layers read the stem, unused layers join the last."""
    torch.manual_seed(0)
    space = small(reductions=0)
    net = space.supernet(Task((1, 8, 8), 3)).eval()
    arch = _in_subnet(space, space.parse(FIXUP))
    path = net.path(arch)
    x = torch.randn(2, 1, 8, 8)
    s = net.stem(x)
    outs = []
    for i, layer in enumerate(arch.layers):
        inp = sum(outs[j] for j in layer.inputs) if layer.inputs else s
        outs.append(net.cells[i][path[net._op_cp[i]]](inp))
    expected = net.head((outs[3] + outs[1]).mean(dim=(2, 3)))
    assert torch.allclose(net(x, net.path_weights(arch)), expected, atol=1e-6)
