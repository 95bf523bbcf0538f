"""Tests generated from the space registry: every registered space gets all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import SPACES, create_space, list_spaces

SMALL_OPTIONS = {
    "chain": {"layers": 3, "channels": [4, 8], "stem_channels": 4},
    "template": {"stages": 3, "stem_channels": 4, "depths": [1, 2], "widths": [0.25, 0.5], "se": True},
    "skip_chain": {"layers": 4, "kernels": [1, 3], "filters": [4, 8], "strides": [1, 2], "stem_channels": 4},
    "darts": {"channels": 4, "cells": 3, "nodes": 3, "final_channels": 4, "final_cells": 3},
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "hyperparams": {"space": {"name": "chain", "layers": 2, "channels": [4, 8], "stem_channels": 4},
                    "params": {"lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True, "steps": 3},
                               "batch_size": [16, 32]}},
    "hierarchical": {"motifs": 2, "motif_nodes": 3, "cell_nodes": 3, "channels": 4},
    "rnn_cell": {"leaves": 2, "hidden": 8},
}
TASKS = [Task((1, 8, 8), 10), Task((3, 32, 32), 7)]


def space_args(name: str) -> list[str]:
    """CLI arguments selecting space ``name`` with its small test options."""
    import json

    args = ["--space", name]
    for key, value in SMALL_OPTIONS.get(name, {}).items():
        args += ["--set", f"space.{key}={json.dumps(value)}"]
    return args


@pytest.fixture(params=list_spaces())
def space(request):
    return create_space(request.param, **SMALL_OPTIONS.get(request.param, {}))


def test_every_space_has_small_options_for_tests():
    assert set(list_spaces()) <= set(SMALL_OPTIONS), "add test options for a newly registered space"


def test_sample_roundtrips_through_json_string_and_encoding(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.from_dict(json.loads(arch.to_json())) == arch
        assert space.parse(str(arch)) == arch
        assert space.decode(space.encode(arch)) == arch
        assert len(arch.id) == 16 and space.parse(str(arch)).id == arch.id


def test_sampling_is_seeded(space):
    a = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(5)
    assert len({str(space.sample(rng)) for _ in range(30)}) > 1


def test_mutate_changes_exactly_one_decision(space):
    rng = np.random.default_rng(1)
    for _ in range(30):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        diff = sum(x != y for x, y in zip(space.encode(arch), space.encode(child)))
        assert diff == 1


def test_neighbours_are_all_one_step_away(space):
    arch = space.sample(np.random.default_rng(2))
    nbrs = space.neighbours(arch)
    expected = sum(len(d.choices) - 1 for d in space.decisions())
    assert len(nbrs) == expected == len(set(nbrs))
    assert all(sum(x != y for x, y in zip(space.encode(arch), space.encode(n))) == 1 for n in nbrs)


def test_crossover_takes_each_decision_from_a_parent(space):
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    child = space.crossover(a, b, rng)
    for c, x, y in zip(space.encode(child), space.encode(a), space.encode(b)):
        assert c in (x, y)


@pytest.mark.parametrize("task", TASKS, ids=["digits", "cifar"])
def test_build_forward_backward(space, task):
    torch.manual_seed(0)
    model = space.build(space.sample(np.random.default_rng(4)), task)
    x = torch.randn(4, *task.input_shape)
    out = model(x)
    assert out.shape == (4, task.num_classes)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_features_are_fixed_length_seeded_and_tell_architectures_apart(space):
    rng = np.random.default_rng(6)
    archs = [space.sample(rng) for _ in range(10)]
    for kind in space.feature_kinds():
        vectors = [space.features(a, kind) for a in archs]
        assert len({v.shape for v in vectors}) == 1 and vectors[0].ndim == 1
        assert all(np.isfinite(v).all() for v in vectors)
        np.testing.assert_array_equal(space.features(archs[0], kind), vectors[0])
    onehot = [space.features(a) for a in archs]
    distinct = {str(a) for a in archs}
    assert len({v.tobytes() for v in onehot}) == len(distinct)
    with pytest.raises(ConfigError, match="valid: onehot"):
        space.features(archs[0], "no-such-encoding")


def test_diagram_draws_the_architecture(space, tmp_path):
    arch = space.sample(np.random.default_rng(7))
    diagram = space.diagram(arch)
    dot = diagram.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert len(diagram.nodes) >= 3 and len(diagram.edges) >= 2
    assert {n for e in diagram.edges for n in e[:2]} <= {n for n, _ in diagram.nodes}
    assert diagram.render(tmp_path / "a.dot").read_text() == dot
    png = diagram.render(tmp_path / "a.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_final_space_is_recreatable_from_its_options(space):
    final = space.final_space()
    again = create_space(final.name, **final.options())
    arch = space.sample(np.random.default_rng(8))
    assert again.decisions() == final.decisions()
    assert again.parse(str(arch)) == arch


@pytest.mark.parametrize("task", TASKS, ids=["digits", "cifar"])
def test_supernet_runs_paths_and_mixtures(space, task):
    if not space.has_supernet:
        with pytest.raises(ConfigError, match="has no supernet"):
            space.supernet(task)
        return
    torch.manual_seed(0)
    net = space.supernet(task)
    x = torch.randn(2, *task.input_shape)
    arch = space.sample(np.random.default_rng(9))
    assert net(x, net.path_weights(arch)).shape == (2, task.num_classes)
    alphas = [torch.zeros(len(cp.candidates), requires_grad=True) for cp in net.choice_points]
    out = net(x, [a.softmax(0) for a in alphas])
    out.square().sum().backward()
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    assert net.derive([a.detach() for a in alphas]) is not None


def test_non_image_tasks_are_a_clear_error(space):
    arch = space.sample(np.random.default_rng(10))
    with pytest.raises(ConfigError, match=r"needs input shape \(C, H, W\)"):
        space.build(arch, Task((16,), 3))
    if space.has_supernet:
        with pytest.raises(ConfigError, match=r"needs input shape \(C, H, W\)"):
            space.supernet(Task((16,), 3))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parse_never_crashes_on_garbage(text):
    for name in list_spaces():
        space = create_space(name, **SMALL_OPTIONS.get(name, {}))
        try:
            arch = space.parse(text)
        except ParseError:
            continue
        assert space.parse(str(arch)) == arch


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mutation_and_crossover_stay_in_space_and_round_trip(seed):
    for name in list_spaces():
        space = create_space(name, **SMALL_OPTIONS.get(name, {}))
        rng = np.random.default_rng(seed)
        arch = space.mutate(space.sample(rng), rng)
        assert space.validate(arch) == arch
        assert space.parse(str(arch)) == arch
        assert space.from_dict(json.loads(arch.to_json())) == arch
        child = space.crossover(arch, space.sample(rng), rng)
        assert space.decode(space.encode(child)) == child


# -- the chain space specifically ------------------------------------------------
def test_chain_string_form_and_errors():
    space = create_space("chain", layers=2)
    arch = space.parse("conv:3:32:relu | sep_conv:5:64:gelu")
    assert str(arch) == "conv:3:32:relu|sep_conv:5:64:gelu"
    with pytest.raises(ParseError, match="expected 2 layers"):
        space.parse("conv:3:32:relu")
    with pytest.raises(ParseError, match=r"op 'wat' is not in the space \(valid: conv"):
        space.parse("wat:3:32:relu|conv:3:32:relu")
    with pytest.raises(ParseError, match="layer 2 .*expected op:kernel:channels:activation"):
        space.parse("conv:3:32:relu|conv:3")
    with pytest.raises(ParseError, match="must be positive integers"):
        space.parse("conv:x:32:relu|conv:3:32:relu")
    with pytest.raises(ParseError, match="kernel 7 is not in the space"):
        space.parse("conv:7:32:relu|conv:3:32:relu")


def test_chain_pool_and_identity_keep_width_and_downsampling_stops_at_small_maps():
    space = create_space("chain", layers=3, reductions=2)
    arch = space.parse("conv:3:16:relu|max_pool:3:96:relu|identity:1:64:tanh")
    model = space.build(arch, Task((1, 8, 8), 10))
    assert model.head.in_features == 16  # pooling/identity did not change width
    n_down = sum(isinstance(m, torch.nn.MaxPool2d) and m.kernel_size == 2 for m in model.modules())
    assert n_down == 2
    tiny = space.build(arch, Task((1, 4, 4), 10))
    assert sum(isinstance(m, torch.nn.MaxPool2d) and m.kernel_size == 2 for m in tiny.modules()) == 1


def test_chain_options_are_validated():
    with pytest.raises(ConfigError, match="unknown 'bogus' .*valid: conv"):
        create_space("chain", ops=["conv", "bogus"])
    with pytest.raises(ConfigError, match="space.layers"):
        create_space("chain", layers=0)
    with pytest.raises(ConfigError, match="must be odd"):
        create_space("chain", kernels=[2])
    with pytest.raises(ConfigError, match="unknown option 'width'"):
        create_space("chain", width=3)
    assert "chain" in SPACES
