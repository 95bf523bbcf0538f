"""TPE (Bergstra et al., 2011) through Optuna's ``TPESampler`` on the decision-sequence encoding.

Optuna does the modelling; this class only translates. Each proposal is one trial of an
in-memory Optuna study (``study.ask``), each decision one parameter of it, and each
``tell`` closes the matching Optuna trial (failed trials become ``FAIL``, which TPE ignores).

* Parameters: a decision the space declares ordered (``DecisionKind.ORDINAL``/``NUMERIC``:
  kernel sizes, widths, a hyper-parameter grid) with three or more choices is an
  ``IntDistribution`` over the choice index, so TPE's Parzen estimators can exploit the order
  (a good lr of 3e-3 makes 1e-3 likelier than 1e-1). Every other decision is a
  ``CategoricalDistribution`` over the indices. ``ordinal=False`` makes every decision categorical.
* Pending proposals: several asks may precede their tells (parallel workers); with
  ``constant_liar`` (the default) TPE treats the running ones as bad so workers spread out.
  A tell is matched to its ask by ``trial.ask_id``; a trial this strategy never asked for (a
  warm start's) is added to the study as a finished trial of its own.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, Decision, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy

if TYPE_CHECKING:  # Optuna loads with the first TPE strategy, not with ``import archsearch``
    from optuna.distributions import BaseDistribution


def _is_ordinal(decision: Decision) -> bool:
    """Declared ordered, with enough choices for an order to matter."""
    return decision.kind.ordered and len(decision.choices) >= 3


@register_strategy("tpe")
class TPE(Strategy):
    @dataclass(frozen=True)
    class Options(Options):
        n_startup_trials: int = option(10, "random proposals before TPE models the results", low=0)
        n_ei_candidates: int = option(24, "candidates TPE scores per proposal", low=1)
        multivariate: bool = option(True, "model decisions jointly, not one by one")
        constant_liar: bool = option(True, "treat running trials as bad so parallel workers spread out")
        ordinal: bool = option(True, "ordered decisions (declared by the space) as integers, not categories")
        dedupe: bool = option(True, "replace a re-proposed architecture by an unseen neighbour")

    opts: Options
    small_options = {"n_startup_trials": 3, "n_ei_candidates": 8}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        import optuna
        from optuna.distributions import CategoricalDistribution, IntDistribution

        self._optuna = optuna
        decisions = space.decisions()
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):  # Optuna needs distinct parameter names
            names = [f"{i}:{n}" for i, n in enumerate(names)]
        self._names = names
        self._dists: dict[str, BaseDistribution] = {
            name: (IntDistribution(0, len(d.choices) - 1) if self.opts.ordinal and _is_ordinal(d)
                   else CategoricalDistribution(list(range(len(d.choices)))))
            for name, d in zip(names, decisions)
        }
        optuna_logger = optuna.logging.get_logger("optuna")
        if optuna_logger.getEffectiveLevel() < optuna.logging.WARNING:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():  # some options are marked experimental in some versions
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.opts.n_startup_trials, n_ei_candidates=self.opts.n_ei_candidates,
                multivariate=self.opts.multivariate, constant_liar=self.opts.constant_liar)
        self.study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=sampler,
                                         direction="maximize")
        self._pending: dict[int, int] = {}  # ask id -> optuna trial number
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
        fail = self._optuna.trial.TrialState.FAIL
        otrial = self.study.ask(self._dists)
        arch = self.space.decode([otrial.params[n] for n in self._names])
        if self.opts.dedupe and arch.id in self._seen:
            self.study.tell(otrial, state=fail)  # a wasted draw; TPE ignores failures
            arch = self._unseen_variant(arch)
            self.study.enqueue_trial(self._params(arch))
            otrial = self.study.ask(self._dists)
        self._seen.add(arch.id)
        proposal = self.propose(arch)
        assert proposal.ask_id is not None
        self._pending[proposal.ask_id] = otrial.number
        return proposal

    def tell(self, trial: Trial) -> None:
        ok = trial.state is TrialState.COMPLETE and trial.reward is not None
        number = self._pending.pop(trial.ask_id, None) if trial.ask_id is not None else None
        if number is not None:
            if ok:
                self.study.tell(number, float(trial.reward))  # type: ignore[arg-type]
            else:
                self.study.tell(number, state=self._optuna.trial.TrialState.FAIL)
            return
        # a trial this strategy never asked for: learn from it all the same
        self._seen.add(trial.arch.id)
        if ok:
            self.study.add_trial(self._optuna.trial.create_trial(
                params=self._params(trial.arch), distributions=self._dists, value=float(trial.reward)))
