"""The experiment: config -> strategy.ask -> executor -> evaluator -> journal -> strategy.tell -> report.

An experiment lives in a directory: ``journal.sqlite`` (the truth), ``config.yaml`` (the
resolved config, for people), and after the search ``best.json`` and ``best_model.pt``.
With weight inheritance (``evaluator.inherit``) ``weights/<arch_id>.pt`` holds each completed
trial's trained state dict, from which its children start (files, so resume finds them again).
Resuming rebuilds everything from the journal: the config stored in it, the strategy by
replaying its ask/tell events, and the trials that were in flight, which run again.
The one-shot path and the final training are parts of their own (``experiment_oneshot.py``,
``experiment_final.py``) that :class:`Experiment` mixes in.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from archsearch.config import Config, apply_override
from archsearch.core import EvalResult, Proposal, Trial, TrialState, incumbent, trial_seed
from archsearch.data.base import Splits
from archsearch.deploy.checkpoint import load_checkpoint, make_checkpoint  # noqa: F401 - load_checkpoint re-exported
from archsearch.errors import ArchsearchError, ConfigError, JournalError, SearchAborted, SpaceExhausted
from archsearch.estimation.base import EVALUATORS, Evaluator, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits
from archsearch.execution.base import Executor, TrialCall, create_executor
from archsearch.experiment_final import FinalTraining, atomic_write
from archsearch.experiment_oneshot import OneShotRun
from archsearch.experiment_plan import Expected, TimePlanning
from archsearch.oneshot.base import ONESHOT, OneShotMethod, create_oneshot
from archsearch.progress import Progress
from archsearch.spaces.base import SearchSpace, create_space
from archsearch.storage.journal import Journal
from archsearch.strategies.base import Strategy, create_strategy


RESUMABLE_KEYS = ("budget.", "executor.")
MAX_REPEATS = 50  # cached answers in a row that end a search (a converged strategy)
MAX_SKIPS = 5  # proposals in a row too long for the time left that end a search


@dataclass
class Summary:
    """What a finished search returns: ``best`` is the best trial (``best.arch``, ``best.metrics``,
    ``best.reward``), ``final`` the final training's record (``final["metrics"]["test_acc"]``; None
    without final training), ``model_path`` the found model's ``best_model.pt`` (None when no model
    was trained; load it with :func:`archsearch.load_model`)."""

    out_dir: str
    complete: int
    failed: int
    best: Optional[Trial]
    final: Optional[dict[str, Any]]

    @property
    def model_path(self) -> Optional[str]:
        path = os.path.join(self.out_dir, "best_model.pt")
        return path if os.path.isfile(path) else None


class Experiment(OneShotRun, FinalTraining, TimePlanning):
    clock: Callable[[], float] = staticmethod(time.monotonic)  # the budget's clock (tests inject one)

    def __init__(self, config: Config, out_dir: str, journal: Optional[Journal] = None,
                 data: Optional[Splits] = None, quiet: bool = False) -> None:
        """Build every part from ``config`` (so bad options fail before anything is written)."""
        self.config, self.out_dir, self.quiet = config, out_dir, quiet
        self._journal = journal
        self.space: SearchSpace = create_space(config.space["name"], **config.options("space"))
        data_spec: Any = data if data is not None else dict(config.dataset)
        self.evaluator: Evaluator = EVALUATORS.create(
            config.evaluator["name"], data_spec, config.seed, **config.options("evaluator"))
        # a one-shot method (darts, gdas, enas, spos) replaces the ask/tell strategy
        self.oneshot: Optional[OneShotMethod] = None
        self.strategy: Optional[Strategy] = None
        if config.strategy["name"] in ONESHOT:
            self.oneshot = create_oneshot(config.strategy["name"], self.space, config.seed,
                                          **config.options("strategy"))
            if not isinstance(self.evaluator, TrainsOnSplits):
                raise ConfigError(f"strategy {config.strategy['name']!r} is one-shot: it trains a supernet on the "
                                  f"dataset, which evaluator {config.evaluator['name']!r} does not load "
                                  "(valid: evaluator training)")
        else:
            self.strategy = create_strategy(config.strategy["name"], self.space, config.seed,
                                            **config.options("strategy"))
        self.space.scaled(config.fidelity.width, config.fidelity.depth)  # a space that cannot scale says so now
        # executors start workers lazily, so building one here only checks its options
        self.executor: Executor = create_executor(config.executor["name"], **config.options("executor"))

    # -- construction ------------------------------------------------------------
    @classmethod
    def create(cls, config: Config, out_dir: str, data: Optional[Splits] = None, quiet: bool = False) -> "Experiment":
        path = os.path.join(out_dir, Journal.FILENAME)
        if os.path.exists(path):
            raise ArchsearchError(f"{out_dir} already holds a search: resume it with 'archsearch resume {out_dir}' "
                                  "or choose another --out")
        job_start = cls.clock()
        if data is not None:  # the config names the data the search really uses, not the default digits
            given = config.strategy_given
            config = Config.from_dict({**config.to_dict(), "dataset": {"name": data.name}})
            config.strategy_given = given
        experiment = cls(config, out_dir, None, data, quiet)
        experiment.evaluator.task(config.fidelity)  # loads and checks the data before touching the disk
        info = experiment.evaluator.data_info()
        plan = None
        if experiment.plans_time():  # measures this machine, may refuse the budget: still nothing written
            plan = experiment.measure_and_plan(job_start, experiment.executor.workers)
            config = experiment.planned_config(plan)
            experiment.use_config(config)
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise ArchsearchError(f"cannot create the output directory {out_dir}: {exc.strerror or exc}") from None
        journal = Journal(path, create=True, meta={"config": config.to_dict(), "created_at": time.time(),
                                                   "data": info}, lock=True)
        experiment._journal = journal
        if plan is not None:
            journal.set_meta("plan", plan.to_dict())
            journal.set_meta("elapsed", cls.clock() - job_start)  # the measuring counts against the budget
            if not quiet:
                print(plan.summary(), file=sys.stderr, flush=True)
        experiment.write_config()
        return experiment

    def use_config(self, config: Config) -> None:
        """Run with ``config`` (the planned one: its fidelity and maybe its strategy differ)."""
        self.config = config
        if self.oneshot is None:
            self.strategy = create_strategy(config.strategy["name"], self.space, config.seed,
                                            **config.options("strategy"))

    def write_config(self) -> None:
        """``config.yaml``: the resolved config, for people (the journal keeps what was given)."""
        info = self.journal.get_meta("data") or {}
        note = ""
        if info.get("in_memory"):
            note = (f"dataset: passed in memory from Python ({info.get('name')}, {info.get('train')} train / "
                    f"{info.get('valid')} valid / {info.get('test')} test, input {info.get('input_shape')})")
        atomic_write(os.path.join(self.out_dir, "config.yaml"),
                lambda p: open(p, "w", encoding="utf-8").write(self.config.to_resolved_yaml(note)))

    @classmethod
    def open(cls, out_dir: str, data: Optional[Splits] = None, quiet: bool = False,
             budget: Optional[int] = None, overrides: Sequence[str] = ()) -> "Experiment":
        """Reopen a search directory (to resume or to report).

        ``overrides`` (``KEY=VALUE``) may change how the search runs (``budget.*``, ``executor.*``)
        but not what it searches: the journal's replay depends on the rest.
        """
        if not os.path.isdir(out_dir):
            raise JournalError(f"no search directory at {out_dir}")
        journal = Journal(os.path.join(out_dir, Journal.FILENAME), lock=True)
        stored = journal.get_meta("config")
        if stored is None:
            journal.close()
            raise JournalError(f"{out_dir}/{Journal.FILENAME} holds no config; it was not written by archsearch")
        try:
            return cls._reopen(journal, stored, out_dir, data, quiet, budget, overrides)
        except BaseException:
            journal.close()
            raise

    @classmethod
    def _reopen(cls, journal: Journal, stored: dict[str, Any], out_dir: str, data: Optional[Splits], quiet: bool,
                budget: Optional[int], overrides: Sequence[str]) -> "Experiment":
        for assignment in overrides:
            key = assignment.split("=", 1)[0].strip()
            if not key.startswith(RESUMABLE_KEYS):
                raise ConfigError(f"resume can change only {', '.join(k + '*' for k in RESUMABLE_KEYS)} "
                                  f"(got {key!r}); the rest defines the search and is fixed by the journal")
            apply_override(stored, assignment)
        if budget is not None:
            stored.setdefault("budget", {})["trials"] = budget
        config = Config.from_dict(stored)
        experiment = cls(config, out_dir, journal, data, quiet)  # every part checked before saving changes
        experiment.restore_plan()
        if budget is not None or overrides:
            journal.set_meta("config", config.to_dict())
            experiment.write_config()
        return experiment

    @property
    def journal(self) -> Journal:
        assert self._journal is not None, "experiment has no journal yet"
        return self._journal

    # -- the loop ----------------------------------------------------------------
    def trials(self, with_curves: bool = False) -> list[Trial]:
        return self.journal.trials(self.space.from_dict, with_curves)

    def best_trial(self) -> Optional[Trial]:
        done = {t.number: t for t in self.trials() if t.state is TrialState.COMPLETE and t.reward is not None}
        number = incumbent([(t.number, t.reward, t.fidelity.to_dict(), t.metrics.get("params"))
                            for t in done.values()])
        return None if number is None else done[number]

    def _replay(self, trials: list[Trial], progress: Progress) -> list[Trial]:
        """Rebuild the strategy's state from the journal; return trials to run again."""
        events = sorted([(t.ask_seq, 0, t) for t in trials] +
                        [(t.tell_seq, 1, t) for t in trials if t.tell_seq is not None], key=lambda e: e[0])
        diverged = 0
        for _, kind, trial in events:
            if kind == 0:
                proposal = self.strategy.ask()
                trial.ask_id = proposal.ask_id  # asks replay in order, so ids come back as first given
                if proposal.arch != trial.arch:
                    diverged += 1
            else:
                self.strategy.tell(trial)
        if diverged:
            progress.message(f"warning: replaying the strategy gave {diverged} architecture(s) different from "
                             "the journal (code or options changed?); the journal's trials are kept")
        return [t for t in trials if not t.state.finished]

    def live_report(self) -> Any:
        """The self-refreshing ``report.html`` (html_report.LiveReport), or a stand-in that does nothing
        when ``report: false``. A report never stops a search: its failures are one warning."""
        if not self.config.report:
            return _NoReport()
        from archsearch.html_report import LiveReport

        return LiveReport(self.out_dir, warn=self._warn)

    def _warn(self, text: str) -> None:
        if not self.quiet:
            print(f"warning: {text}", file=sys.stderr, flush=True)

    def run(self, executor: Optional[Executor] = None) -> Summary:
        """Run the search to its budget, then the final training; ``report.html`` follows along."""
        report = self.live_report()
        try:
            if self.oneshot is not None:
                self._run_oneshot(executor, report)
            else:
                self._run_trials(executor, report)
            final = self.finalize()
        finally:
            report.close()  # the last page, which stops reloading (also after a failure or Ctrl-C)
        return Summary(self.out_dir, self.journal.count(TrialState.COMPLETE), self.journal.count(TrialState.FAILED),
                       self.best_trial(), final)

    def _run_trials(self, executor: Optional[Executor], report: Any) -> None:
        """Ask, run and tell trials until the budget (trials, time, failures) is met."""
        cfg = self.config
        trials = self.trials()
        complete = sum(t.state is TrialState.COMPLETE for t in trials)
        limit = cfg.budget.trial_limit
        total = limit if limit is not None else (self.plan.trials if self.plan is not None else complete + 1)
        progress = Progress(max(total, complete), complete, quiet=self.quiet, extra=self._final_left(trials))
        rerun = self._replay(trials, progress) if trials else []
        if trials:
            progress.message(f"resuming {self.out_dir}: {complete} complete, {len(rerun)} to run again")
        assert self.strategy is not None
        self._cache = {}
        for t in trials:  # the first trained copy answers for every later one
            if t.state is TrialState.COMPLETE and not t.metrics.get("cached"):
                self._cache.setdefault(self._cache_key(t.arch, t.fidelity), t)
        best = self.best_trial()
        best_reward = best.reward if best else None
        elapsed0 = float(self.journal.get_meta("elapsed", 0.0))
        start = self.clock()
        in_flight: dict[int, Trial] = {}
        expected: dict[int, Expected] = {}
        stopped: Optional[str] = None  # why no new trial starts (space exhausted, time, repeats)
        own_executor = executor is None
        if executor is None:
            executor = self.executor

        def elapsed() -> float:
            return elapsed0 + self.clock() - start

        def record(trial: Trial) -> None:
            nonlocal complete, best_reward
            if trial.state is TrialState.COMPLETE:
                complete += 1
                if best_reward is None or (trial.reward is not None and trial.reward > best_reward):
                    best_reward = trial.reward
                trials.append(trial)
                progress.extra = self._final_left(trials)
            progress.trial(trial, best_reward)
            report.update()

        try:
            while True:
                if limit is not None and complete >= limit and not in_flight:
                    break  # the budget is met: finish even if the last wait also hit max_failures
                failed = self.journal.count_failures()
                if failed >= cfg.budget.max_failures:
                    last = next((t.error for t in reversed(self.trials()) if t.state is TrialState.FAILED
                                 and not (t.error or "").startswith(Journal.SKIPPED)), "")
                    first_line = (last or "").strip().splitlines()[0] if (last or "").strip() else "(no message)"
                    raise SearchAborted(f"search stopped: {failed} trials failed (budget.max_failures="
                                        f"{cfg.budget.max_failures}); last error: {first_line}")
                if stopped is None:
                    stopped = self._time_up(elapsed())
                while len(in_flight) < executor.workers and stopped is None \
                        and (limit is None or complete + len(in_flight) < limit):
                    try:
                        trial = rerun.pop(0) if rerun else self._ask()
                    except SpaceExhausted as exc:  # nothing left to propose: finish what runs, then stop
                        stopped = str(exc)
                        break
                    done, cost = self._answer_without_training(trial, elapsed())
                    if done is not None:
                        record(done)
                        stopped = self._stop_after_answer(done)
                        continue
                    if cost is not None:
                        expected[trial.number] = cost
                    self._submit(executor, trial)
                    in_flight[trial.number] = trial
                if not in_flight:
                    break
                for number, result in executor.wait(timeout=1.0):
                    cost = expected.pop(number, None)
                    trial = self._finish(in_flight.pop(number), result, cost)
                    if cost is not None and trial.state is TrialState.COMPLETE:
                        self.observe(cost, result.cost, complete + 1, elapsed())
                        if best_reward is None or (trial.reward is not None and trial.reward > best_reward):
                            self.reserve_final(cost.profile, trial.number)  # the final training it will need
                    if trial.state is TrialState.COMPLETE:
                        self._cache.setdefault(self._cache_key(trial.arch, trial.fidelity), trial)
                    record(trial)
                # saved every tick, so a kill loses at most a second of the time budget
                self.journal.set_meta("elapsed", elapsed())
            if stopped and not stopped.startswith("time"):
                progress.message(stopped)
        finally:
            progress.close()
            if own_executor:
                executor.close()

    def _final_left(self, trials: list[Trial]) -> float:
        """Seconds of final training still to come: the plan's share, else estimated from the trials."""
        return self.plan.final_seconds if self.plan is not None else self.final_estimate(trials)

    # -- what is answered without training ------------------------------------------
    _cache: dict[tuple[str, str], Trial]
    _repeats = 0  # cached answers in a row
    _skips = 0  # time skips in a row

    def _cache_key(self, arch: Any, fidelity: Any) -> tuple[str, str]:
        """Identical networks (one canonical id) at one fidelity give one evaluation."""
        return arch.id, json.dumps(fidelity.to_dict(), sort_keys=True)

    def _time_up(self, elapsed: float) -> Optional[str]:
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
        reason = self.skip_reason(cost, elapsed)
        if reason is None:
            return None, cost
        result = EvalResult(TrialState.FAILED, {**cost.metrics(), "skipped": 1.0}, 0.0, Journal.SKIPPED + reason)
        return self._finish(trial, result), None

    def _stop_after_answer(self, trial: Trial) -> Optional[str]:
        """Stop proposing when the strategy keeps repeating evaluated networks or nothing fits the time."""
        cached = trial.metrics.get("cached") == 1.0
        skipped_time = trial.state is TrialState.FAILED and "the search has" in (trial.error or "")
        self._repeats = self._repeats + 1 if cached else 0
        self._skips = self._skips + 1 if skipped_time else 0
        if self._repeats >= MAX_REPEATS:
            return (f"the strategy proposed {MAX_REPEATS} already evaluated networks in a row: the search stops "
                    "(it has converged, or the space is too small for the budget)")
        if self._skips >= MAX_SKIPS:
            return f"time: {MAX_SKIPS} proposals in a row cannot finish in the search time left"
        return None

    def _ask(self) -> Trial:
        assert self.strategy is not None
        proposal: Proposal = self.strategy.ask()
        arch = self.space.validate(proposal.arch)
        fidelity = self.config.fidelity.refined(proposal.fidelity)  # only what the strategy sets changes
        number = self.journal.create_trial(arch, fidelity, proposal.parent)
        return Trial(number, arch, TrialState.WAITING, fidelity, proposal.parent, ask_id=proposal.ask_id)

    def _submit(self, executor: Executor, trial: Trial) -> None:
        self.space.scaled(trial.fidelity.width, trial.fidelity.depth)  # a space that cannot scale refuses once, here
        self.journal.mark_running(trial.number)
        seed = trial_seed(self.config.seed, trial.number)
        init = self._parent_weights(trial) if self._inherits() else None
        executor.submit(trial.number, TrialCall(self.evaluator, self.space, trial.arch, trial.fidelity, seed, init,
                                                self._stop_reference(trial)))

    def _stop_reference(self, trial: Trial) -> Optional[list[list[float]]]:
        """Completed trials' curves for an evaluator that stops poor trials early (the median rule,
        ``evaluator.early_stop``), built from the journal at submit time; None when it does not."""
        if not (isinstance(self.evaluator, SupportsEarlyStop) and self.evaluator.stops_early()):
            return None
        return self.evaluator.stop_reference(self.trials(with_curves=True), trial.fidelity)

    # -- weight inheritance --------------------------------------------------------
    def _inherits(self) -> bool:
        return isinstance(self.evaluator, SupportsInheritance) and self.evaluator.inherits()

    def weights_path(self, arch_id: str) -> str:
        return os.path.join(self.out_dir, "weights", f"{arch_id}.pt")

    def _parent_weights(self, trial: Trial) -> Optional[dict[str, torch.Tensor]]:
        """The parent's saved state dict, or None (no parent, or its file is missing or unreadable:
        the child then trains from scratch and its ``inherited`` metric says 0)."""
        if trial.parent is None:
            return None
        path = self.weights_path(trial.parent)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - missing or damaged: train from scratch
            return None
        return state if isinstance(state, dict) else None

    def _save_weights(self, trial: Trial, weights: dict[str, torch.Tensor]) -> None:
        os.makedirs(os.path.join(self.out_dir, "weights"), exist_ok=True)
        atomic_write(self.weights_path(trial.arch.id), lambda path: torch.save(weights, path))

    def _finish(self, trial: Trial, result: EvalResult, expected: Optional[Expected] = None) -> Trial:
        weights, result.weights = result.weights, None  # never kept in memory or the journal
        if expected is not None:  # what the planner expected, beside what it cost
            result.metrics = {**result.metrics, "expected_seconds": expected.seconds}
        if weights is not None and result.status is TrialState.COMPLETE and self._inherits():
            self._save_weights(trial, weights)  # before the journal marks it done: resume finds it
        reward: Optional[float] = None
        if result.status is TrialState.COMPLETE:
            reward = result.metrics.get(self.evaluator.objective)
            if reward is None or not math.isfinite(reward):  # missing, NaN or infinite objective
                result = EvalResult.failed(f"evaluator returned no finite {self.evaluator.objective!r}",
                                           result.cost, result.curve)
                reward = None
        self.journal.finish_trial(trial.number, result.status, result.metrics, reward, result.error,
                                  result.cost, result.curve)
        trial.state, trial.metrics, trial.reward = result.status, result.metrics, reward
        trial.error, trial.cost, trial.curve = result.error, result.cost, result.curve
        if self.strategy is not None:
            self.strategy.tell(trial)
        return trial

    def close(self) -> None:
        self.journal.close()


class _NoReport:
    """``report: false``: no page is written."""

    def update(self, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def run_search(config: Config | dict[str, Any], out_dir: str, data: Optional[Splits] = None,
               quiet: bool = False) -> Summary:
    """Python API: run a new search to completion. ``config`` is a :class:`Config` or a plain dict of
    sections as in a YAML config (``{"space": {"name": "chain"}, "budget": {"trials": 10}}``)."""
    if not isinstance(config, Config):
        config = Config.from_dict(config)
    experiment = Experiment.create(config, out_dir, data, quiet)
    try:
        return experiment.run()
    finally:
        experiment.close()
