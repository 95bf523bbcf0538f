"""The strategy conformance suite: the rules of :class:`archsearch.strategies.base.Strategy` (seeded,
any space, failed trials told, state rebuilt by replaying asks and tells), on every registered space."""

from __future__ import annotations

from typing import ClassVar

import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import SpaceTooLarge
from archsearch.spaces.base import SPACES, SearchSpace
from archsearch.strategies.base import STRATEGIES, Strategy
from archsearch.testing.settings import small_space, small_strategy


def fake_reward(space: SearchSpace, arch: object) -> float:
    """A deterministic objective that prefers early choices (lets a model-based strategy make progress)."""
    idx = space.encode(arch)  # type: ignore[arg-type]
    return -float(sum(idx)) + 0.001 * (sum(ord(c) for c in str(arch)) % 7)


def drive(strategy: Strategy, space: SearchSpace, n: int, fail_every: int = 0) -> list[Trial]:
    """``n`` sequential ask/tell rounds; every ``fail_every``-th trial fails."""
    trials = []
    for i in range(n):
        p = strategy.ask()
        space.validate(p.arch)
        failed = fail_every and i % fail_every == fail_every - 1
        t = Trial(i, p.arch, TrialState.FAILED if failed else TrialState.COMPLETE, Fidelity(1), p.parent,
                  reward=None if failed else fake_reward(space, p.arch), ask_id=p.ask_id)
        strategy.tell(t)
        trials.append(t)
    return trials


def make(name: str, space: SearchSpace, seed: int) -> Strategy:
    """A strategy that enumerates may refuse a space too large to enumerate: the test skips."""
    try:
        return small_strategy(name, space, seed)
    except SpaceTooLarge as exc:
        pytest.skip(str(exc))


class StrategySuite:
    """Subclass and set ``strategy_name``."""

    names_attribute: ClassVar[str] = "strategy_name"
    strategy_name: ClassVar[str] = ""
    replay_space: ClassVar[str] = "nb201"  # small enough for every strategy, grid included

    def test_is_registered_and_declares_small_options(self) -> None:
        STRATEGIES.check_options(self.strategy_name, dict(STRATEGIES.get(self.strategy_name).small_options))

    @pytest.mark.parametrize("space_name", SPACES.names())
    def test_runs_on_every_space_and_is_seeded(self, space_name: str) -> None:
        space = small_space(space_name)
        a = drive(make(self.strategy_name, space, 3), space, 25, fail_every=4)
        b = drive(make(self.strategy_name, space, 3), space, 25, fail_every=4)
        assert [str(t.arch) for t in a] == [str(t.arch) for t in b]
        c = drive(make(self.strategy_name, space, 4), space, 25, fail_every=4)
        assert [str(t.arch) for t in a] != [str(t.arch) for t in c]

    def test_replaying_calls_restores_the_state(self) -> None:
        """Resume rebuilds a strategy by replaying ask/tell in order; the next asks must match."""
        space = small_space(self.replay_space)
        original = make(self.strategy_name, space, 9)
        history = drive(original, space, 15)
        replayed = make(self.strategy_name, space, 9)
        for t in history:
            p = replayed.ask()
            assert p.arch == t.arch and p.ask_id == t.ask_id
            replayed.tell(t)
        assert [str(original.ask().arch) for _ in range(5)] == [str(replayed.ask().arch) for _ in range(5)]

    def test_asks_carry_distinct_ids(self) -> None:
        space = small_space(self.replay_space)
        strategy = make(self.strategy_name, space, 1)
        ids = [strategy.ask().ask_id for _ in range(6)]  # parallel workers: several asks before any tell
        assert len(set(ids)) == len(ids)
