"""The time planner's arithmetic: how a whole-job time budget is split, and at what fidelity trials run.

``--time`` is what the user will wait for, search and final training together. From the cost of a
typical network of the space on this machine (``estimation/cost.py``) and the data sizes:

1. a safety margin (:data:`MARGIN`) and the time already spent measuring come off the top;
2. final training gets :data:`FINAL_SHARE` of the rest, or less when the configured
   ``final.epochs`` of a typical network take less (small data: the search gets the time back);
3. the search gets the remainder. Under it, the planner picks the highest-effort search fidelity
   (epochs x data fraction, never above the configured one) at which enough trials fit:

   * the user named no strategy: asynchronous successive halving over epoch rungs (1, 3, 9) or
     (1, 3) when enough architectures fit for :data:`TOP_TRIALS` of them to reach the top rung
     (and at least :data:`MIN_ARCHS` in all); else the configured strategy at one epoch;
   * the user named a strategy: it keeps it, at the fidelity where :data:`TARGET_TRIALS` fit
     (or the trial budget, when smaller).

Everything here is pure arithmetic on numbers (seconds per sample), so tests check it exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from archsearch.errors import ConfigError

MARGIN = 0.04  # kept back from the budget for what no model predicts (start-up, writing, noise)
FINAL_SHARE = 0.4  # at most this share of the usable time trains the final model
TARGET_TRIALS = 30  # trials a named strategy should get (evolution's population of 10, then two generations)
MIN_ARCHS = 20  # architectures successive halving should start at least
TOP_TRIALS = 3  # architectures successive halving should train at the top rung
EPOCH_LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
FRACTION_LADDER = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05)
MIN_SAMPLES = 500  # a trial trains on at least this many examples (or all there are)
RUNG_CHOICES: tuple[tuple[int, ...], ...] = ((1, 3, 9), (1, 3))
ETA = 3


@dataclass(frozen=True)
class Workload:
    """What one trial and the final training cost, in seconds per sample, with the split sizes."""

    train_s: float  # seconds to train on one sample, typical network of the space
    eval_s: float  # seconds to evaluate one sample
    min_train_s: float  # the cheapest network's, for the "too short" check
    min_eval_s: float
    overhead_s: float  # per trial: building, profiling, data preparation
    n_train: int
    n_valid: int
    n_test: int
    n_final: int  # examples the final training trains on (train, + valid when it trains on it)

    def trial_seconds(self, epochs: float, fraction: float, cheapest: bool = False,
                      train_s: Optional[float] = None, eval_s: Optional[float] = None) -> float:
        """One trial: ``epochs`` over ``fraction`` of the training split, validation after each epoch;
        of the typical network, the cheapest, or one whose per-sample seconds are given."""
        t, e = (self.min_train_s, self.min_eval_s) if cheapest else (self.train_s, self.eval_s)
        t, e = (t if train_s is None else train_s), (e if eval_s is None else eval_s)
        return epochs * (self.samples(fraction) * t + self.n_valid * e) + self.overhead_s

    def samples(self, fraction: float) -> int:
        """Training examples per epoch of a trial at ``fraction``."""
        return max(2, round(self.n_train * fraction))

    def final_seconds(self, epochs: int, train_s: Optional[float] = None, eval_s: Optional[float] = None) -> float:
        t = self.train_s if train_s is None else train_s
        e = self.eval_s if eval_s is None else eval_s
        return epochs * self.n_final * t + self.n_test * e + self.overhead_s


@dataclass
class TimePlan:
    """The planner's decisions, recorded in the journal (meta ``plan``) and shown in the report."""

    total: float  # the whole job's budget, seconds
    setup: float  # seconds spent before the search (loading, measuring the cost model)
    final_seconds: float  # kept for the final training
    search_seconds: float  # for the trials
    epochs: int  # search fidelity: epochs of a trial (the top rung's under successive halving)
    data_fraction: float
    trial_seconds: float  # a typical trial at that fidelity
    trials: int  # how many trials (architectures, under successive halving) fit
    final_epochs: int  # the final training's epochs for a typical network; re-planned for the winner
    rungs: Optional[list[int]] = None  # successive halving's epoch rungs, when the planner chose it
    strategy: Optional[dict[str, Any]] = None  # the strategy the planner chose (None: the user's)
    cost_model: dict[str, Any] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    replans: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TimePlan":
        return cls(**data)

    def fidelity(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "data_fraction": self.data_fraction}

    def summary(self) -> str:
        how = (f"successive halving over epochs {self.rungs} on {self.data_fraction:g} of the data"
               if self.rungs else f"{self.epochs} epoch(s) on {self.data_fraction:g} of the data per trial")
        return (f"plan for {_fmt(self.total)}: {_fmt(self.setup)} measuring, {_fmt(self.search_seconds)} search "
                f"(~{self.trials} {'architectures' if self.rungs else 'trials'}, {how}, ~{_fmt(self.trial_seconds)} "
                f"each), {_fmt(self.final_seconds)} final training (~{self.final_epochs} epochs)")


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def minimum_total(work: Workload, setup: float, final: bool) -> float:
    """The least budget that runs one trial of the cheapest network at the lowest fidelity and one
    epoch of its final training, after ``setup``."""
    fraction = min(1.0, MIN_SAMPLES / max(work.n_train, 1))  # the lowest fidelity
    need = setup + work.trial_seconds(1, fraction, cheapest=True)
    if final:
        need += work.final_seconds(1, work.min_train_s, work.min_eval_s)
    return need / (1 - MARGIN)


