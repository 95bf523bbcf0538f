"""TPE (Bergstra et al., 2011) through Optuna's ``TPESampler`` on the decision-sequence encoding.

Optuna does the modelling; this class only translates. Each proposal is one trial of an
in-memory Optuna study (``study.ask``), each decision one parameter of it, and each
``tell`` closes the matching Optuna trial (failed trials become ``FAIL``, which TPE ignores).

* Parameters: a decision whose choices are three or more strictly increasing numbers
  (kernel sizes, widths, a hyper-parameter grid) is an ``IntDistribution`` over the choice
  index, so TPE's Parzen estimators can exploit the order (a good lr of 3e-3 makes 1e-3
  likelier than 1e-1). Every other decision is a ``CategoricalDistribution`` over the
  indices. ``ordinal=False`` makes every decision categorical.
* Pending proposals: several asks may precede their tells (parallel workers); with
  ``constant_liar`` (the default) TPE treats the running ones as bad so workers spread out.
  A tell is matched to its ask by ``trial.number`` (the ask order, as the experiment numbers
  trials), else to the oldest pending ask of the same architecture; a trial never asked
  (the replay diverged) is added to the study as a finished trial of its own.
* Duplicates: TPE on a small discrete space often re-proposes an architecture it has seen,
  which spends a query for nothing. With ``dedupe`` (default) such a proposal is closed as
  ``FAIL`` and replaced by an unseen one-decision mutation of it (random order from
  ``self.rng``; a random sample when all neighbours were seen), which is enqueued into the
  study so TPE learns from it. Mutation keeps TPE's choice of region: a local step around a
  point TPE rates highly.
* Determinism: ``TPESampler(seed=self.seed)`` is a deterministic function of the seed and
  the study's history, which is a function of the ask/tell sequence, so replay restores it.
* Logging: Optuna logs every finished trial at INFO; the constructor lowers the ``optuna``
  logger to WARNING once, and only when it is set to something more verbose.
"""

from __future__ import annotations

import warnings
from collections import deque
from numbers import Real
from typing import Any, Optional

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState as OptunaState

from archsearch.core import Proposal, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces.base import Architecture, Decision, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy


def _is_ordinal(decision: Decision) -> bool:
    """Three or more strictly increasing real numbers (bools excluded)."""
    c = decision.choices
    if len(c) < 3 or any(isinstance(v, bool) or not isinstance(v, Real) for v in c):
        return False
    return all(float(a) < float(b) for a, b in zip(c, c[1:]))


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"strategy.{key} must be true or false, got {value!r}")
    return value


@register_strategy("tpe")
class TPE(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        constant_liar: bool = True,
        ordinal: bool = True,
        dedupe: bool = True,
    ) -> None:
        super().__init__(space, seed)
        if not isinstance(n_startup_trials, int) or isinstance(n_startup_trials, bool) or n_startup_trials < 0:
            raise ConfigError(f"strategy.n_startup_trials must be an integer >= 0, got {n_startup_trials!r}")
        if not isinstance(n_ei_candidates, int) or isinstance(n_ei_candidates, bool) or n_ei_candidates < 1:
            raise ConfigError(f"strategy.n_ei_candidates must be an integer >= 1, got {n_ei_candidates!r}")
        for key, value in (("multivariate", multivariate), ("constant_liar", constant_liar),
                           ("ordinal", ordinal), ("dedupe", dedupe)):
            _check_bool(key, value)
        self.dedupe = dedupe
        decisions = space.decisions()
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):  # Optuna needs distinct parameter names
            names = [f"{i}:{n}" for i, n in enumerate(names)]
        self._names = names
        self._dists: dict[str, BaseDistribution] = {
            name: (IntDistribution(0, len(d.choices) - 1) if ordinal and _is_ordinal(d)
                   else CategoricalDistribution(list(range(len(d.choices)))))
            for name, d in zip(names, decisions)
        }
        optuna_logger = optuna.logging.get_logger("optuna")
        if optuna_logger.getEffectiveLevel() < optuna.logging.WARNING:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():  # some options are marked experimental in some versions
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=n_startup_trials, n_ei_candidates=n_ei_candidates,
                multivariate=multivariate, constant_liar=constant_liar)
        self.study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=sampler,
                                         direction="maximize")
        self._asked = 0
        self._pending: dict[int, tuple[str, int]] = {}  # ask order -> (arch id, optuna trial number)
        self._pending_by_arch: dict[str, deque[int]] = {}  # arch id -> ask orders, oldest first
        self._seen: set[str] = set()  # ids of every architecture proposed

    # -- translation -------------------------------------------------------------
    def _params(self, arch: Architecture) -> dict[str, int]:
        return dict(zip(self._names, self.space.encode(arch)))

    def _unseen_variant(self, arch: Architecture) -> Architecture:
        """An unseen architecture one decision away from ``arch`` (else a random unseen one)."""
        neighbours = self.space.neighbours(arch)
        for i in self.rng.permutation(len(neighbours)):
            if neighbours[int(i)].id not in self._seen:
                return neighbours[int(i)]
        for _ in range(100):
            candidate = self.space.sample(self.rng)
            if candidate.id not in self._seen:
                return candidate
        return arch  # (almost) everything was seen: a repeat is all that is left

    # -- the protocol ------------------------------------------------------------
    def ask(self) -> Proposal:
        otrial = self.study.ask(self._dists)
        arch = self.space.decode([otrial.params[n] for n in self._names])
        if self.dedupe and arch.id in self._seen:
            self.study.tell(otrial, state=OptunaState.FAIL)  # a wasted draw; TPE ignores failures
            arch = self._unseen_variant(arch)
            self.study.enqueue_trial(self._params(arch))
            otrial = self.study.ask(self._dists)
        order = self._asked
        self._asked += 1
        self._seen.add(arch.id)
        self._pending[order] = (arch.id, otrial.number)
        self._pending_by_arch.setdefault(arch.id, deque()).append(order)
        return Proposal(arch)

    def _match(self, trial: Trial) -> Optional[int]:
        """The optuna trial number of the pending ask that ``trial`` answers, if any."""
        arch_id = trial.arch.id
        order: Optional[int] = None
        if trial.number in self._pending and self._pending[trial.number][0] == arch_id:
            order = trial.number
        elif self._pending_by_arch.get(arch_id):
            order = self._pending_by_arch[arch_id][0]
        elif trial.number in self._pending:
            # asked for something else under this number (replay diverged): close that ask
            self.study.tell(self._pending[trial.number][1], state=OptunaState.FAIL)
            self._drop(trial.number)
        if order is None:
            return None
        number = self._pending[order][1]
        self._drop(order)
        return number

    def _drop(self, order: int) -> None:
        arch_id, _ = self._pending.pop(order)
        queue = self._pending_by_arch[arch_id]
        queue.remove(order)
        if not queue:
            del self._pending_by_arch[arch_id]

    def tell(self, trial: Trial) -> None:
        ok = trial.state is TrialState.COMPLETE and trial.reward is not None
        number = self._match(trial)
        if number is not None:
            if ok:
                self.study.tell(number, float(trial.reward))
            else:
                self.study.tell(number, state=OptunaState.FAIL)
            return
        # a trial this strategy never asked for: learn from it all the same
        self._seen.add(trial.arch.id)
        if ok:
            self.study.add_trial(optuna.trial.create_trial(
                params=self._params(trial.arch), distributions=self._dists, value=float(trial.reward)))
