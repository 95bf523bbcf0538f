"""Multi-fidelity search: successive halving, Hyperband and BOHB, all asynchronous (ASHA).

Each architecture first trains at a low fidelity (few epochs, or a small data fraction); the
best 1/``eta`` of every rung are trained again at ``eta`` times the resource, up to
``max_resource``. Trials are independent: a promoted architecture is trained from scratch at
the higher fidelity (``Proposal.fidelity``), so every trial's reward in the journal is a
complete, comparable result at its rung.

Promotion follows ASHA (Li et al., 2020, "A System for Massively Parallel Hyperparameter
Tuning"): an ask promotes an architecture as soon as it is in the top ``1/eta`` of the results
its rung has so far (highest rung first), and otherwise starts a new architecture at the
bottom rung. Asks never wait for tells, so parallel workers stay busy; run sequentially it
makes the same promotions as synchronous successive halving once each rung is full.

- ``successive_halving``: one bracket starting at ``min_resource``.
- ``hyperband`` (Li et al., 2018): brackets s = s_max..0 whose bottom rung is
  ``max_resource * eta**-s``; new architectures go to the brackets in Hyperband's proportions
  (``ceil((s_max + 1) / (s + 1)) * eta**s`` per round), which hedges against a low fidelity
  that ranks badly.
- ``bohb`` (Falkner et al., 2018): Hyperband whose new architectures come from a model instead
  of uniform sampling: an MLP ensemble (``strategies/predictor.py``) fitted on the results of
  the highest resource level with at least ``min_points`` of them, scoring ``candidates``
  random samples and mutations of that level's best by a Thompson draw; a ``random_fraction``
  of new architectures stays uniform, as in BOHB.

``resource`` is ``epochs`` (integers; a proposal sets ``epochs=r``) or ``data_fraction``
(it sets ``epochs=epochs, data_fraction=r``); width, depth, resolution (and the data fraction
when the resource is epochs) stay as the config sets them. The experiment's budget counts trials of every
fidelity; the journal keeps each trial's fidelity, and replaying its asks and tells rebuilds
the brackets exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from archsearch.core import Proposal, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy
from archsearch.strategies.predictor import MLPEnsemble, check_hidden, transform_rewards

RESOURCES = ("epochs", "data_fraction")
SAMPLE_TRIES = 50  # draws for an architecture not yet started before accepting a repeat


@dataclass
class Bracket:
    """One successive-halving bracket: a resource per rung and each rung's results so far."""

    resources: list[float]
    results: list[dict[str, tuple[Architecture, Optional[float]]]] = field(init=False)  # per rung: id -> (arch, reward)
    promoted: list[set[str]] = field(init=False)  # per rung: ids already sent to the next rung

    def __post_init__(self) -> None:
        self.results = [{} for _ in self.resources]
        self.promoted = [set() for _ in self.resources]

    def promotable(self, rung: int, eta: int) -> Optional[Architecture]:
        """The best architecture of ``rung`` that is in its top ``1/eta`` and not yet promoted."""
        told = self.results[rung]
        top = len(told) // eta  # failed results count in the rung's size but are never promoted
        ranked = sorted(((r, i, key) for i, (key, (_, r)) in enumerate(told.items()) if r is not None),
                        key=lambda t: (-t[0], t[1]))
        for _, _, key in ranked[:top]:
            if key not in self.promoted[rung]:
                return told[key][0]
        return None


def _number(key: str, value: Any, low: float, integer: bool = False, high: float = math.inf) -> None:
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int))
    if bad or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        limits = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ConfigError(f"strategy.{key} must be {kind} {limits}, got {value!r}")


