"""Early stopping by the median rule: a trial stops when its curve falls below the median of
completed trials' curves at the same fidelity."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.options import Options, option

EARLY_STOPS = ("none", "median")


@dataclass(frozen=True)
class EarlyStopOptions(Options):
    """The training evaluator's early-stopping options (off by default)."""

    early_stop: str = option("none", "stop poor trials early: none, or the median rule", choices=EARLY_STOPS)
    early_stop_warmup: int = option(1, "epochs a trial always trains before the rule applies", low=0)
    early_stop_min_trials: int = option(3, "completed trials at the fidelity before the rule applies", low=1)


class MedianStop:
    """The median stopping rule (Golovin et al. 2017, Google Vizier; Optuna's ``MedianPruner``).

    After epoch t > ``warmup`` a trial stops if its best ``key`` value so far is strictly worse
    (lower) than the median of ``reference[t - 1]``: the best values up to epoch t of completed
    trials at the same fidelity (:func:`median_reference`). With fewer than ``min_trials`` of
    those it never stops. ``stopped_at`` is the epoch it stopped after (0: it ran fully).
    """

    def __init__(self, reference: Sequence[Sequence[float]], key: str, warmup: int = 1, min_trials: int = 3) -> None:
        self.reference, self.key, self.warmup, self.min_trials = reference, key, warmup, min_trials
        self.stopped_at = 0

    def __call__(self, curve: list[dict[str, float]]) -> bool:
        t = len(curve)
        if t <= self.warmup or t > len(self.reference) or len(self.reference[t - 1]) < self.min_trials:
            return False
        values = [v for v in (point.get(self.key, math.nan) for point in curve) if math.isfinite(v)]
        if values and max(values) >= statistics.median(self.reference[t - 1]):
            return False
        self.stopped_at = t
        return True


def median_reference(trials: Sequence[Trial], fidelity: Fidelity, key: str) -> list[list[float]]:
    """What :class:`MedianStop` compares with: for each epoch t (index t - 1), the best ``key`` value
    up to epoch t of every complete trial at ``fidelity`` that trained in full from scratch (trials
    stopped early or started from inherited weights are left out, as Optuna leaves out pruned ones)."""
    reference: list[list[float]] = [[] for _ in range(fidelity.epochs)]
    for trial in trials:
        if (trial.state is not TrialState.COMPLETE or trial.fidelity != fidelity
                or trial.metrics.get("stopped_early") or trial.metrics.get("inherited")):
            continue
        best = -math.inf
        for t, point in enumerate(trial.curve[: fidelity.epochs]):
            value = point.get(key, math.nan)
            if math.isfinite(value):
                best = max(best, value)
            if best > -math.inf:
                reference[t].append(best)
    return reference
