"""SPOS (Guo et al., 2020): train the supernet on uniformly sampled paths, then search with inherited weights.

Single Path One-Shot splits weight sharing into two stages that do not interfere. Training: each
step samples one architecture uniformly from the space (``space.sample``, so only valid
architectures, in every space) and trains its path; no architecture parameters, so the supernet
is not biased towards the paths that happened to be good early. Search: candidates are scored
by the supernet's valid accuracy under their path (inherited weights, no training) and the best
is returned, by random sampling or by SPOS's evolution (keep the top ones, mutate and cross them
over).

``derive`` draws its candidates from a generator seeded by (seed, completed epochs), not from
``self.rng``: the training stream then does not depend on how often the runner derives (once per
epoch for the journal, maybe once more for the result) or on whether a checkpoint was taken
before or after a derive, so a resumed search trains exactly like one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from archsearch.errors import ConfigError
from archsearch.oneshot.base import Batch, OneShotMethod, Score, count_param_free, register_oneshot
from archsearch.options import option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.supernet import Supernet

SEARCHES = ("random", "evolution")
RANKING = 10  # (arch string, score) pairs kept in ``ranking`` for the journal
OPERATOR_TRIES = 20  # mutations / crossovers for an unseen path before a random sample replaces them
MAX_TRIES = 1000  # random draws for an unseen path before the space counts as exhausted


@register_oneshot("spos")
class SPOS(OneShotMethod):
    """SPOS: uniformly sampled paths train the supernet; derive searches with inherited weights.

    ``search: evolution`` starts from ``population`` random candidates and adds ``population``
    children per generation: the best half are the parents, each child a ``space.mutate`` or a
    ``space.crossover`` of two of them."""

    @dataclass(frozen=True)
    class Options(OneShotMethod.Options):
        candidates: int = option(50, "architectures derive scores in total", low=1)
        search: str = option("evolution", "how derive proposes candidates", choices=SEARCHES)
        population: int = option(10, "evolution: initial random candidates and children per generation", low=2)

    opts: Options
    runs_one_path = True  # one sampled path trains per step
    small_options = {"candidates": 4, "population": 2}
    has_alphas = False

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.arch: Optional[Architecture] = None  # the last derived one (a fixed sample before any derive)
        self.ranking: list[tuple[str, float]] = []
        self.completed = 0

    def _derive_rng(self) -> np.random.Generator:
        return np.random.default_rng([int(self.seed) % 2**63, self.completed])

    # -- training ------------------------------------------------------------------------
    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        super().setup(supernet, steps_per_epoch)
        self.arch = self.space.sample(self._derive_rng())

    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        """One weight step on the path of a uniformly sampled architecture; ``valid`` is unused."""
        assert self.supernet is not None
        arch = self.space.sample(self.rng)
        return {"train_loss": self.weight_step(*train, self.supernet.path_weights(arch))}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        out = super().end_epoch(epoch)
        self.completed = epoch
        return out

    # -- search --------------------------------------------------------------------------
    def derive(self, score: Score) -> Architecture:
        """Score ``candidates`` distinct paths (fewer if the space has fewer); the best, ties to the first.

        With ``max_skips`` set, proposals with more skip connections are rejected unscored (SPOS
        searches under constraints the same way)."""
        assert self.supernet is not None
        net, rng, o = self.supernet, self._derive_rng(), self.opts
        results: list[tuple[float, Architecture]] = []  # in evaluation order
        seen: set[tuple[int, ...]] = set()

        def sample() -> Architecture:
            return self.space.sample(rng)

        def fresh(make: Callable[[], Architecture], tries: int) -> Optional[Architecture]:
            """The first proposal whose path has not been scored yet (None: none in ``tries``)."""
            for _ in range(tries):
                arch = make()
                key = tuple(net.path(arch))
                if key not in seen:
                    seen.add(key)
                    if o.max_skips is None or count_param_free(net, arch)["skips"] <= o.max_skips:
                        return arch
            return None

        def evaluate(*makers: Callable[[], Architecture]) -> bool:
            """Score the first unseen proposal of ``makers``, tried in turn, then of a random sample."""
            arch = None
            for make, tries in [(m, OPERATOR_TRIES) for m in makers] + [(sample, MAX_TRIES)]:
                arch = fresh(make, tries)
                if arch is not None:
                    break
            if arch is None:
                return False  # (nearly) every path scored already
            results.append((float(score(net.path_weights(arch))), arch))
            return True

        if o.search == "random":
            while len(results) < o.candidates and evaluate(sample):
                pass
        else:
            while len(results) < min(o.population, o.candidates) and evaluate(sample):
                pass
            while results and len(results) < o.candidates:
                parents = self._parents(results)
                produced = 0
                for child in range(o.population):
                    if len(results) >= o.candidates:
                        break
                    # close parents may have no unseen children left: then mutate, then sample
                    produced += evaluate(self._child(parents, child, rng), self._child(parents, 0, rng))
                if not produced:
                    break
        if not results:
            raise ConfigError(f"strategy.max_skips={o.max_skips}: no sampled architecture of space "
                              f"{self.space.name!r} has that few skip connections")
        order = sorted(range(len(results)), key=lambda i: (-results[i][0], i))
        self.ranking = [(str(results[i][1]), results[i][0]) for i in order[:RANKING]]
        self.arch = net.as_run(results[order[0]][1])  # the network that was scored (Supernet.as_run)
        return self.arch

    def _parents(self, results: list[tuple[float, Architecture]]) -> list[Architecture]:
        """The best half of the population size among everything scored so far (ties: earlier first)."""
        k = max(2, self.opts.population // 2)
        order = sorted(range(len(results)), key=lambda i: (-results[i][0], i))
        return [results[i][1] for i in order[:k]]

    def _child(self, parents: list[Architecture], child: int, rng: np.random.Generator) -> Callable[[], Architecture]:
        """Even children mutate one parent, odd ones cross two (SPOS: half and half)."""
        if child % 2 == 0 or len(parents) < 2:
            return lambda: self.space.mutate(parents[int(rng.integers(len(parents)))], rng)

        def cross() -> Architecture:
            a, b = rng.choice(len(parents), size=2, replace=False)
            return self.space.crossover(parents[int(a)], parents[int(b)], rng)

        return cross

    def eval_weights(self) -> list[torch.Tensor]:
        assert self.supernet is not None and self.arch is not None
        return self.supernet.path_weights(self.arch)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        assert self.arch is not None
        return {**super().state_dict(), "arch": self.arch.to_dict(), "completed": self.completed,
                "ranking": [[a, s] for a, s in self.ranking]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.arch = self.space.from_dict(state["arch"])
        self.completed = int(state["completed"])
        self.ranking = [(str(a), float(s)) for a, s in state["ranking"]]
