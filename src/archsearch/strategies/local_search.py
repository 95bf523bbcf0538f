"""Local search (hill climbing with restarts), a strong baseline on cell benchmarks
(White et al., 2021, "Local search is state of the art for NAS benchmarks").

It starts from the best of ``initial`` random samples and evaluates that point's
neighbours (``space.neighbours``: every one-decision change), visited in a seeded random
order; ``neighbours=K`` evaluates only a random K of them per step. ``move="first"``
moves as soon as a neighbour beats the current point; ``move="best"`` evaluates the
whole neighbourhood and then moves to its best (the default is "first": on NAS-Bench-201
it spends fewer queries per step and finds better cells at 50-150 queries). A point no
neighbour beats is a local optimum: the search restarts from the best of
``restart_samples`` fresh random samples.

``order="predicted"`` visits each neighbourhood best-first as judged by a neural predictor
(the MLP ensemble of BANANAS, ``strategies/predictor.py``) refitted on every result so far
at each step, on the space's features (``encoding``: ``auto`` takes ``path`` where the space
has it, else ``onehot``) and on the ``log_gap``
target (which resolves the top of the reward distribution). With first-improvement moves
the climb then spends fewer queries per step: on NAS-Bench-201 CIFAR-10 it lifts the
picked cell's test accuracy by about 0.1 at 100 queries (docs/benchmarks.md), for a
predictor fit per step (~0.1 s). With ``neighbours=K`` it evaluates the K best-predicted.

No architecture is proposed twice: one already evaluated in this run counts with its
known reward and costs no query. When several asks come before their tells (parallel
workers), further neighbours of the current point are handed out; once none is left,
fresh random samples, which then seed the next restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy
from archsearch.strategies.predictor import MLPEnsemble, resolve_encoding, transform_rewards, widths

MOVES = ("first", "best")
ORDERS = ("random", "predicted")
SAMPLE_TRIES = 100  # draws for an unseen random sample before settling for a repeat (a nearly exhausted space)


def _all_or_positive(value: Union[int, str]) -> Optional[str]:
    ok = value == "all" if isinstance(value, str) else value >= 1
    return None if ok else "must be 'all' or an integer >= 1"


def _better(a: Optional[float], b: Optional[float]) -> bool:
    """``a > b`` with None (a failed trial) below everything."""
    return a is not None and (b is None or a > b)


@register_strategy("local_search")
class LocalSearch(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        initial: int = option(10, "random samples the first climb starts from the best of", low=1)
        move: str = option("first", "move at the first better neighbour, or after the whole neighbourhood",
                           choices=MOVES)
        neighbours: Union[int, str] = option("all", "neighbours evaluated per step: all, or a random K",
                                             check=_all_or_positive)
        restart_samples: int = option(10, "random samples a restart starts from the best of", low=1)
        order: str = option("random", "neighbourhood order: seeded random, or best-predicted first", choices=ORDERS)
        encoding: str = option("auto", "predictor features (auto: path where the space has it, else onehot)")
        ensemble: int = option(5, "MLPs in the predictor ensemble (order: predicted)", low=1)
        hidden: tuple[int, ...] = option((20, 20, 20), "predictor hidden layer widths", check=widths)
        epochs: int = option(300, "predictor training steps per fit", low=1)

    opts: Options
    small_options = {"initial": 4, "restart_samples": 4}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.opts
        self.encoding = resolve_encoding(space, o.encoding)
        self.subset: Optional[int] = None if o.neighbours == "all" else int(o.neighbours)
        self._archs: dict[str, Architecture] = {}  # id -> architecture of every completed trial (predictor data)
        self._features: dict[str, np.ndarray] = {}
        self.known: dict[str, Optional[float]] = {}  # id -> reward of every told trial (None: failed)
        self.proposed: set[str] = set()  # ids handed out (pending or told)
        self.restarts = 0  # local optima reached
        # sampling: random samples told since the last climb started; the next climb starts from their best
        self._need = o.initial
        self._pool: list[tuple[float, Architecture]] = []
        self._pool_told = 0
        self._sample_asks: set[int] = set()  # ask ids of random (or adopted) samples not yet told
        # climbing: the current point and its neighbourhood
        self.current: Optional[Architecture] = None
        self._current_reward: Optional[float] = None
        self._nbhd: set[str] = set()  # ids of the neighbours this step evaluates
        self._queue: list[tuple[Architecture, str]] = []  # neighbours (and ids) not yet handed out, next last
        self._waiting: set[str] = set()  # neighbours handed out, result not yet told
        self._best_nb: Optional[tuple[float, Architecture]] = None  # move="best": best neighbour so far

    # -- ask/tell ------------------------------------------------------------------
    def ask(self) -> Proposal:
        if self.current is not None:
            self._drop_handed_out()
            if self._queue:
                arch, key = self._queue.pop()
                self.proposed.add(key)
                self._waiting.add(key)
                return self.propose(arch, parent=self.current.id)
        # sampling, or every neighbour is out already (parallel asks): a fresh sample for the next start
        arch, key = self._fresh_sample()
        self.proposed.add(key)
        proposal = self.propose(arch)
        self._sample_asks.add(proposal.ask_id)
        return proposal

    def adopt(self, proposal: Proposal) -> None:
        """A warm-start architecture counts as one of the samples the next climb starts from."""
        self.proposed.add(proposal.arch.id)
        self._sample_asks.add(proposal.ask_id)

    def tell(self, trial: Trial) -> None:
        arch = trial.arch
        key = arch.id
        reward = float(trial.reward) if trial.state is TrialState.COMPLETE and trial.reward is not None else None
        self.known[key] = reward
        if reward is not None and self.opts.order == "predicted":
            self._archs[key] = arch
        self.proposed.add(key)
        if trial.ask_id in self._sample_asks:  # a sample's result: the next climb may start from it
            self._sample_asks.discard(trial.ask_id)
            self._pool_told += 1
            if reward is not None:
                self._pool.append((reward, arch))
        if self.current is not None and key in self._nbhd:
            self._waiting.discard(key)
            self._consider(arch, reward)
        self._advance()

    # -- the climb -------------------------------------------------------------------
    def _consider(self, arch: Architecture, reward: Optional[float]) -> None:
        """A neighbour's result: first-improvement moves at once, best-improvement remembers it."""
        if not _better(reward, self._current_reward):
            return
        assert reward is not None
        if self.opts.move == "first":
            self._move_to(arch, reward)
        elif self._best_nb is None or reward > self._best_nb[0]:
            self._best_nb = (reward, arch)

    def _move_to(self, arch: Architecture, reward: float) -> None:
        """Make ``arch`` the current point and lay out its neighbourhood in a seeded random order.

        Neighbours already evaluated count at once (visited in the same order the queue
        would be); with first-improvement a better one among them is moved to directly.
        """
        while True:
            self.current, self._current_reward, self._best_nb = arch, reward, None
            neighbours = self.space.neighbours(arch)
            chosen = [neighbours[int(i)] for i in self.rng.permutation(len(neighbours))]
            ids = [a.id for a in chosen]  # hashing is the costly part: once per neighbour
            if self.opts.order == "predicted":
                chosen, ids = self._best_first(chosen, ids)
            if self.subset is not None:
                chosen, ids = chosen[: self.subset], ids[: self.subset]
            self._nbhd = set(ids)
            self._queue = [(a, key) for a, key in zip(reversed(chosen), reversed(ids)) if key not in self.proposed]
            self._waiting = {key for key in ids if key in self.proposed and key not in self.known}
            known = [(a, self.known[key]) for a, key in zip(chosen, ids) if key in self.known]
            if self.opts.move == "best":
                for a, r in known:
                    self._consider(a, r)
                return
            better = next((m for m in known if _better(m[1], reward)), None)
            if better is None:
                return
            arch, reward = better[0], float(better[1])  # type: ignore[arg-type]

    def _feature(self, key: str, arch: Architecture) -> np.ndarray:
        f = self._features.get(key)
        if f is None:
            f = self._features[key] = self.space.features(arch, self.encoding).astype(np.float64)
        return f

    def _best_first(self, chosen: list[Architecture], ids: list[str]) -> tuple[list[Architecture], list[str]]:
        """Neighbours not yet evaluated sorted by predicted reward, best first (evaluated ones keep their place
        at the end: they cost no query). The predictor is fitted on every completed trial so far."""
        model = self._fit()
        if model is None:
            return chosen, ids
        new = [i for i, key in enumerate(ids) if key not in self.known]
        if not new:
            return chosen, ids
        score = model.predict(np.stack([self._feature(ids[i], chosen[i]) for i in new])).mean(axis=0)
        ranked = [new[int(j)] for j in np.argsort(-score, kind="stable")]
        ranked += [i for i, key in enumerate(ids) if key in self.known]
        return [chosen[i] for i in ranked], [ids[i] for i in ranked]

    def _drop_handed_out(self) -> None:
        """Pop queued neighbours that were handed out meanwhile (as random samples); track the pending ones."""
        while self._queue and self._queue[-1][1] in self.proposed:
            key = self._queue.pop()[1]
            if key not in self.known:
                self._waiting.add(key)

    def _advance(self) -> None:
        """Start a climb once enough samples are in; finish a step once its neighbourhood is evaluated."""
        while True:
            if self.current is None:
                if self._pool_told < self._need or not self._pool:
                    return
                start = max(self._pool, key=lambda m: m[0])  # first of equals: deterministic
                self._pool, self._pool_told = [], 0
                self._move_to(start[1], start[0])
                continue
            self._drop_handed_out()
            if self._queue or self._waiting:
                return
            if self._best_nb is not None:  # move="best": every neighbour is in
                self._move_to(self._best_nb[1], self._best_nb[0])
                continue
            # a local optimum: restart from fresh random samples
            self.restarts += 1
            self.current, self._current_reward, self._nbhd = None, None, set()
            self._need = self.opts.restart_samples

    def _fit(self) -> Optional[MLPEnsemble]:
        keys = [k for k in self._archs if self.known.get(k) is not None]  # a later failure of a re-run hides it
        if len(keys) < 2:
            return None
        x = np.stack([self._feature(k, self._archs[k]) for k in keys])
        y = transform_rewards(np.array([self.known[k] for k in keys], dtype=np.float64), "log_gap")
        return MLPEnsemble(self.opts.ensemble, self.opts.hidden, self.opts.epochs).fit(x, y, self.rng)

    def _fresh_sample(self) -> tuple[Architecture, str]:
        for _ in range(SAMPLE_TRIES):
            arch = self.space.sample(self.rng)
            key = arch.id
            if key not in self.proposed:
                break
        return arch, key
