"""Regularized evolution (Real et al., 2019): tournament selection, mutation, aging.

Initialisation fills a population of ``population_size`` random architectures. Each
later proposal picks ``sample_size`` members at random, mutates the best of them (or,
with probability ``crossover_prob``, crosses the two best and then mutates). Survivor
selection removes the oldest member (``survivor="aging"``, the regularized variant) or
the worst (``survivor="fitness"``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, invalid, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        population_size: int = option(20, "random architectures first, then the population kept", low=2)
        sample_size: int = option(5, "tournament size: members compared to pick a parent", low=1)
        survivor: str = option("aging", "who leaves the population: the oldest or the worst",
                               choices=("aging", "fitness"))
        crossover_prob: float = option(0.0, "chance of crossing the two best of a tournament", low=0, high=1)

        def __post_init__(self) -> None:
            if self.sample_size > self.population_size:
                raise invalid("sample_size", f"must be at most population_size ({self.population_size}), "
                                             f"got {self.sample_size}")

    opts: Options
    small_options = {"population_size": 4, "sample_size": 2}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.population: deque[tuple[Architecture, float]] = deque()  # oldest first
        self._asked = 0

    def ask(self) -> Proposal:
        self._asked += 1
        if self._asked <= self.opts.population_size or not self.population:
            return self.propose(self.space.sample(self.rng))
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(self.opts.sample_size, len(members)), replace=False)
        ranked = sorted((members[int(i)] for i in picks), key=lambda m: m[1], reverse=True)
        parent = ranked[0][0]
        child = parent
        if len(ranked) > 1 and self.rng.random() < self.opts.crossover_prob:
            child = self.space.crossover(parent, ranked[1][0], self.rng)
        child = self.space.mutate(child, self.rng)
        return self.propose(child, parent=parent.id)

    def adopt(self, proposal: Proposal) -> None:
        self._asked += 1  # one fewer random member to fill the population with

    def tell(self, trial: Trial) -> None:
        if trial.state is not TrialState.COMPLETE or trial.reward is None:
            return
        self.population.append((trial.arch, float(trial.reward)))
        if len(self.population) > self.opts.population_size:
            if self.opts.survivor == "aging":
                self.population.popleft()
            else:
                worst = min(range(len(self.population)), key=lambda i: self.population[i][1])
                del self.population[worst]
