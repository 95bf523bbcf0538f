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

import math
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence


from archsearch.config import Config, apply_override
from archsearch.core import EvalResult, Proposal, Summary, Trial, TrialState, incumbent, trial_seed  # noqa: F401
from archsearch.data.base import Splits
from archsearch.deploy.checkpoint import load_checkpoint, make_checkpoint  # noqa: F401 - load_checkpoint re-exported
from archsearch.errors import ArchsearchError, ConfigError, JournalError, SearchAborted, SpaceExhausted
from archsearch.estimation.base import EVALUATORS, Evaluator, SupportsEarlyStop, TrainsOnSplits
from archsearch.execution.base import Executor, TrialCall, create_executor
from archsearch.experiment_final import FinalTraining, atomic_write
from archsearch.experiment_oneshot import OneShotRun
from archsearch.experiment_plan import Expected, TimePlanning
from archsearch.experiment_retries import Retries
from archsearch.experiment_shortcuts import Shortcuts
from archsearch.experiment_weights import WeightInheritance
from archsearch.oneshot.base import ONESHOT, OneShotMethod, create_oneshot
from archsearch.progress import Progress
from archsearch.spaces.base import SearchSpace, create_space
from archsearch.storage.journal import Journal
from archsearch.strategies.base import Strategy, create_strategy


RESUMABLE_KEYS = ("budget.", "executor.")


class Experiment(OneShotRun, FinalTraining, TimePlanning, Shortcuts, WeightInheritance, Retries):
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
        experiment.check_memory()  # a max_memory nothing fits, a supernet over the limit: said before writing
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
        progress = Progress(max(total, complete), complete, quiet=self.quiet, extra=self.final_left(trials))
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
        retries: dict[int, int] = {}  # trial number -> runs again after its worker died, in this session
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
                progress.extra = self.final_left(trials)
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
                    stopped = self.time_up(elapsed())
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
                    if self._retry(executor, in_flight[number], result, retries, progress):
                        continue
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
                                                self._stop_reference(trial), self.evaluator.time_limit()))

    def _stop_reference(self, trial: Trial) -> Optional[list[list[float]]]:
        """Completed trials' curves for an evaluator that stops poor trials early (the median rule,
        ``evaluator.early_stop``), built from the journal at submit time; None when it does not."""
        if not (isinstance(self.evaluator, SupportsEarlyStop) and self.evaluator.stops_early()):
            return None
        return self.evaluator.stop_reference(self.trials(with_curves=True), trial.fidelity)

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
