"""Grid search: every point of a small discrete space, each exactly once.

The grid is the space's decision encoding; point ``r`` (its rank) is decoded as a
mixed-radix number, the first decision most significant, so nothing is materialised
but (for the shuffled order) a permutation of ranks. ``order="shuffled"`` (the default)
visits a seeded permutation, so a budget smaller than the grid still spreads over the
whole space; ``"lexicographic"`` counts up from the first choice of every decision.

Spaces larger than ``max_size`` are refused when the strategy is built: enumerating
them is hopeless within any budget, and a grid walked in order would cover only a
corner of one. When every point has been proposed, ``ask`` raises ``SpaceExhausted``
naming the grid size (asking for more trials than the grid holds cannot be met).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from archsearch.core import Proposal
from archsearch.errors import SpaceExhausted, SpaceTooLarge
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy

ORDERS = ("shuffled", "lexicographic")
MAX_SIZE_LIMIT = 10_000_000  # a permutation of 10^7 ranks is 80 MB; beyond that no grid is "small"


@register_strategy("grid")
class GridSearch(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        order: str = option("shuffled", "visit the grid in a seeded random order or counting up", choices=ORDERS)
        max_size: int = option(100_000, "largest space the grid agrees to enumerate", low=1, high=MAX_SIZE_LIMIT)

    opts: Options

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        size, max_size = space.size(), self.opts.max_size
        if size > max_size:
            raise_it = f", raise strategy.max_size (up to {MAX_SIZE_LIMIT:,})" if size <= MAX_SIZE_LIMIT else ""
            raise SpaceTooLarge(
                f"grid search cannot enumerate space {space.name!r}: it has {size:,} architectures, more than "
                f"strategy.max_size={max_size:,}; restrict the space's options (fewer choices per decision)"
                f"{raise_it} or use a sampling strategy such as random or evolution")
        self.total = size
        self._radices = [len(d.choices) for d in space.decisions()]
        self._perm: Optional[np.ndarray] = self.rng.permutation(size) if self.opts.order == "shuffled" else None
        self._next = 0  # how many grid points have been proposed

    def ask(self) -> Proposal:
        if self._next >= self.total:
            raise SpaceExhausted(f"grid exhausted: all {self.total:,} architectures of space {self.space.name!r} "
                                "have been proposed; the search stops short of budget.trials")
        rank = self._next if self._perm is None else int(self._perm[self._next])
        self._next += 1
        return self.propose(self.point(rank))

    def point(self, rank: int) -> Architecture:
        """The architecture at ``rank`` in lexicographic order of the decision indices."""
        indices = [0] * len(self._radices)
        for i in range(len(self._radices) - 1, -1, -1):
            rank, indices[i] = divmod(rank, self._radices[i])
        return self.space.decode(indices)