def _fractions(max_fraction: float, n_train: int) -> list[float]:
    """The data fractions to consider: the ladder under the configured one, each at least MIN_SAMPLES."""
    out = [f for f in FRACTION_LADDER if f <= max_fraction + 1e-12 and f * n_train >= MIN_SAMPLES]
    return out or [max_fraction]


def make_plan(total: float, setup: float, work: Workload, max_epochs: int, max_fraction: float,
              final_epochs: int, final: bool, trial_limit: Optional[int], choose_strategy: bool,
              workers: int = 1) -> TimePlan:
    """Split ``total`` seconds (see the module docstring). ``workers`` trials run at once, so the search
    fits that many times the trials. ConfigError when not even one trial fits."""
    least = minimum_total(work, setup, final)
    if total < least:
        raise ConfigError(f"budget.time {total:.0f} s is too short for this data on this machine: one trial of the "
                          f"cheapest network and one epoch of final training need at least {math.ceil(least)} s "
                          f"(measured); give --time {math.ceil(least)}s or more")
    usable = total * (1 - MARGIN) - setup
    final_seconds = 0.0
    if final:
        final_seconds = min(FINAL_SHARE * usable, work.final_seconds(final_epochs))
        final_seconds = max(final_seconds, work.final_seconds(1, work.min_train_s, work.min_eval_s))
    search = usable - final_seconds
    capacity = search * max(1, workers)  # trial-seconds the workers provide
    epochs_per_final = work.final_seconds(1) - work.overhead_s - work.n_test * work.eval_s
    fits = (final_seconds - work.overhead_s - work.n_test * work.eval_s) / max(epochs_per_final, 1e-12)
    planned_final = max(1, min(final_epochs, int(fits + 1e-9))) if final else 0
    base: dict[str, Any] = dict(total=total, setup=setup, final_seconds=final_seconds, search_seconds=search,
                final_epochs=planned_final, workload=asdict(work))
    fractions = _fractions(max_fraction, work.n_train)
    if choose_strategy:
        best: Optional[tuple[float, int, tuple[int, ...], float]] = None
        for rungs in RUNG_CHOICES:
            if rungs[-1] > max_epochs:
                continue
            for fraction in fractions:
                per_arch = sum(work.trial_seconds(r, fraction) * ETA ** -k for k, r in enumerate(rungs))
                archs = int(capacity // per_arch)
                if archs >= max(MIN_ARCHS, TOP_TRIALS * ETA ** (len(rungs) - 1)):
                    key = (rungs[-1] * fraction, archs, rungs, fraction)
                    if best is None or key[:2] > best[:2]:
                        best = key
        if best is not None:
            _, archs, rungs, fraction = best
            if trial_limit is not None:
                archs = min(archs, trial_limit)
            strategy = {"name": "successive_halving", "resource": "epochs", "min_resource": rungs[0],
                        "max_resource": rungs[-1], "eta": ETA}
            return TimePlan(epochs=rungs[-1], data_fraction=fraction, rungs=list(rungs), strategy=strategy,
                            trial_seconds=work.trial_seconds(rungs[-1], fraction), trials=archs, **base)
    target = min(TARGET_TRIALS, trial_limit) if trial_limit is not None else TARGET_TRIALS
    options = [(e, f) for e in EPOCH_LADDER if e <= max_epochs for f in fractions] or [(max_epochs, fractions[-1])]
    fitting = [(e * f, f, e) for e, f in options if capacity // work.trial_seconds(e, f) >= target]
    if fitting:
        _, fraction, epochs = max(fitting)
    else:  # not even the target fits: the cheapest fidelity, as many trials as there are
        epochs, fraction = min(options, key=lambda o: work.trial_seconds(*o))
    trials = max(1, int(capacity // work.trial_seconds(epochs, fraction)))
    if trial_limit is not None:
        trials = min(trials, trial_limit)
    return TimePlan(epochs=epochs, data_fraction=fraction, trial_seconds=work.trial_seconds(epochs, fraction),
                    trials=trials, **base)
