"""The search-space conformance suite: the rules of :class:`archsearch.spaces.base.SearchSpace`,
checked on one space built with its ``small_options``."""

from __future__ import annotations

import json
import re
from typing import ClassVar

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces.base import SPACES, SearchSpace, create_space
from archsearch.spaces.checks import IMAGE_SHAPE_RULE
from archsearch.testing.settings import small_space

TASKS = (Task((1, 8, 8), 10), Task((3, 32, 32), 7))
MIN_ARCHITECTURES = 25  # a space smaller than this is a hyper-parameter list, not something to search


class SpaceSuite:
    """Subclass and set ``space_name``."""

    names_attribute: ClassVar[str] = "space_name"
    space_name: ClassVar[str] = ""

    @pytest.fixture
    def space(self) -> SearchSpace:
        return small_space(self.space_name)

    # -- the canonical encoding ------------------------------------------------------
    def test_is_registered_and_declares_small_options(self) -> None:
        cls = SPACES.get(self.space_name)
        SPACES.check_options(self.space_name, dict(cls.small_options))

    def test_has_enough_architectures_to_search(self, space: SearchSpace) -> None:
        assert space.size() >= MIN_ARCHITECTURES

    def test_every_decision_says_what_it_is(self, space: SearchSpace) -> None:
        for d in space.decisions():
            assert len(d.choices) >= 1 and d.kind is not None

    def test_sample_roundtrips_through_json_string_and_encoding(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(0)
        for _ in range(20):
            arch = space.sample(rng)
            assert space.from_dict(json.loads(arch.to_json())) == arch
            assert space.parse(str(arch)) == arch
            assert space.decode(space.encode(arch)) == arch
            assert len(arch.id) == 16 and space.parse(str(arch)).id == arch.id

    def test_architectures_sharing_an_id_build_the_same_network(self, space: SearchSpace) -> None:
        """``Architecture.canonical`` may give two genotypes one id only when they build the same
        network: the evaluation cache answers one from the other's trial."""
        rng = np.random.default_rng(11)
        for _ in range(3):
            arch = space.sample(rng)
            for other in [n for n in space.neighbours(arch) if n.id == arch.id][:5]:
                shapes = [[(k, tuple(v.shape)) for k, v in space.build(a, TASKS[0]).state_dict().items()]
                          for a in (arch, other)]
                assert shapes[0] == shapes[1], f"{other} shares the id of {arch} but builds another network"

    def test_sampling_is_seeded(self, space: SearchSpace) -> None:
        a = [space.sample(np.random.default_rng(5)) for _ in range(3)]
        b = [space.sample(np.random.default_rng(5)) for _ in range(3)]
        assert a == b
        rng = np.random.default_rng(5)
        assert len({str(space.sample(rng)) for _ in range(30)}) > 1

    def test_mutate_changes_exactly_one_decision(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(1)
        for _ in range(30):
            arch = space.sample(rng)
            child = space.mutate(arch, rng)
            assert sum(x != y for x, y in zip(space.encode(arch), space.encode(child))) == 1

    def test_neighbours_are_all_one_step_away(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(2))
        nbrs = space.neighbours(arch)
        assert nbrs and arch not in nbrs
        for n in nbrs:
            assert sum(x != y for x, y in zip(space.encode(arch), space.encode(n))) == 1

    def test_crossover_takes_each_decision_from_a_parent(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(3)
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        for c, x, y in zip(space.encode(child), space.encode(a), space.encode(b)):
            assert c in (x, y)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(seed=st.integers(0, 2**32 - 1))
    def test_mutation_and_crossover_stay_in_space_and_round_trip(self, seed: int) -> None:
        space = small_space(self.space_name)
        rng = np.random.default_rng(seed)
        arch = space.mutate(space.sample(rng), rng)
        assert space.validate(arch) == arch
        assert space.parse(str(arch)) == arch
        assert space.from_dict(json.loads(arch.to_json())) == arch
        child = space.crossover(arch, space.sample(rng), rng)
        assert space.decode(space.encode(child)) == child

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(text=st.text(max_size=80))
    def test_parse_never_crashes_on_garbage(self, text: str) -> None:
        space = small_space(self.space_name)
        try:
            arch = space.parse(text)
        except ParseError:
            return
        assert space.parse(str(arch)) == arch

    # -- building ----------------------------------------------------------------------
    @pytest.mark.parametrize("task", TASKS, ids=["digits", "cifar"])
    def test_build_forward_backward(self, space: SearchSpace, task: Task) -> None:
        torch.manual_seed(0)
        model = space.build(space.sample(np.random.default_rng(4)), task)
        out = model(torch.randn(4, *task.input_shape))
        assert out.shape == (4, task.num_classes)
        out.sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    def test_non_image_tasks_are_a_clear_error(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(10))
        with pytest.raises(ConfigError, match=re.escape(IMAGE_SHAPE_RULE)):
            space.build(arch, Task((16,), 3))
        if space.has_supernet:
            with pytest.raises(ConfigError, match=re.escape(IMAGE_SHAPE_RULE)):
                space.supernet(Task((16,), 3))

    def test_scales_width_down_and_depth_down_or_refuses_it(self, space: SearchSpace) -> None:
        task = TASKS[0]
        assert space.scaled(1.0, 1.0) is space
        arch = space.sample(np.random.default_rng(0))
        full = _params(space.build(arch, task))
        narrow = space.scaled(0.5, 1.0)
        assert narrow.decisions() == space.decisions()  # the same architectures
        assert _params(narrow.build(arch, task)) < full
        try:
            shallow = space.scaled(1.0, 0.5)
        except ConfigError as exc:
            assert "cannot scale depth" in str(exc) and "\n" not in str(exc)
        else:
            assert _params(shallow.build(arch, task)) <= full

    def test_final_space_is_recreatable_from_its_options(self, space: SearchSpace) -> None:
        final = space.final_space()
        again = create_space(final.name, **final.options())
        arch = space.sample(np.random.default_rng(8))
        assert again.decisions() == final.decisions()
        assert again.parse(str(arch)) == arch

    # -- encodings and pictures ----------------------------------------------------------
    def test_features_are_fixed_length_seeded_and_tell_architectures_apart(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(6)
        archs = [space.sample(rng) for _ in range(10)]
        for kind in space.feature_kinds():
            vectors = [space.features(a, kind) for a in archs]
            assert len({v.shape for v in vectors}) == 1 and vectors[0].ndim == 1
            assert all(np.isfinite(v).all() for v in vectors)
            np.testing.assert_array_equal(space.features(archs[0], kind), vectors[0])
        onehot = [space.features(a) for a in archs]
        assert len({v.tobytes() for v in onehot}) == len({str(a) for a in archs})
        with pytest.raises(ConfigError, match="valid: onehot"):
            space.features(archs[0], "no-such-encoding")

    def test_diagram_draws_the_architecture(self, space: SearchSpace) -> None:
        diagram = space.diagram(space.sample(np.random.default_rng(7)))
        dot = diagram.to_dot()
        assert dot.startswith("digraph") and dot.rstrip().endswith("}")
        assert len(diagram.nodes) >= 3 and len(diagram.edges) >= 2
        assert {n for e in diagram.edges for n in e[:2]} <= {n for n, _ in diagram.nodes}

    # -- one-shot ------------------------------------------------------------------------
    @pytest.mark.parametrize("task", TASKS, ids=["digits", "cifar"])
    def test_supernet_runs_paths_and_mixtures(self, space: SearchSpace, task: Task) -> None:
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


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
