"""The experiment's time-planning part: a whole-job time budget (``budget.time``) measured, split and kept.

Before anything is written, :meth:`TimePlanning.measure_and_plan` profiles sampled networks of
the space, times a few of them training on this machine (``estimation/cost.py``) and lets
``plan.py`` split the budget. During the search every proposal's cost is known before it runs
(:meth:`expected`); one that violates ``evaluator.constraints`` on FLOPs or parameters, or
cannot finish in the search time left, is recorded as skipped without training. Measured trial
times correct the cost model and re-plan the number of trials; the final training's epochs are
chosen for the winner from the time that is really left (:meth:`final_epochs`).
A part of :class:`~archsearch.experiment.Experiment`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch

from archsearch.config import Config
from archsearch.core import Fidelity, Trial
from archsearch.errors import ConfigError
from archsearch.estimation.base import Evaluator, TrainsWithSettings
from archsearch.estimation.cost import CostModel, NetworkProfile, profile_network, time_network
from archsearch.estimation.objectives import CONSTRAINT_METRICS
from archsearch.plan import FINAL_SHARE, MARGIN, MIN_SAMPLES, TimePlan, Workload, make_plan
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.storage.journal import Journal

MIN_PROFILES = 8  # profiled before the time limit may stop the drawing
PROFILE_SAMPLES = 16  # sampled networks profiled (FLOPs, activations) to know the space's cost spread
TIMED_SAMPLES = 4  # of which this many are timed training, cheapest to dearest
CONSTRAINT_TRIES = 200  # samples drawn to find one that meets the constraints before saying none does
PROFILE_SECONDS = 5.0  # profiling stops drawing after this long (large cells)


@dataclass
class Expected:
    """A proposal's cost, known before it runs."""

    profile: NetworkProfile
    seconds: float  # at the trial's fidelity, by the cost model as the trials so far refitted it
    epochs: int
    samples: int  # training examples per epoch

    def metrics(self) -> dict[str, float]:
        return {"flops": self.profile.flops, "params": self.profile.params, "expected_seconds": self.seconds}


