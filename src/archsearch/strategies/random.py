"""Random search: the baseline every NAS paper must beat."""

from __future__ import annotations

from archsearch.core import Proposal
from archsearch.strategies.base import Strategy, register_strategy


@register_strategy("random")
class RandomSearch(Strategy):
    def ask(self) -> Proposal:
        return self.propose(self.space.sample(self.rng))
