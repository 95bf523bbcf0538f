"""Pre-filter / warm start: begin any strategy from the best of many proxy-scored random samples.

``strategy: {name: prefilter, inner: {name: evolution, population_size: 20}, proxy: synflow,
candidates: 1000, keep: 20}`` draws ``candidates`` seeded random architectures, scores each
with a zero-cost proxy (:mod:`archsearch.estimation.proxies`, higher = better; or ``vote``, the
mean rank of the data-free proxies over the distinct candidates, :mod:`archsearch.estimation.ensemble`) on a network
built for ``input_shape``/``classes`` (a strategy sees no data: CIFAR-10 shapes by default;
data-dependent proxies get a seeded random minibatch), and proposes the ``keep`` best first
(distinct architectures, best first; ties in sampling order). After that every ask comes from
the ``inner`` strategy. Every tell goes to the inner strategy, the warm-start trials included,
so it starts from what they found.

Scoring uses ``threads`` torch threads (default 1: batch-1 scoring of small networks is fastest
on one thread, and on a busy machine two threads can be many times slower; null leaves torch's
setting). Scoring happens at the first ask (not at construction, so building the strategy to check a
config is cheap); on resume the replay scores the candidates again (same seed, same result).

Inner strategies and trials they did not ask for (read from their ``tell``):

* ``random``, ``grid``, ``reinforce``: nothing to adapt (random and grid ignore tells;
  grid may later propose a warm-start architecture again).
* ``tpe`` learns from trials it did not ask for (its ``tell`` adds them to its study).
* ``bananas`` accepts them as results for its predictor but counts only its *own* asks
  towards its ``initial`` random phase; ``evolution`` adds them to its population but, the
  same way, would still fill ``population_size`` asks with random samples, which with aging
  push the warm-start members out. Both are handled by counting each warm-start ask as one of
  their initial random asks, so ``keep >= population_size`` (resp. ``initial``) means
  evolution mutates (bananas models) straight from the warm-start population.
* ``local_search`` records them as known (never proposes them again) but starts its climb only
  from its own random samples; each warm-start ask is registered as one of its samples, so the
  climb starts from the best warm-start architecture once ``initial`` of them are told.

These adaptations are each strategy's :meth:`~archsearch.strategies.base.Strategy.adopt`,
called for every warm-start proposal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from archsearch.core import Proposal, Task
from archsearch.options import invalid, option, positive_ints
from archsearch.estimation.ensemble import known_score, per_network, with_votes
from archsearch.estimation.proxies import score_architecture
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Wrapper, register_strategy


@register_strategy("prefilter")
class Prefilter(Wrapper):
    @dataclass(frozen=True)
    class Options(Wrapper.Options):
        proxy: str = option("synflow", "zero-cost proxy that scores the candidates (vote: mean rank of synflow, "
                                        "zen, params and flops over the candidates)", check=known_score)
        candidates: int = option(1000, "random architectures scored", low=1)
        keep: int = option(20, "best-scored architectures proposed first", low=1)
        input_shape: tuple[int, ...] = option((3, 32, 32), "input shape the scored networks are built for",
                                              check=positive_ints)
        classes: int = option(10, "classes the scored networks are built for", low=1)
        threads: Optional[int] = option(1, "torch threads while scoring (null: leave torch's setting)", low=1)

        def __post_init__(self) -> None:
            if self.keep > self.candidates:
                raise invalid("keep", f"({self.keep}) must be at most strategy.candidates ({self.candidates})")

    opts: Options
    small_options = {"candidates": 12, "keep": 4, "input_shape": [3, 8, 8],
                     "inner": {"name": "evolution", "population_size": 4, "sample_size": 2}}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.task = Task(tuple(self.opts.input_shape), self.opts.classes)
        self._top: Optional[list[tuple[Architecture, float]]] = None
        self._handed = 0

    def draw_candidates(self) -> list[Architecture]:
        """The ``candidates`` random samples (a generator of their own, seeded from the seed; repeats kept)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))  # not the inner's stream
        return [self.space.sample(rng) for _ in range(self.opts.candidates)]

    def ranking(self) -> list[tuple[Architecture, float]]:
        """The ``keep`` best distinct candidates and their scores, best first (scored once, at first use)."""
        if self._top is None:
            seen: set[str] = set()
            pool: list[tuple[int, Architecture]] = []
            rows: list[dict[str, float]] = []
            proxy = self.opts.proxy
            needed = per_network([proxy])  # a vote's members; else the proxy itself
            threads = torch.get_num_threads()
            if self.opts.threads:
                torch.set_num_threads(self.opts.threads)
            try:
                for i, arch in enumerate(self.draw_candidates()):
                    if arch.id in seen:
                        continue
                    seen.add(arch.id)
                    pool.append((i, arch))
                    rows.append(score_architecture(self.space, arch, self.task, needed, seed=self.seed))
            finally:
                torch.set_num_threads(threads)
            values = [row[proxy] for row in with_votes([proxy], rows)]  # a vote ranks the whole pool
            scored = [(v if not math.isnan(v) else -math.inf, i, arch) for v, (i, arch) in zip(values, pool)]
            scored.sort(key=lambda s: (-s[0], s[1]))
            self._top = [(arch, value) for value, _, arch in scored[: self.opts.keep]]
        return self._top

    def ask(self) -> Proposal:
        top = self.ranking()
        if self._handed < len(top):
            self._handed += 1
            return self.handout(top[self._handed - 1][0])
        return self.inner.ask()
