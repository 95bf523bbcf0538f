"""The strategy protocol: ``ask`` for a proposal, ``tell`` it the finished trial.

Rules every strategy keeps, so that a search resumes exactly:

* every random choice uses ``self.rng``, a generator seeded from the experiment seed;
* the state is a function of the sequence of ask/tell calls. On resume the experiment
  replays that sequence from the journal (asks and tells in their original order), which
  rebuilds the state without a separate checkpoint;
* strategies never see executors or evaluators, only trials (failed ones have ``reward`` None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from archsearch.core import Proposal, Trial
from archsearch.registry import Registry
from archsearch.spaces.base import SearchSpace


class Strategy(ABC):
    name: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def ask(self) -> Proposal:
        """The next architecture to evaluate. May be called again before earlier tells (parallel workers)."""

    def tell(self, trial: Trial) -> None:
        """A finished trial (complete or failed). Default: nothing to learn."""


STRATEGIES: Registry[Strategy] = Registry("strategy")
register_strategy = STRATEGIES.register


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    return STRATEGIES.create(name, space, seed, skip=("space", "seed"), **options)


def list_strategies() -> list[str]:
    return STRATEGIES.names()
