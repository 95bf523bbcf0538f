"""BANANAS (White et al., 2021): Bayesian optimisation with an ensemble of neural predictors.

The first ``initial`` proposals are random. After that the search runs in iterations: fit
an ensemble of ``ensemble`` small MLPs on the feature vectors (``space.features``; the
``path`` encoding where the space has one, which is what makes BANANAS work on cells) of
every completed trial, generate ``candidates`` architectures by mutating the ``parents``
best ones (1..``mutations`` mutations each), score them with the acquisition function and
queue the best ``batch``. Asks consume the queue; an empty queue starts the next iteration
with whatever results have arrived by then, so parallel asks never wait for tells.

Acquisitions (``acquisition``): ``its`` (independent Thompson sampling, the paper's choice:
one draw per candidate from N(mean, std) of the ensemble), ``ei`` (expected improvement
over the best reward so far) and ``ucb`` (mean + std).

The predictor (``strategies/predictor.py``) is a numpy MLP ensemble trained on the
rewards transformed by ``target`` (``standard`` z-scores, or ``log_gap``, which stretches
the top of the distribution). Defaults (3 hidden layers of 20, 300 candidates from the 10
best) came from a sweep on NAS-Bench-201 CIFAR-10 (docs/benchmarks.md). Every random
choice comes from ``self.rng`` inside ``ask``, so replaying the ask/tell sequence rebuilds
the same queue and the same predictor.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy
from archsearch.strategies.predictor import TARGETS, MLPEnsemble, resolve_encoding, transform_rewards, widths

ACQUISITIONS = ("its", "ei", "ucb")


@register_strategy("bananas")
class Bananas(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        initial: int = option(10, "random proposals before the predictor guides", low=1)
        batch: int = option(10, "proposals queued per iteration", low=1)
        candidates: int = option(300, "mutations scored per iteration", low=1)
        ensemble: int = option(5, "MLPs in the predictor ensemble", low=1)
        acquisition: str = option("its", "acquisition function", choices=ACQUISITIONS)
        encoding: str = option("auto", "feature encoding (auto: path where the space has it, else onehot)")
        parents: int = option(10, "best architectures the candidates are mutated from", low=1)
        mutations: int = option(2, "most mutations per candidate", low=1)
        hidden: tuple[int, ...] = option((20, 20, 20), "predictor hidden layer widths", check=widths)
        epochs: int = option(300, "predictor training steps per fit", low=1)
        target: str = option("standard", "reward transform the predictor fits", choices=TARGETS)

    opts: Options
    small_options = {"initial": 5, "batch": 4, "candidates": 40, "epochs": 100}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.encoding = resolve_encoding(space, self.opts.encoding)
        self.predictor: Optional[MLPEnsemble] = None
        self._asked = 0
        self._results: dict[str, tuple[Architecture, Optional[float]]] = {}  # str(arch) -> reward (None: failed)
        self._pending: Counter[str] = Counter()  # architectures asked, not yet told
        self._waiting_asks: dict[int, str] = {}  # ask id -> architecture of each ask not yet told
        self._queue: list[tuple[Architecture, Optional[str]]] = []
        self._features: dict[str, np.ndarray] = {}
        self._fitted_on = -1  # number of completed trials the predictor was fitted on

    # -- ask/tell ---------------------------------------------------------------------
    def ask(self) -> Proposal:
        self._asked += 1
        arch, parent = self._next()
        proposal = self.propose(arch, parent=parent)
        self._wait(proposal)
        return proposal

    def adopt(self, proposal: Proposal) -> None:
        self._asked += 1  # counts towards the ``initial`` random phase
        self._wait(proposal)

    def _wait(self, proposal: Proposal) -> None:
        key = str(proposal.arch)
        self._waiting_asks[proposal.ask_id] = key
        self._pending[key] += 1

    def tell(self, trial: Trial) -> None:
        key = str(trial.arch)
        if trial.ask_id is not None and self._waiting_asks.pop(trial.ask_id, None) is not None:  # its ask is answered
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]
        complete = trial.state is TrialState.COMPLETE and trial.reward is not None
        if complete or key not in self._results:  # a failure never hides an earlier result
            self._results[key] = (trial.arch, float(trial.reward) if complete else None)  # type: ignore[arg-type]

    # -- internals --------------------------------------------------------------------
    def _seen(self, key: str) -> bool:
        return key in self._results or key in self._pending

    def _next(self) -> tuple[Architecture, Optional[str]]:
        while self._queue:  # a queued arch may have been told meanwhile (e.g. a re-told journal row)
            arch, parent = self._queue.pop(0)
            if not self._seen(str(arch)):
                return arch, parent
        completed = self._completed()
        if self._asked > self.opts.initial and len(completed) >= 2:
            self._queue = self._iteration(completed)
            if self._queue:
                return self._queue.pop(0)
        return self._random(), None

    def _completed(self) -> list[tuple[str, Architecture, float]]:
        return [(k, a, r) for k, (a, r) in self._results.items() if r is not None]

    def _random(self) -> Architecture:
        """A random architecture not evaluated or pending, if a few tries find one."""
        arch = self.space.sample(self.rng)
        for _ in range(20):
            if not self._seen(str(arch)):
                break
            arch = self.space.sample(self.rng)
        return arch

    def _feature(self, key: str, arch: Architecture) -> np.ndarray:
        f = self._features.get(key)
        if f is None:
            f = self._features[key] = self.space.features(arch, self.encoding).astype(np.float64)
        return f

    def _iteration(self, completed: list[tuple[str, Architecture, float]]) -> list[tuple[Architecture, Optional[str]]]:
        """Fit the predictor (if new results arrived), then rank mutated candidates."""
        rewards = np.array([r for _, _, r in completed])
        if self._fitted_on != len(completed):
            x = np.stack([self._feature(k, a) for k, a, _ in completed])
            yy = transform_rewards(rewards, self.opts.target)
            self.predictor = MLPEnsemble(self.opts.ensemble, self.opts.hidden, self.opts.epochs).fit(x, yy, self.rng)
            self._fitted_on = len(completed)
        pool = self._candidates(completed)
        if not pool:
            return []
        assert self.predictor is not None
        preds = self.predictor.predict(np.stack([self._feature(str(a), a) for a, _ in pool]))
        score = self._acquire(preds, float(transform_rewards(rewards, self.opts.target).max()))
        order = np.argsort(-score, kind="stable")
        return [pool[int(i)] for i in order[: self.opts.batch]]

    def _candidates(self, completed: list[tuple[str, Architecture, float]]) -> list[tuple[Architecture, Optional[str]]]:
        """Distinct, unseen mutations of the best ``parents`` architectures (round-robin over them)."""
        order = sorted(range(len(completed)), key=lambda i: -completed[i][2])  # stable: ties keep tell order
        top = [completed[i][1] for i in order[: self.opts.parents]]
        pool: dict[str, tuple[Architecture, Optional[str]]] = {}
        for attempt in range(20 * self.opts.candidates):
            if len(pool) >= self.opts.candidates:
                break
            parent = top[attempt % len(top)]
            child = parent
            for _ in range(int(self.rng.integers(1, self.opts.mutations + 1))):
                child = self.space.mutate(child, self.rng)
            key = str(child)
            if key not in pool and not self._seen(key):
                pool[key] = (child, parent.id)
        return list(pool.values())

    def _acquire(self, preds: np.ndarray, best: float) -> np.ndarray:
        """Acquisition values (higher is better) from member predictions (members, candidates)."""
        mean, std = preds.mean(axis=0), preds.std(axis=0)
        if self.opts.acquisition == "its":
            return mean + std * self.rng.standard_normal(len(mean))
        if self.opts.acquisition == "ucb":
            return mean + std
        std = np.maximum(std, 1e-9)
        z = (mean - best) / std
        cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in z]))
        return std * (z * cdf + np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