class MultiFidelity(Strategy):
    """Asynchronous successive halving over the brackets :meth:`bracket_levels` names."""

    model_based = False

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        resource: str = "epochs",
        min_resource: float = 1,
        max_resource: float = 9,
        eta: int = 3,
        epochs: int = 10,
    ) -> None:
        super().__init__(space, seed)
        if resource not in RESOURCES:
            raise ConfigError(f"strategy.resource must be one of: {', '.join(RESOURCES)} (got {resource!r})")
        _number("eta", eta, 2, integer=True)
        _number("epochs", epochs, 1, integer=True)
        if resource == "epochs":
            _number("min_resource", min_resource, 1, integer=True)
            _number("max_resource", max_resource, 1, integer=True)
        else:
            _number("min_resource", min_resource, 1e-6, high=1.0)
            _number("max_resource", max_resource, 1e-6, high=1.0)
        if min_resource >= max_resource:
            raise ConfigError(f"strategy.min_resource ({min_resource}) must be below strategy.max_resource ({max_resource})")
        self.resource, self.eta, self.epochs = resource, eta, epochs
        self.min_resource, self.max_resource = min_resource, max_resource
        self.s_max = int(math.floor(math.log(max_resource / min_resource) / math.log(eta) + 1e-9))
        if self.s_max < 1:
            raise ConfigError(f"strategy.max_resource / strategy.min_resource must be at least eta ({eta}) "
                              f"for one promotion, got {max_resource} / {min_resource}")
        self.brackets = [Bracket(self._levels(s)) for s in self.bracket_levels()]
        self._schedule = self._bracket_schedule()
        self._cursor = 0
        self._pending: dict[str, list[tuple[int, int]]] = defaultdict(list)  # id -> [(bracket, rung)] asked, not told
        self._started: set[str] = set()  # ids started at a bottom rung

    # -- the bracket layout ----------------------------------------------------------
    def bracket_levels(self) -> list[int]:
        """Which brackets run (s = number of promotions): successive halving has only s_max."""
        return [self.s_max]

    def _levels(self, s: int) -> list[float]:
        out = []
        for k in range(s + 1):
            r = self.max_resource * float(self.eta) ** (k - s)
            out.append(float(max(1, round(r))) if self.resource == "epochs" else r)
        return out

    def _bracket_schedule(self) -> list[int]:
        """Bracket index of each new architecture in one round, in Hyperband's proportions."""
        schedule: list[int] = []
        for b, s in enumerate(self.bracket_levels()):
            schedule += [b] * int(math.ceil((self.s_max + 1) / (s + 1)) * self.eta ** s)
        return schedule

    def fidelity(self, r: float) -> dict[str, Any]:
        """The fidelity fields resource level ``r`` sets (the rest stay as configured)."""
        if self.resource == "epochs":
            return {"epochs": int(r)}
        return {"epochs": self.epochs, "data_fraction": float(r)}

    # -- ask/tell ----------------------------------------------------------------------
    def ask(self) -> Proposal:
        for b, bracket in enumerate(self.brackets):
            for rung in range(len(bracket.resources) - 2, -1, -1):  # highest rung first
                arch = bracket.promotable(rung, self.eta)
                if arch is not None:
                    bracket.promoted[rung].add(arch.id)
                    self._pending[arch.id].append((b, rung + 1))
                    return Proposal(arch, self.fidelity(bracket.resources[rung + 1]), parent=arch.id)
        b = self._schedule[self._cursor % len(self._schedule)]
        self._cursor += 1
        arch = self._new_architecture()
        self._started.add(arch.id)
        self._pending[arch.id].append((b, 0))
        return Proposal(arch, self.fidelity(self.brackets[b].resources[0]))

    def tell(self, trial: Trial) -> None:
        key = trial.arch.id
        if not self._pending.get(key):
            return  # not asked by this strategy (or told twice): nothing to place
        b, rung = self._pending[key].pop(0)
        reward = float(trial.reward) if trial.state is TrialState.COMPLETE and trial.reward is not None else None
        told = self.brackets[b].results[rung]
        if reward is not None or key not in told:  # a failure never hides an earlier result
            told[key] = (trial.arch, reward)

    # -- new architectures -------------------------------------------------------------
    def _random(self) -> Architecture:
        arch = self.space.sample(self.rng)
        for _ in range(SAMPLE_TRIES):
            if arch.id not in self._started:
                break
            arch = self.space.sample(self.rng)
        return arch

    def _new_architecture(self) -> Architecture:
        return self._random()

    def results_at(self, resource: float) -> list[tuple[Architecture, float]]:
        """Completed (architecture, reward) at one resource level, across brackets."""
        out = []
        for bracket in self.brackets:
            for rung, r in enumerate(bracket.resources):
                if r == resource:
                    out += [(a, v) for a, v in bracket.results[rung].values() if v is not None]
        return out


