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
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, finite, invalid, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy
from archsearch.strategies.predictor import MLPEnsemble, resolve_encoding, transform_rewards, widths

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


def _check_resource(name: str, value: float, resource: str) -> None:
    if resource == "epochs" and not (value >= 1 and float(value).is_integer()):
        raise invalid(name, f"must be an integer >= 1 when the resource is epochs, got {value!r}")
    if resource == "data_fraction" and not 1e-6 <= value <= 1.0:
        raise invalid(name, f"must be a number in [1e-06, 1] when the resource is data_fraction, got {value!r}")


class MultiFidelity(Strategy):
    """Asynchronous successive halving over the brackets :meth:`bracket_levels` names."""

    @dataclass(frozen=True)
    class Options(Options):
        resource: str = option("epochs", "what a rung raises: training epochs or the data fraction",
                               choices=RESOURCES)
        min_resource: float = option(1, "the bottom rung's resource", check=finite)
        max_resource: float = option(9, "the top rung's resource", check=finite)
        eta: int = option(3, "promote the top 1/eta of a rung to eta times the resource", low=2)
        epochs: int = option(10, "epochs of every trial when the resource is data_fraction", low=1)

        def __post_init__(self) -> None:
            _check_resource("min_resource", self.min_resource, self.resource)
            _check_resource("max_resource", self.max_resource, self.resource)
            if self.min_resource >= self.max_resource:
                raise invalid("min_resource", f"({self.min_resource:g}) must be below strategy.max_resource "
                                              f"({self.max_resource:g})")
            if self.max_resource / self.min_resource < self.eta * (1 - 1e-9):
                raise invalid("max_resource", f"/ strategy.min_resource must be at least eta ({self.eta}) for one "
                                              f"promotion, got {self.max_resource:g} / {self.min_resource:g}")

    opts: Options
    small_options = {"max_resource": 3}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.opts
        self.resource, self.eta, self.epochs = o.resource, o.eta, o.epochs
        self.min_resource, self.max_resource = o.min_resource, o.max_resource
        self.s_max = int(math.floor(math.log(o.max_resource / o.min_resource) / math.log(o.eta) + 1e-9))
        self.brackets = [Bracket(self._levels(s)) for s in self.bracket_levels()]
        self._schedule = self._bracket_schedule()
        self._cursor = 0
        self._pending: dict[int, tuple[int, int]] = {}  # ask id -> (bracket, rung) asked, not told
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
                    proposal = self.propose(arch, self.fidelity(bracket.resources[rung + 1]), parent=arch.id)
                    self._pending[proposal.ask_id] = (b, rung + 1)
                    return proposal
        b = self._schedule[self._cursor % len(self._schedule)]
        self._cursor += 1
        arch = self._new_architecture()
        self._started.add(arch.id)
        proposal = self.propose(arch, self.fidelity(self.brackets[b].resources[0]))
        self._pending[proposal.ask_id] = (b, 0)
        return proposal

    def tell(self, trial: Trial) -> None:
        slot = self._pending.pop(trial.ask_id, None) if trial.ask_id is not None else None
        if slot is None:
            return  # not asked by this strategy (or told twice): nothing to place
        key, (b, rung) = trial.arch.id, slot
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

    @dataclass(frozen=True)
    class Options(Hyperband.Options):
        random_fraction: float = option(1 / 3, "share of new architectures sampled uniformly", low=0, high=1)
        min_points: Optional[int] = option(None, "results a level needs before the model is fitted on it "
                                                 "(null: decisions + 1)", low=2)
        candidates: int = option(200, "architectures the model scores per pick", low=1)
        ensemble: int = option(5, "MLPs in the predictor ensemble", low=1)
        hidden: tuple[int, ...] = option((20, 20, 20), "predictor hidden layer widths", check=widths)
        predictor_epochs: int = option(200, "predictor training steps per fit", low=1)

    opts: Options
    small_options = {"max_resource": 3, "candidates": 20, "ensemble": 2, "predictor_epochs": 50}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.opts
        self.min_points = o.min_points if o.min_points is not None else len(space.decisions()) + 1  # BOHB: d + 1
        self.encoding = resolve_encoding(space, "auto")
        self.model_based_picks = 0  # new architectures chosen by the model (for reports and tests)

    def _new_architecture(self) -> Architecture:
        if self.rng.random() < self.opts.random_fraction:
            return self._random()
        levels = sorted({r for bracket in self.brackets for r in bracket.resources}, reverse=True)
        data = next((d for d in (self.results_at(r) for r in levels) if len(d) >= self.min_points), None)
        if data is None:
            return self._random()
        x = np.stack([self.space.features(a, self.encoding) for a, _ in data]).astype(np.float64)
        y = transform_rewards(np.array([v for _, v in data]), "standard")
        model = MLPEnsemble(self.opts.ensemble, self.opts.hidden, self.opts.predictor_epochs).fit(x, y, self.rng)
        best = [a for a, _ in sorted(data, key=lambda d: -d[1])[:5]]
        pool: dict[str, Architecture] = {}
        for i in range(self.opts.candidates):
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
