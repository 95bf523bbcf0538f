"""Regularized evolution (Real et al., 2019): tournament selection, mutation, aging.

Initialisation fills a population of ``population_size`` random architectures. Each
later proposal picks ``sample_size`` members at random, mutates the best of them (or,
with probability ``crossover_prob``, crosses the two best and then mutates). Survivor
selection removes the oldest member (``survivor="aging"``, the regularized variant) or
the worst (``survivor="fitness"``).
"""

from __future__ import annotations

from collections import deque

from archsearch.core import Proposal, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 20,
        sample_size: int = 5,
        survivor: str = "aging",
        crossover_prob: float = 0.0,
    ) -> None:
        super().__init__(space, seed)
        if not isinstance(population_size, int) or population_size < 2:
            raise ConfigError(f"strategy.population_size must be an integer >= 2, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ConfigError(f"strategy.sample_size must be an integer in 1..population_size, got {sample_size!r}")
        if survivor not in ("aging", "fitness"):
            raise ConfigError(f"strategy.survivor must be one of: aging, fitness (got {survivor!r})")
        if not 0.0 <= float(crossover_prob) <= 1.0:
            raise ConfigError(f"strategy.crossover_prob must be in [0, 1], got {crossover_prob!r}")
        self.population_size, self.sample_size = population_size, sample_size
        self.survivor, self.crossover_prob = survivor, float(crossover_prob)
        self.population: deque[tuple[Architecture, float]] = deque()  # oldest first
        self._asked = 0

    def ask(self) -> Proposal:
        self._asked += 1
        if self._asked <= self.population_size or not self.population:
            return Proposal(self.space.sample(self.rng))
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(self.sample_size, len(members)), replace=False)
        ranked = sorted((members[int(i)] for i in picks), key=lambda m: m[1], reverse=True)
        parent = ranked[0][0]
        child = parent
        if len(ranked) > 1 and self.rng.random() < self.crossover_prob:
            child = self.space.crossover(parent, ranked[1][0], self.rng)
        child = self.space.mutate(child, self.rng)
        return Proposal(child, parent=parent.id)

    def adopt(self, proposal: Proposal) -> None:
        self._asked += 1  # one fewer random member to fill the population with

    def tell(self, trial: Trial) -> None:
        if trial.state is not TrialState.COMPLETE or trial.reward is None:
            return
        self.population.append((trial.arch, float(trial.reward)))
        if len(self.population) > self.population_size:
            if self.survivor == "aging":
                self.population.popleft()
            else:
                worst = min(range(len(self.population)), key=lambda i: self.population[i][1])
                del self.population[worst]
