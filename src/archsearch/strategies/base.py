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
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from archsearch.core import Proposal, Trial
from archsearch.errors import ConfigError
from archsearch.options import Configurable, Options, option
from archsearch.registry import Registry
from archsearch.spaces.base import Architecture, SearchSpace


class Strategy(Configurable, ABC):
    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        self.configure(options)
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._asks = 0

    @abstractmethod
    def ask(self) -> Proposal:
        """The next architecture to evaluate, made with :meth:`propose`. May be called again before
        earlier tells (parallel workers)."""

    def propose(self, arch: Architecture, fidelity: Optional[dict[str, Any]] = None,
                parent: Optional[str] = None) -> Proposal:
        """A proposal stamped with this strategy's next ask id (0, 1, 2, ...); the trial made from it
        comes back to :meth:`tell` with the same ``ask_id``."""
        self._asks += 1
        return Proposal(arch, fidelity, parent, ask_id=self._asks - 1)

    def tell(self, trial: Trial) -> None:
        """A finished trial (complete or failed). Default: nothing to learn."""

    def adopt(self, proposal: Proposal) -> None:
        """A proposal made on this strategy's behalf (a warm start: proxy-scored samples, a finished
        search's best), asked in place of one of its own initial random samples; its trial is told
        like any other. Strategies with a random start phase count it towards that phase, so a warm
        start replaces random samples instead of adding to them. Default: nothing to count."""


STRATEGIES: Registry[Strategy] = Registry("strategy", package="archsearch.strategies", group="archsearch.strategies")
register_strategy = STRATEGIES.register


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    return STRATEGIES.create(name, space, seed, **options)


def create_inner(space: SearchSpace, seed: int, inner: Any, wrapper: str) -> Strategy:
    """The strategy a wrapper strategy (``prefilter``, ``warm_start``) delegates to, from its
    ``inner`` option: a name or ``{name: ..., **options}`` (default: evolution, population 20)."""
    inner = {"name": "evolution", "population_size": 20} if inner is None else inner
    if isinstance(inner, str):
        inner = {"name": inner}
    if not isinstance(inner, dict) or not isinstance(inner.get("name"), str):
        raise ConfigError(f"strategy.inner must be a mapping with a strategy 'name', got {inner!r}")
    if inner["name"] == wrapper:
        raise ConfigError(f"strategy.inner cannot be {wrapper!r} itself")
    try:
        return create_strategy(inner["name"], space, seed, **{k: v for k, v in inner.items() if k != "name"})
    except ConfigError as exc:
        raise ConfigError(f"strategy.inner: {exc}") from None


def _inner_shape(value: Union[str, dict[str, Any]]) -> Optional[str]:
    if isinstance(value, dict) and not isinstance(value.get("name"), str):
        return "must be a strategy name or a mapping with a strategy 'name'"
    return None


class Wrapper(Strategy):
    """A strategy that hands out proposals of its own (``handout``) and otherwise delegates to its
    ``inner`` strategy, which adopts the handed-out ones and is told every trial. Ask ids come from
    the innermost strategy's counter, so one sequence numbers every ask whoever made it."""

    @dataclass(frozen=True)
    class Options(Options):
        inner: Union[str, dict[str, Any], None] = option(
            None, "the strategy to continue with: a name or {name: ..., **options} (null: evolution, population 20)",
            check=_inner_shape)

    opts: Options

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.inner = create_inner(space, seed, self.opts.inner, type(self).name)

    def propose(self, arch: Architecture, fidelity: Optional[dict[str, Any]] = None,
                parent: Optional[str] = None) -> Proposal:
        return self.inner.propose(arch, fidelity, parent)

    def handout(self, arch: Architecture, parent: Optional[str] = None) -> Proposal:
        """A proposal of the wrapper's own, adopted by the inner strategy in place of one of its samples."""
        proposal = self.propose(arch, parent=parent)
        self.inner.adopt(proposal)
        return proposal

    def adopt(self, proposal: Proposal) -> None:
        self.inner.adopt(proposal)

    def tell(self, trial: Trial) -> None:
        self.inner.tell(trial)


def list_strategies() -> list[str]:
    return STRATEGIES.names()
