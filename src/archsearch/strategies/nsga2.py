"""NSGA-II (Deb et al., 2002): a Pareto front over several objectives instead of one reward.

Objectives are metrics the evaluator reports, each with a direction (``valid_acc:max``,
``params:min``, ``latency_b1:min``), read from ``trial.metrics``. The first
``population_size`` proposals are random; afterwards each proposal is a child of two parents
picked by binary tournaments on (front rank, then larger crowding distance): uniform
crossover with probability ``crossover_prob``, then ``space.mutate``. Children already
proposed are re-drawn a few times, so a small space is not spent on repeats.

Generations. Told trials collect in an offspring pool; once it holds ``offspring`` complete
trials (``population_size`` for the first generation), parents and offspring are merged and
the next population is chosen by non-dominated sorting, the last front cut by crowding
distance. Asks never wait for tells: while a generation is incomplete, parents come from the
current population (random samples before the first one exists), so parallel workers stay
busy. The state is a function of the ask/tell sequence, so replaying the journal resumes it.

Failed trials are never selected. A trial with ``violation`` > 0 (a broken constraint; see
estimation/objectives.py) loses to every feasible one and to infeasible ones with a smaller
violation (Deb's constrained domination). A metric missing from a trial's metrics falls back
to the trial's reward for the first objective (so the registry's reward-only tests and
single-reward evaluators still drive the search) and to a neutral 0 for the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, option
from archsearch.estimation.objectives import Objective, crowding_distance, non_dominated_sort, parse_objectives
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy

DEFAULT_OBJECTIVES = ("valid_acc:max", "params:min")
REDRAWS = 10  # tries for a child not proposed before


@dataclass
class Member:
    arch: Architecture
    point: tuple[float, ...]  # objectives to minimise
    violation: float = 0.0
    rank: int = 0
    crowding: float = 0.0


def select_survivors(members: list[Member], size: int) -> list[Member]:
    """NSGA-II survivor selection: feasible members by front, the last front cut by crowding
    distance (ties by order), then infeasible members by smaller violation. Sets rank and crowding."""
    feasible = [m for m in members if m.violation <= 0]
    infeasible = sorted((m for m in members if m.violation > 0), key=lambda m: m.violation)
    chosen: list[Member] = []
    fronts = non_dominated_sort([m.point for m in feasible])
    for rank, front in enumerate(fronts):
        if len(chosen) >= size:
            break
        crowd = crowding_distance([feasible[i].point for i in front])
        order = sorted(range(len(front)), key=lambda k: (-crowd[k], front[k]))
        for k in order[: size - len(chosen)]:
            m = feasible[front[k]]
            m.rank, m.crowding = rank, crowd[k]
            chosen.append(m)
    for i, m in enumerate(infeasible[: max(size - len(chosen), 0)]):
        m.rank, m.crowding = len(fronts) + i, 0.0
        chosen.append(m)
    return chosen


@register_strategy("nsga2")
class NSGA2(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        objectives: Union[str, tuple[str, ...]] = option(
            DEFAULT_OBJECTIVES, "metrics with a direction (metric:max|min), a list or a comma-separated string")
        population_size: int = option(20, "random architectures first, then the population kept", low=2)
        offspring: Optional[int] = option(None, "complete trials per generation (null: population_size)", low=1)
        crossover_prob: float = option(0.9, "chance of uniform crossover before mutation", low=0, high=1)

    opts: Options
    small_options = {"population_size": 4}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.objectives: list[Objective] = parse_objectives(self.opts.objectives, "strategy.objectives")
        self.population_size = self.opts.population_size
        self.offspring = self.opts.offspring or self.population_size
        self.population: list[Member] = []  # the current generation's survivors
        self.pool: list[Member] = []  # told since the last selection
        self.generation = 0
        self._asked = 0
        self._seen: set[str] = set()

    # -- proposals ------------------------------------------------------------------
    def ask(self) -> Proposal:
        self._asked += 1
        if self._asked <= self.population_size or not self.population:
            arch = self._fresh(lambda: self.space.sample(self.rng))
            return self.propose(arch)
        first = self._tournament()
        parent = first.arch

        def child() -> Architecture:
            arch = parent
            if len(self.population) > 1 and self.rng.random() < self.opts.crossover_prob:
                arch = self.space.crossover(parent, self._tournament().arch, self.rng)
            return self.space.mutate(arch, self.rng)

        return self.propose(self._fresh(child), parent=parent.id)

    def _fresh(self, draw: Callable[[], Architecture]) -> Architecture:
        """An architecture not proposed before if one turns up within REDRAWS draws."""
        arch = draw()
        for _ in range(REDRAWS):
            if arch.id not in self._seen:
                break
            arch = draw()
        self._seen.add(arch.id)
        return arch

    def _tournament(self) -> Member:
        """Binary tournament: lower rank wins, then larger crowding distance, then the first drawn."""
        if len(self.population) == 1:
            return self.population[0]
        i, j = (int(k) for k in self.rng.choice(len(self.population), size=2, replace=False))
        a, b = self.population[i], self.population[j]
        return b if (b.rank, -b.crowding) < (a.rank, -a.crowding) else a

    # -- results --------------------------------------------------------------------
    def point(self, trial: Trial) -> Optional[tuple[float, ...]]:
        """The trial's objectives as a point to minimise (see the module doc for missing metrics)."""
        values = []
        for k, o in enumerate(self.objectives):
            value = trial.metrics.get(o.metric)
            if value is None or not math.isfinite(value):
                if k == 0:
                    if trial.reward is None or not math.isfinite(trial.reward):
                        return None
                    value = trial.reward
                else:
                    value = 0.0
            values.append(o.sign * float(value))
        return tuple(values)

    def tell(self, trial: Trial) -> None:
        if trial.state is not TrialState.COMPLETE:
            return
        point = self.point(trial)
        if point is None:
            return
        excess = trial.metrics.get("violation", 0.0)
        self.pool.append(Member(trial.arch, point, float(excess) if math.isfinite(excess) else math.inf))
        if len(self.pool) >= (self.offspring if self.population else self.population_size):
            self.population = select_survivors(self.population + self.pool, self.population_size)
            self.pool = []
            self.generation += 1
