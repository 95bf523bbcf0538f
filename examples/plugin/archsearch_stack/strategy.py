"""``hill``: first-improvement hill climbing with random restarts.

It keeps the best architecture told so far and proposes one of its mutations; after
``patience`` proposals without improvement it restarts from a random sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy


@register_strategy("hill")
class HillClimbing(Strategy):
    small_options: ClassVar[dict[str, Any]] = {"patience": 3}

    @dataclass(frozen=True)
    class Options(Options):
        patience: int = option(10, "proposals without improvement before a random restart", low=1)

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.best: Optional[tuple[Architecture, float]] = None
        self.stale = 0

    def ask(self) -> Proposal:
        if self.best is None or self.stale >= self.opts.patience:
            self.best, self.stale = None, 0
            return self.propose(self.space.sample(self.rng))
        self.stale += 1
        return self.propose(self.space.mutate(self.best[0], self.rng), parent=self.best[0].id)

    def tell(self, trial: Trial) -> None:
        if trial.state is TrialState.COMPLETE and trial.reward is not None and (
                self.best is None or trial.reward > self.best[1]):
            self.best, self.stale = (trial.arch, float(trial.reward)), 0