class TimePlanning:
    """Provided by :class:`~archsearch.experiment.Experiment`: the attributes below."""

    config: Config
    space: SearchSpace
    evaluator: Evaluator
    journal: Journal
    clock: Callable[[], float]
    plan: Optional[TimePlan] = None
    cost: Optional[CostModel] = None
    workload: Optional[Workload] = None
    profiles: Sequence[NetworkProfile] = ()  # the sampled networks the plan measured (their spread of costs)

    if TYPE_CHECKING:  # provided by Experiment (its final-training part)
        def final_estimate(self, trials: Sequence[Trial]) -> float: ...

    def plans_time(self) -> bool:
        """A whole-job time budget is planned for trial-based searches that train models."""
        return (self.config.budget.time is not None and self.evaluator.trains_models
                and isinstance(self.evaluator, TrainsWithSettings) and self.config.strategy["name"] not in _oneshot())

    def constraints(self) -> dict[str, float]:
        """The FLOPs and parameter limits of ``evaluator.constraints`` (what can be checked before training)."""
        limits = self.config.evaluator.get("constraints") or {}
        return {k: float(v) for k, v in limits.items() if k in ("max_flops", "max_params") and v is not None}

    def _violation(self, profile: NetworkProfile) -> Optional[str]:
        for key, limit in self.constraints().items():
            value = profile.to_dict()[CONSTRAINT_METRICS[key]]
            if value > limit:
                return f"{CONSTRAINT_METRICS[key]} {value:,.0f} > evaluator.constraints.{key} {limit:,.0f}"
        return None

    # -- before the search ---------------------------------------------------------
    def measure_and_plan(self, job_start: float, workers: int) -> TimePlan:
        """Profile and time sampled networks, then plan; ConfigError (nothing written yet) when the
        budget cannot fit one trial or no sampled network meets the constraints."""
        cfg = self.config
        fidelity = cfg.fidelity
        space = self.space.scaled(fidelity.width, fidelity.depth)
        task = self.evaluator.task(fidelity)
        rng = np.random.default_rng([cfg.seed, 104729])  # the planner's own generator: strategies unaffected
        generator = torch.Generator().manual_seed(cfg.seed)
        found: list[tuple[Architecture, Any, NetworkProfile]] = []
        build_seconds, tries, smallest = [], 0, None
        deadline = time.perf_counter() + PROFILE_SECONDS
        while len(found) < PROFILE_SAMPLES and tries < CONSTRAINT_TRIES and (time.perf_counter() < deadline
                                                                              or len(found) < MIN_PROFILES):
            tries += 1
            arch = space.sample(rng)
            start = time.perf_counter()
            with torch.random.fork_rng():
                torch.manual_seed(cfg.seed + tries)
                model = space.build(arch, task)
            profile = profile_network(model, tuple(task.input_shape))
            build_seconds.append(time.perf_counter() - start)
            if smallest is None or profile.flops < smallest.flops:
                smallest = profile
            if self._violation(profile) is None:
                found.append((arch, model, profile))
        if not found:
            assert smallest is not None
            raise ConfigError(f"no architecture meets evaluator.constraints {self.constraints()}: none of {tries} "
                              f"sampled did (the smallest had {smallest.flops:,.0f} FLOPs and {smallest.params:,.0f} "
                              "parameters); loosen the constraints or choose a smaller space")
        found.sort(key=lambda item: item[2].flops)
        picks = sorted({round(i * (len(found) - 1) / max(TIMED_SAMPLES - 1, 1)) for i in range(TIMED_SAMPLES)})
        assert isinstance(self.evaluator, TrainsWithSettings)
        batch = int(self.evaluator.settings(found[0][0], fidelity)["batch_size"])
        time_network(found[-1][1], tuple(task.input_shape), task.num_classes, batch, generator, steps=1)  # warm-up
        timed = [time_network(found[i][1], tuple(task.input_shape), task.num_classes, batch, generator) for i in picks]
        cost = CostModel.fit([found[i][2] for i in picks], [t for t, _ in timed], [e for _, e in timed])
        predicted = sorted((cost.train_seconds(p), cost.eval_seconds(p)) for _, _, p in found)
        info = self.evaluator.data_info() or {}
        n_train, n_valid, n_test = int(info.get("train", 0)), int(info.get("valid", 0)), int(info.get("test", 0))
        # one real trial of the cheapest network at the lowest fidelity: what a trial costs beyond its
        # training steps (building, validation set-up, FLOP counting), and the first trial's warm-up
        fraction = min(fidelity.data_fraction, max(MIN_SAMPLES / max(n_train, 1), 1e-6))
        probe = fidelity.refined({"epochs": 1, "data_fraction": fraction})
        result = self.evaluator.evaluate(space, found[0][0], probe, cfg.seed)
        steps = (max(2, round(n_train * fraction)) * predicted[0][0] + n_valid * predicted[0][1])
        work = Workload(
            train_s=predicted[len(predicted) // 2][0], eval_s=predicted[len(predicted) // 2][1],
            min_train_s=predicted[0][0], min_eval_s=predicted[0][1],
            overhead_s=max(float(np.median(build_seconds)), result.cost - steps), n_train=n_train, n_valid=n_valid,
            n_test=n_test, n_final=n_train + (n_valid if cfg.final.train_on_valid else 0))
        setup = self.clock() - job_start
        assert cfg.budget.time is not None
        plan = make_plan(cfg.budget.time, setup, work, fidelity.epochs, fidelity.data_fraction, cfg.final.epochs,
                         cfg.final.enabled, cfg.budget.trials, not cfg.strategy_given, workers)
        plan.cost_model = cost.to_dict()
        self.plan, self.cost, self.workload = plan, cost, work
        self.profiles = [p for _, _, p in found]
        return plan

    def planned_config(self, plan: TimePlan) -> Config:
        """The config the search runs: the planned fidelity, and the planned strategy if it chose one."""
        data = self.config.to_dict()
        data["fidelity"] = {**data["fidelity"], **plan.fidelity()}
        if plan.strategy is not None:
            data["strategy"] = dict(plan.strategy)
        return Config.from_dict(data)

    def restore_plan(self) -> None:
        """On resume: the plan and cost model as the journal holds them."""
        stored = self.journal.get_meta("plan")
        if stored is not None and self.plan is None:
            self.plan = TimePlan.from_dict(stored)
            self.cost = CostModel.from_dict(stored["cost_model"])
            self.workload = Workload(**stored["workload"])
            self.profiles = [NetworkProfile(s["flops"], s["activations"], s["params"])
                             for s in stored["cost_model"].get("samples", [])]

    # -- during the search -----------------------------------------------------------
    def search_left(self, elapsed: float) -> float:
        """Seconds of search time left at ``elapsed`` seconds into the job."""
        assert self.plan is not None
        return self.plan.total * (1 - MARGIN) - self.plan.final_seconds - elapsed

    def expected(self, arch: Architecture, fidelity: Fidelity) -> Expected:
        """The cost of training ``arch`` at ``fidelity``, before it runs."""
        assert self.cost is not None and self.workload is not None
        task = self.evaluator.task(fidelity)
        with torch.random.fork_rng():
            model = self.space.scaled(fidelity.width, fidelity.depth).build(arch, task)
        profile = profile_network(model, tuple(task.input_shape))
        assert isinstance(self.evaluator, TrainsWithSettings)
        epochs = int(self.evaluator.settings(arch, fidelity)["epochs"])
        return Expected(profile, self._trial_seconds(profile, epochs, fidelity.data_fraction), epochs,
                        self.workload.samples(fidelity.data_fraction))

    def _trial_seconds(self, profile: NetworkProfile, epochs: int, fraction: float) -> float:
        """A trial of the network ``profile`` describes, by the current cost model."""
        assert self.cost is not None and self.workload is not None
        return self.workload.trial_seconds(epochs, fraction, train_s=self.cost.train_seconds(profile),
                                           eval_s=self.cost.eval_seconds(profile))

    def _final_parts(self, profile: NetworkProfile) -> tuple[float, float]:
        """(seconds per epoch, fixed seconds) of the final training of the network ``profile`` describes."""
        assert self.cost is not None and self.workload is not None
        t, e = self.cost.train_seconds(profile), self.cost.eval_seconds(profile)
        fixed = self.workload.final_seconds(0, t, e)
        return self.workload.final_seconds(1, t, e) - fixed, fixed

    def cheapest_trial(self, epochs: int, fraction: float) -> float:
        """Seconds of the cheapest measured network's trial at this fidelity, by the current model."""
        assert self.workload is not None
        if not self.profiles:
            return self.workload.trial_seconds(epochs, fraction, cheapest=True)
        return min(self._trial_seconds(p, epochs, fraction) for p in self.profiles)

    def skip_reason(self, expected: Expected, elapsed: float) -> tuple[Optional[str], bool]:
        """Why a proposal is not run (constraints first, then time; None: it runs), and whether the
        reason is the time left."""
        broken = self._violation(expected.profile)
        if broken is not None:
            return f"violates the constraints: {broken}", False
        left = self.search_left(elapsed)
        if expected.seconds > left:
            return f"would take ~{expected.seconds:.1f} s and the search has {max(left, 0.0):.1f} s left", True
        return None, False

    def observe(self, expected: Expected, measured: float, complete: int, elapsed: float) -> None:
        """A trial took ``measured`` seconds: its seconds per sample join the cost model, which is
        refitted; the plan records how many trials the time left now holds."""
        assert self.cost is not None and self.plan is not None and self.workload is not None
        w = self.workload
        ratio = self.cost.eval_seconds(expected.profile) / max(self.cost.train_seconds(expected.profile), 1e-12)
        train_s = (measured - w.overhead_s) / max(expected.epochs * (expected.samples + w.n_valid * ratio), 1)
        before = expected.seconds
        self.cost.observe(expected.profile, train_s, train_s * ratio)
        if abs(measured - before) > 0.25 * before or complete % 10 == 0:
            typical = self.typical_trial()
            left = max(0.0, self.search_left(elapsed))
            self.plan.replans.append({"after_trials": complete, "elapsed": round(elapsed, 1),
                                      "typical_trial_s": round(typical, 2),
                                      "trials_left": int(left // max(typical, 1e-9))})
            del self.plan.replans[:-50]
            self.plan.cost_model = self.cost.to_dict()
            self.journal.set_meta("plan", self.plan.to_dict())

    def reserve_final(self, profile: NetworkProfile, trial: int) -> None:
        """Re-plan the final training's share for the incumbent (``profile``): its ``final.epochs``
        by the current model, at least one epoch, at most the plan's share of the budget. A dear
        winner takes time back from the search; a cheap one gives it to the search."""
        assert self.cost is not None and self.plan is not None and self.workload is not None
        if not (self.config.final.enabled and self.evaluator.trains_models):
            return
        plan = self.plan
        per_epoch, fixed = self._final_parts(profile)
        usable = plan.total * (1 - MARGIN) - plan.setup
        need = min(FINAL_SHARE * usable, self.config.final.epochs * per_epoch + fixed)
        need = max(need, per_epoch + fixed)
        if abs(need - plan.final_seconds) > 0.02 * max(plan.final_seconds, 1e-9):
            plan.replans.append({"after_trial": trial, "final_seconds": round(need, 1),
                                 "was": round(plan.final_seconds, 1), "why": "a new incumbent"})
            del plan.replans[:-50]
            plan.final_seconds = need
            plan.search_seconds = usable - need
            self.journal.set_meta("plan", plan.to_dict())

    def typical_trial(self) -> float:
        """The median measured network's trial at the planned fidelity, by the current model."""
        assert self.cost is not None and self.plan is not None and self.workload is not None
        plan = self.plan
        if not self.profiles:
            return plan.trial_seconds
        costs = sorted(self._trial_seconds(p, plan.epochs, plan.data_fraction) for p in self.profiles)
        return costs[len(costs) // 2]

    def time_up(self, elapsed: float) -> Optional[str]:
        """Why no new trial may start at ``elapsed`` seconds into the job (None: one may)."""
        cfg = self.config
        if self.plan is not None and self.workload is not None and self.cost is not None:
            left = self.search_left(elapsed)
            cheapest = self.cheapest_trial(self.plan.epochs if not self.plan.rungs else self.plan.rungs[0],
                                           self.plan.data_fraction)
            if left < cheapest:
                return f"time: the search time is spent ({left:.0f} s left, a trial needs at least {cheapest:.0f} s)"
        elif cfg.budget.time is not None and elapsed >= cfg.budget.time:
            return "time: the time budget is spent"
        return None

    def final_left(self, trials: Sequence[Trial]) -> float:
        """Seconds of final training still to come: the plan's share, else estimated from the trials."""
        return self.plan.final_seconds if self.plan is not None else self.final_estimate(trials)

    # -- after the search ---------------------------------------------------------------
    def final_epochs(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, elapsed: float,
                     most: int) -> tuple[int, float]:
        """Epochs of final training for ``arch`` that fit the time left (at least 1, at most ``most``),
        and the seconds left for it."""
        assert self.cost is not None and self.plan is not None and self.workload is not None
        left = self.plan.total * (1 - MARGIN) - elapsed
        task = self.evaluator.task(fidelity)
        with torch.random.fork_rng():
            model = space.build(arch, task)
        per_epoch, fixed = self._final_parts(profile_network(model, tuple(task.input_shape)))
        return max(1, min(most, int((left - fixed) // max(per_epoch, 1e-12)))), left


def _oneshot() -> tuple[str, ...]:
    from archsearch.oneshot.base import ONESHOT

    return tuple(ONESHOT.names())
