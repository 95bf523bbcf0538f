"""What the search answers without training: a network the journal already has (the evaluation
cache) and a proposal the time plan cannot afford or the constraints forbid (skipped), both told to
the strategy like any trial; and when to stop proposing because of them. A part of
:class:`~archsearch.experiment.Experiment`.

Identical networks share one canonical id (``Architecture.canonical``), so a repeated (id,
fidelity) is answered from the first trained copy, also after a resume: state complete, metrics
``cached: 1`` and ``cached_from``, cost 0. Only training is worth saving: evaluators that train
no models (tables, proxies) and weight inheritance (whose result depends on the parent) evaluate
every trial.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from archsearch.core import EvalResult, Trial, TrialState
from archsearch.estimation.base import Evaluator
from archsearch.experiment_plan import Expected
from archsearch.plan import TimePlan
from archsearch.storage.journal import Journal

MAX_REPEATS = 50  # cached answers in a row that end a search (a converged strategy)
MAX_SKIPS = 5  # proposals in a row too long for the time left that end a search


class Shortcuts:
    """Provided by :class:`~archsearch.experiment.Experiment`: the attributes below."""

    evaluator: Evaluator
    plan: Optional[TimePlan]
    _cache: dict[tuple[str, str], Trial]
    _repeats = 0  # cached answers in a row
    _skips = 0  # time skips in a row

    def _cache_key(self, arch: Any, fidelity: Any) -> tuple[str, str]:
        """Identical networks (one canonical id) at one fidelity give one evaluation."""
        return arch.id, json.dumps(fidelity.to_dict(), sort_keys=True)

    if TYPE_CHECKING:
        from archsearch.core import Fidelity
        from archsearch.spaces.base import Architecture

        def _inherits(self) -> bool: ...

        def _finish(self, trial: Trial, result: EvalResult, expected: Optional[Expected] = None) -> Trial: ...

        def expected(self, arch: Architecture, fidelity: Fidelity) -> Expected: ...

        def skip_reason(self, expected: Expected, elapsed: float) -> tuple[Optional[str], bool]: ...

    def _answer_without_training(self, trial: Trial, elapsed: float) -> tuple[Optional[Trial], Optional[Expected]]:
        """A trial answered from the cache (``cached``) or skipped by the planner, told to the strategy
        like any other; else (None, its expected cost under a plan)."""
        # only training is worth saving: a table lookup or a proxy costs nothing (and a tabular benchmark's
        # simulated cost must stay the table's); with inheritance a result depends on the parent too
        cacheable = self.evaluator.trains_models and not self._inherits()
        source = self._cache.get(self._cache_key(trial.arch, trial.fidelity)) if cacheable else None
        if source is not None:
            metrics = {**source.metrics, "cached": 1.0, "cached_from": float(source.number)}
            return self._finish(trial, EvalResult(TrialState.COMPLETE, metrics, 0.0, None, list(source.curve))), None
        if self.plan is None:
            return None, None
        cost = self.expected(trial.arch, trial.fidelity)
        reason, for_time = self.skip_reason(cost, elapsed)
        self._skips = self._skips + 1 if for_time else 0
        if reason is None:
            return None, cost
        result = EvalResult(TrialState.FAILED, {**cost.metrics(), "skipped": 1.0}, 0.0, Journal.SKIPPED + reason)
        return self._finish(trial, result), None

    def _stop_after_answer(self, trial: Trial) -> Optional[str]:
        """Stop proposing when the strategy keeps repeating evaluated networks or nothing fits the time."""
        cached = trial.metrics.get("cached") == 1.0
        self._repeats = self._repeats + 1 if cached else 0
        if self._repeats >= MAX_REPEATS:
            return (f"the strategy proposed {MAX_REPEATS} already evaluated networks in a row: the search stops "
                    "(it has converged, or the space is too small for the budget)")
        if self._skips >= MAX_SKIPS:
            return f"time: {MAX_SKIPS} proposals in a row cannot finish in the search time left"
        return None
