"""Every registered strategy passes the shipped strategy suite (archsearch.testing), plus regularized
evolution's own rules."""

from __future__ import annotations

import numpy as np
import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy, list_strategies
from archsearch.testing import StrategySuite, suites
from archsearch.testing.strategies import drive
from test_spaces import SMALL_OPTIONS


suites(StrategySuite, list_strategies(), globals())


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
