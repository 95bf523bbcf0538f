"""Pre-filter / warm start: begin any strategy from the best of many proxy-scored random samples.

``strategy: {name: prefilter, inner: {name: evolution, population_size: 20}, proxy: synflow,
candidates: 1000, keep: 20}`` draws ``candidates`` seeded random architectures, scores each
with a zero-cost proxy (:mod:`archsearch.estimation.proxies`, higher = better) on a network
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
from typing import Any, Optional, Sequence

import numpy as np
import torch

from archsearch.core import Proposal, Task, Trial
from archsearch.errors import ConfigError
from archsearch.estimation.proxies import list_proxies, score_architecture
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, create_inner, register_strategy


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"strategy.{key} must be an integer >= 1, got {value!r}")
    return value


@register_strategy("prefilter")
class Prefilter(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        inner: Optional[dict[str, Any]] = None,
        proxy: str = "synflow",
        candidates: int = 1000,
        keep: int = 20,
        input_shape: Sequence[int] = (3, 32, 32),
        classes: int = 10,
        threads: Optional[int] = 1,
    ) -> None:
        super().__init__(space, seed)
        if proxy not in list_proxies():
            raise ConfigError(f"strategy.proxy must be one of: {', '.join(list_proxies())} (got {proxy!r})")
        self.candidates = _positive_int("candidates", candidates)
        self.keep = _positive_int("keep", keep)
        if self.keep > self.candidates:
            raise ConfigError(f"strategy.keep ({keep}) must be at most strategy.candidates ({candidates})")
        if (not isinstance(input_shape, (list, tuple)) or not input_shape
                or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in input_shape)):
            raise ConfigError(f"strategy.input_shape must be a list of positive integers, got {input_shape!r}")
        self.classes = _positive_int("classes", classes)
        self.threads = None if threads is None else _positive_int("threads", threads)
        self.proxy, self.task = proxy, Task(tuple(input_shape), classes)
        self.inner = create_inner(space, seed, inner, "prefilter")
        self._top: Optional[list[tuple[Architecture, float]]] = None
        self._handed = 0

    def draw_candidates(self) -> list[Architecture]:
        """The ``candidates`` random samples (a generator of their own, seeded from the seed; repeats kept)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))  # not the inner's stream
        return [self.space.sample(rng) for _ in range(self.candidates)]

    def ranking(self) -> list[tuple[Architecture, float]]:
        """The ``keep`` best distinct candidates and their scores, best first (scored once, at first use)."""
        if self._top is None:
            seen: set[str] = set()
            scored: list[tuple[float, int, Architecture]] = []
            threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                for i, arch in enumerate(self.draw_candidates()):
                    if arch.id in seen:
                        continue
                    seen.add(arch.id)
                    value = score_architecture(self.space, arch, self.task, [self.proxy], seed=self.seed)[self.proxy]
                    scored.append((value if not math.isnan(value) else -math.inf, i, arch))
            finally:
                torch.set_num_threads(threads)
            scored.sort(key=lambda s: (-s[0], s[1]))
            self._top = [(arch, value) for value, _, arch in scored[: self.keep]]
        return self._top

    def ask(self) -> Proposal:
        top = self.ranking()
        if self._handed < len(top):
            arch = top[self._handed][0]
            self._handed += 1
            proposal = Proposal(arch)
            self.inner.adopt(proposal)
            return proposal
        return self.inner.ask()

    def tell(self, trial: Trial) -> None:
        self.inner.tell(trial)
