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
from typing import Any, Optional, Sequence

import numpy as np

from archsearch.core import Proposal, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy
from archsearch.strategies.predictor import TARGETS, MLPEnsemble, check_hidden, transform_rewards

ACQUISITIONS = ("its", "ei", "ucb")


def _check_int(key: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"strategy.{key} must be an integer >= {low}, got {value!r}")
    return value


@register_strategy("bananas")
class Bananas(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        initial: int = 10,
        batch: int = 10,
        candidates: int = 300,
        ensemble: int = 5,
        acquisition: str = "its",
        encoding: str = "auto",
        parents: int = 10,
        mutations: int = 2,
        hidden: Sequence[int] = (20, 20, 20),
        epochs: int = 300,
        target: str = "standard",
    ) -> None:
        super().__init__(space, seed)
        self.initial = _check_int("initial", initial, 1)
        self.batch = _check_int("batch", batch, 1)
        self.candidates = _check_int("candidates", candidates, 1)
        self.ensemble = _check_int("ensemble", ensemble, 1)
        self.parents = _check_int("parents", parents, 1)
        self.mutations = _check_int("mutations", mutations, 1)
        self.epochs = _check_int("epochs", epochs, 1)
        if acquisition not in ACQUISITIONS:
            raise ConfigError(f"strategy.acquisition must be one of: {', '.join(ACQUISITIONS)} (got {acquisition!r})")
        kinds = space.feature_kinds()
        if encoding != "auto" and encoding not in kinds:
            raise ConfigError(f"strategy.encoding must be one of: auto, {', '.join(kinds)} "
                              f"(space {space.name!r}; got {encoding!r})")
        check_hidden(hidden)
        if target not in TARGETS:
            raise ConfigError(f"strategy.target must be one of: {', '.join(TARGETS)} (got {target!r})")
        self.acquisition, self.target = acquisition, target
        self.encoding = encoding if encoding != "auto" else ("path" if "path" in kinds else "onehot")
        self.hidden = tuple(hidden)
        self.predictor: Optional[MLPEnsemble] = None
        self._asked = 0
        self._results: dict[str, tuple[Architecture, Optional[float]]] = {}  # str(arch) -> reward (None: failed)
        self._pending: Counter[str] = Counter()
        self._queue: list[tuple[Architecture, Optional[str]]] = []
        self._features: dict[str, np.ndarray] = {}
        self._fitted_on = -1  # number of completed trials the predictor was fitted on

    # -- ask/tell ---------------------------------------------------------------------
    def ask(self) -> Proposal:
        self._asked += 1
        arch, parent = self._next()
        self._pending[str(arch)] += 1
        return Proposal(arch, parent=parent)

    def adopt(self, proposal: Proposal) -> None:
        self._asked += 1  # counts towards the ``initial`` random phase
        self._pending[str(proposal.arch)] += 1

    def tell(self, trial: Trial) -> None:
        key = str(trial.arch)
        if self._pending[key] > 0:
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
        if self._asked > self.initial and len(completed) >= 2:
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
            yy = transform_rewards(rewards, self.target)
            self.predictor = MLPEnsemble(self.ensemble, self.hidden, self.epochs).fit(x, yy, self.rng)
            self._fitted_on = len(completed)
        pool = self._candidates(completed)
        if not pool:
            return []
        assert self.predictor is not None
        preds = self.predictor.predict(np.stack([self._feature(str(a), a) for a, _ in pool]))
        score = self._acquire(preds, float(transform_rewards(rewards, self.target).max()))
        order = np.argsort(-score, kind="stable")
        return [pool[int(i)] for i in order[: self.batch]]

    def _candidates(self, completed: list[tuple[str, Architecture, float]]) -> list[tuple[Architecture, Optional[str]]]:
        """Distinct, unseen mutations of the best ``parents`` architectures (round-robin over them)."""
        order = sorted(range(len(completed)), key=lambda i: -completed[i][2])  # stable: ties keep tell order
        top = [completed[i][1] for i in order[: self.parents]]
        pool: dict[str, tuple[Architecture, Optional[str]]] = {}
        for attempt in range(20 * self.candidates):
            if len(pool) >= self.candidates:
                break
            parent = top[attempt % len(top)]
            child = parent
            for _ in range(int(self.rng.integers(1, self.mutations + 1))):
                child = self.space.mutate(child, self.rng)
            key = str(child)
            if key not in pool and not self._seen(key):
                pool[key] = (child, parent.id)
        return list(pool.values())

    def _acquire(self, preds: np.ndarray, best: float) -> np.ndarray:
        """Acquisition values (higher is better) from member predictions (members, candidates)."""
        mean, std = preds.mean(axis=0), preds.std(axis=0)
        if self.acquisition == "its":
            return mean + std * self.rng.standard_normal(len(mean))
        if self.acquisition == "ucb":
            return mean + std
        std = np.maximum(std, 1e-9)
        z = (mean - best) / std
        cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in z]))
        return std * (z * cdf + np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