@register_strategy("successive_halving")
class SuccessiveHalving(MultiFidelity):
    """Successive halving (ASHA): promote the top 1/eta of each rung to eta x the resource."""


@register_strategy("hyperband")
class Hyperband(MultiFidelity):
    """Hyperband: successive halving in brackets that start at different resources."""

    def bracket_levels(self) -> list[int]:
        return list(range(self.s_max, -1, -1))


@register_strategy("bohb")
class BOHB(Hyperband):
    """BOHB: Hyperband's brackets with new architectures picked by a TPE-style density model."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        resource: str = "epochs",
        min_resource: float = 1,
        max_resource: float = 9,
        eta: int = 3,
        epochs: int = 10,
        random_fraction: float = 1 / 3,
        min_points: Optional[int] = None,
        candidates: int = 200,
        ensemble: int = 5,
        hidden: tuple[int, ...] = (20, 20, 20),
        predictor_epochs: int = 200,
    ) -> None:
        super().__init__(space, seed, resource, min_resource, max_resource, eta, epochs)
        _number("random_fraction", random_fraction, 0.0, high=1.0)
        for key, value in (("candidates", candidates), ("ensemble", ensemble), ("predictor_epochs", predictor_epochs)):
            _number(key, value, 1, integer=True)
        if min_points is not None:
            _number("min_points", min_points, 2, integer=True)
        check_hidden(hidden)
        self.random_fraction, self.candidates = float(random_fraction), candidates
        self.min_points = min_points if min_points is not None else len(space.decisions()) + 1  # BOHB: d + 1
        self.ensemble, self.hidden, self.predictor_epochs = ensemble, tuple(hidden), predictor_epochs
        kinds = space.feature_kinds()
        self.encoding = "path" if "path" in kinds else "onehot"
        self.model_based_picks = 0  # new architectures chosen by the model (for reports and tests)

    def _new_architecture(self) -> Architecture:
        if self.rng.random() < self.random_fraction:
            return self._random()
        levels = sorted({r for bracket in self.brackets for r in bracket.resources}, reverse=True)
        data = next((d for d in (self.results_at(r) for r in levels) if len(d) >= self.min_points), None)
        if data is None:
            return self._random()
        x = np.stack([self.space.features(a, self.encoding) for a, _ in data]).astype(np.float64)
        y = transform_rewards(np.array([v for _, v in data]), "standard")
        model = MLPEnsemble(self.ensemble, self.hidden, self.predictor_epochs).fit(x, y, self.rng)
        best = [a for a, _ in sorted(data, key=lambda d: -d[1])[:5]]
        pool: dict[str, Architecture] = {}
        for i in range(self.candidates):
            arch = self.space.sample(self.rng) if i % 2 else self.space.mutate(best[(i // 2) % len(best)], self.rng)
            if arch.id not in self._started:
                pool.setdefault(arch.id, arch)
        if not pool:
            return self._random()
        archs = list(pool.values())
        preds = model.predict(np.stack([self.space.features(a, self.encoding) for a in archs]).astype(np.float64))
        draw = preds.mean(axis=0) + preds.std(axis=0) * self.rng.standard_normal(len(archs))  # Thompson
        self.model_based_picks += 1
        return archs[int(np.argmax(draw))]
