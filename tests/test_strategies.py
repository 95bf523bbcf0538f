"""Tests generated from the strategy registry, plus regularized evolution's own rules."""

from __future__ import annotations

import numpy as np
import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces import create_space, list_spaces
from archsearch.strategies import create_strategy, list_strategies
from test_spaces import SMALL_OPTIONS


def fake_reward(space, arch) -> float:
    """A deterministic objective: prefer early choices (lets evolution make progress)."""
    idx = space.encode(arch)
    return -float(sum(idx)) + 0.001 * (hash(str(arch)) % 7)


# options that keep a strategy cheap in these tests (prefilter scores 1,000 candidates by default)
SMALL_STRATEGY_OPTIONS = {
    "prefilter": {"candidates": 12, "keep": 4, "input_shape": [3, 8, 8],
                  "inner": {"name": "evolution", "population_size": 4, "sample_size": 2}},
}


def make(strategy_name, space, seed, **options):
    """A strategy may refuse a space it cannot search (grid: too many points to enumerate): skip."""
    options = {**SMALL_STRATEGY_OPTIONS.get(strategy_name, {}), **options}
    try:
        return create_strategy(strategy_name, space, seed=seed, **options)
    except ConfigError as exc:
        if "cannot enumerate" in str(exc):
            pytest.skip(str(exc))
        raise


def drive(strategy, space, n: int, fail_every: int = 0) -> list[Trial]:
    trials = []
    for i in range(n):
        p = strategy.ask()
        space.validate(p.arch)
        failed = fail_every and i % fail_every == fail_every - 1
        t = Trial(i, p.arch, TrialState.FAILED if failed else TrialState.COMPLETE, Fidelity(1), p.parent,
                  reward=None if failed else fake_reward(space, p.arch), ask_id=p.ask_id)
        strategy.tell(t)
        trials.append(t)
    return trials


@pytest.mark.parametrize("space_name", list_spaces())
@pytest.mark.parametrize("strategy_name", list_strategies())
def test_every_strategy_runs_on_every_space_and_is_seeded(strategy_name, space_name):
    space = create_space(space_name, **SMALL_OPTIONS.get(space_name, {}))
    a = drive(make(strategy_name, space, 3), space, 25, fail_every=4)
    b = drive(make(strategy_name, space, 3), space, 25, fail_every=4)
    assert [str(t.arch) for t in a] == [str(t.arch) for t in b]
    c = drive(make(strategy_name, space, 4), space, 25, fail_every=4)
    assert [str(t.arch) for t in a] != [str(t.arch) for t in c]


@pytest.mark.parametrize("strategy_name", list_strategies())
def test_replaying_calls_restores_the_state(strategy_name):
    """Resume rebuilds a strategy by replaying ask/tell in order; the next asks must match."""
    space = create_space("nb201", **SMALL_OPTIONS["nb201"])  # small enough for every strategy, grid included
    original = make(strategy_name, space, 9)
    history = drive(original, space, 15)
    replayed = make(strategy_name, space, 9)
    for t in history:
        assert replayed.ask().arch == t.arch
        replayed.tell(t)
    assert [str(original.ask().arch) for _ in range(5)] == [str(replayed.ask().arch) for _ in range(5)]


def test_evolution_beats_random_on_a_simple_objective():
    space = create_space("chain", **SMALL_OPTIONS["chain"])
    best = {}
    for name in ("random", "evolution"):
        scores = []
        for seed in range(5):
            s = create_strategy(name, space, seed=seed, **({"population_size": 10, "sample_size": 3}
                                                            if name == "evolution" else {}))
            scores.append(max(t.reward for t in drive(s, space, 80)))
        best[name] = np.mean(scores)
    assert best["evolution"] > best["random"]


def test_evolution_initialises_randomly_then_mutates_tournament_winners():
    space = create_space("chain", **SMALL_OPTIONS["chain"])
    evo = create_strategy("evolution", space, seed=0, population_size=4, sample_size=4)
    init = drive(evo, space, 4)
    assert all(t.parent is None for t in init)
    winner = max(init, key=lambda t: t.reward)
    child = evo.ask()  # sample_size == population: the tournament always picks the best
    assert child.parent == winner.arch.id
    diff = sum(x != y for x, y in zip(space.encode(winner.arch), space.encode(child.arch)))
    assert diff == 1


def test_evolution_aging_removes_the_oldest_and_fitness_the_worst():
    space = create_space("chain", **SMALL_OPTIONS["chain"])
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(4)]
    rewards = [0.9, 0.1, 0.5, 0.7]
    for survivor, gone in (("aging", 0), ("fitness", 1)):
        evo = create_strategy("evolution", space, seed=0, population_size=3, sample_size=2, survivor=survivor)
        for i, (a, r) in enumerate(zip(archs, rewards)):
            evo.tell(Trial(i, a, TrialState.COMPLETE, Fidelity(1), reward=r))
        members = [m[0] for m in evo.population]
        assert len(members) == 3 and archs[gone] not in members


def test_evolution_ignores_failed_trials_and_validates_options():
    space = create_space("chain", **SMALL_OPTIONS["chain"])
    evo = create_strategy("evolution", space, seed=0, population_size=3, sample_size=2)
    evo.tell(Trial(0, space.sample(np.random.default_rng(0)), TrialState.FAILED, Fidelity(1)))
    assert len(evo.population) == 0
    with pytest.raises(ConfigError, match="sample_size"):
        create_strategy("evolution", space, population_size=3, sample_size=5)
    with pytest.raises(ConfigError, match="survivor must be one of: aging, fitness"):
        create_strategy("evolution", space, survivor="oldest")
    with pytest.raises(ConfigError, match=r"unknown strategy 'annealing' \(valid: .*evolution.*random"):
        create_strategy("annealing", space)
