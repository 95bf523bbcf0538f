"""The experiment: config -> strategy.ask -> executor -> evaluator -> journal -> strategy.tell -> report.

An experiment lives in a directory: ``journal.sqlite`` (the truth), ``config.yaml`` (the
resolved config, for people), and after the search ``best.json`` and ``best_model.pt``.
With weight inheritance (``evaluator.inherit``) ``weights/<arch_id>.pt`` holds each completed
trial's trained state dict, from which its children start (files, so resume finds them again).
Resuming rebuilds everything from the journal: the config stored in it, the strategy by
replaying its ask/tell events, and the trials that were in flight, which run again.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from archsearch.config import Config, apply_override
from archsearch.core import EvalResult, Fidelity, Proposal, Trial, TrialState, incumbent
from archsearch.data.base import Splits
from archsearch.deploy.checkpoint import load_checkpoint, make_checkpoint  # noqa: F401 - load_checkpoint re-exported
from archsearch.errors import ArchsearchError, ConfigError, JournalError, SearchAborted, SpaceExhausted
from archsearch.estimation.base import EVALUATORS, Evaluator, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits
from archsearch.execution.base import Executor, TrialCall, create_executor
from archsearch.oneshot.base import ONESHOT, OneShotMethod, create_oneshot
from archsearch.progress import Progress
from archsearch.spaces.base import SearchSpace, create_space
from archsearch.storage.journal import Journal
from archsearch.strategies.base import Strategy, create_strategy


RESUMABLE_KEYS = ("budget.", "executor.")


def trial_seed(seed: int, number: int) -> int:
    """A per-trial seed: the same trial gets the same seed when it is run again.

    Drawn through SeedSequence, so seeds of neighbouring trials (and the sub-seeds an
    evaluator derives from them) are unrelated. ``number`` -1 is the final training.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, number + 1]).generate_state(1)[0] % (2**31 - 1))


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


class Experiment:
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
        if data is not None:  # the config names the data the search really uses, not the default digits
            config = Config.from_dict({**config.to_dict(), "dataset": {"name": data.name}})
        experiment = cls(config, out_dir, None, data, quiet)
        experiment.evaluator.task(config.fidelity)  # loads and checks the data before touching the disk
        info = experiment.evaluator.data_info()
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise ArchsearchError(f"cannot create the output directory {out_dir}: {exc.strerror or exc}") from None
        journal = Journal(path, create=True, meta={"config": config.to_dict(), "created_at": time.time(),
                                                   "data": info}, lock=True)
        experiment._journal = journal
        experiment.write_config()
        return experiment

    def write_config(self) -> None:
        """``config.yaml``: the resolved config, for people (the journal keeps what was given)."""
        info = self.journal.get_meta("data") or {}
        note = ""
        if info.get("in_memory"):
            note = (f"dataset: passed in memory from Python ({info.get('name')}, {info.get('train')} train / "
                    f"{info.get('valid')} valid / {info.get('test')} test, input {info.get('input_shape')})")
        _atomic(os.path.join(self.out_dir, "config.yaml"),
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
        progress = Progress(cfg.budget.trials, complete, quiet=self.quiet, extra=self.final_estimate(trials))
        rerun = self._replay(trials, progress) if trials else []
        if trials:
            progress.message(f"resuming {self.out_dir}: {complete} complete, {len(rerun)} to run again")
        assert self.strategy is not None
        best = self.best_trial()
        best_reward = best.reward if best else None
        elapsed0 = float(self.journal.get_meta("elapsed", 0.0))
        start = time.monotonic()
        in_flight: dict[int, Trial] = {}
        exhausted = False
        own_executor = executor is None
        if executor is None:
            executor = self.executor
        try:
            while True:
                if complete >= cfg.budget.trials and not in_flight:
                    break  # the budget is met: finish even if the last wait also hit max_failures
                failed = self.journal.count(TrialState.FAILED)
                if failed >= cfg.budget.max_failures:
                    last = next((t.error for t in reversed(self.trials()) if t.state is TrialState.FAILED), "")
                    first_line = (last or "").strip().splitlines()[0] if (last or "").strip() else "(no message)"
                    raise SearchAborted(f"search stopped: {failed} trials failed (budget.max_failures="
                                        f"{cfg.budget.max_failures}); last error: {first_line}")
                time_up = cfg.budget.time is not None and elapsed0 + time.monotonic() - start >= cfg.budget.time
                while len(in_flight) < executor.workers and complete + len(in_flight) < cfg.budget.trials \
                        and not time_up and not exhausted:
                    try:
                        trial = rerun.pop(0) if rerun else self._ask()
                    except SpaceExhausted as exc:  # nothing left to propose: finish what runs, then stop
                        progress.message(str(exc))
                        exhausted = True
                        break
                    self._submit(executor, trial)
                    in_flight[trial.number] = trial
                if not in_flight:
                    break
                for number, result in executor.wait(timeout=1.0):
                    trial = self._finish(in_flight.pop(number), result)
                    if trial.state is TrialState.COMPLETE:
                        complete += 1
                        if best_reward is None or (trial.reward is not None and trial.reward > best_reward):
                            best_reward = trial.reward
                        trials.append(trial)
                        progress.extra = self.final_estimate(trials)
                    progress.trial(trial, best_reward)
                    report.update()
                # saved every tick, so a kill loses at most a second of the time budget
                self.journal.set_meta("elapsed", elapsed0 + time.monotonic() - start)
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
        _atomic(self.weights_path(trial.arch.id), lambda path: torch.save(weights, path))

    def _finish(self, trial: Trial, result: EvalResult) -> Trial:
        weights, result.weights = result.weights, None  # never kept in memory or the journal
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

    # -- one-shot search -------------------------------------------------------------
    def _run_oneshot(self, executor: Optional[Executor], report: Any) -> None:
        """Supernet epochs (resumed from the checkpoint), then the derived architecture as the
        search's one trial, evaluated like any other (final training follows in :meth:`run`)."""
        if not self.trials():
            arch = self._search_oneshot(report)
            self.journal.create_trial(self.space.validate(arch), self.config.fidelity, None)
        pending = [t for t in self.trials() if not t.state.finished]
        own_executor = executor is None
        executor = executor or self.executor
        try:
            for trial in pending:
                self._submit(executor, trial)
                results: list[tuple[int, EvalResult]] = []
                while not results:
                    results = list(executor.wait(timeout=1.0))
                done = self._finish(trial, results[0][1])
                if not self.quiet:
                    what = f"reward {done.reward:.4f}" if done.reward is not None else f"failed: {done.error}"
                    print(f"derived architecture (trial {done.number}) {what}: {done.arch}", file=sys.stderr,
                          flush=True)
                report.update(force=True)
        finally:
            if own_executor:
                executor.close()
        if self.best_trial() is None:
            raise SearchAborted("the derived architecture's evaluation failed: "
                                f"{next((t.error for t in self.trials() if t.error), '')}")

    def _search_oneshot(self, report: Any) -> Any:
        from archsearch.estimation.language import is_language_model
        from archsearch.oneshot.search import OneShotSearch, search_fidelity

        assert self.oneshot is not None
        cfg, method = self.config, self.oneshot
        assert isinstance(self.evaluator, TrainsOnSplits)  # checked when the experiment was built
        splits = self.evaluator.splits()
        task = self.evaluator.task(cfg.fidelity)
        if is_language_model(task):
            raise ConfigError(f"strategy {method.name!r} is one-shot; supernets are built for image "
                              "classification, and this dataset is a language-model task")
        train, valid = search_fidelity(splits.train, splits.valid, cfg.fidelity, cfg.seed)
        elapsed0 = float(self.journal.get_meta("elapsed", 0.0))
        time_left = None if cfg.budget.time is None else max(0.0, cfg.budget.time - elapsed0)
        space = self.space.scaled(cfg.fidelity.width, cfg.fidelity.depth)  # the supernet at the search fidelity
        runner = OneShotSearch(method, space, task, train, valid, cfg.seed, self.journal, self.out_dir, time_left)
        resumed = runner.load()
        progress = Progress(method.epochs, runner.epoch, quiet=self.quiet, label=method.name)
        if resumed:
            progress.message(f"resuming {self.out_dir}: {runner.epoch} of {method.epochs} one-shot epochs done")
        start = time.monotonic()

        def on_epoch(record: dict[str, Any]) -> None:
            self.journal.set_meta("elapsed", elapsed0 + time.monotonic() - start)
            progress.epoch(record)
            report.update()

        try:
            arch = runner.run(on_epoch)
        finally:
            progress.close()
        if runner.stopped:
            self.journal.set_meta("oneshot_stopped", runner.stopped)
            if not self.quiet:
                print(runner.stopped, file=sys.stderr, flush=True)
        return arch

    # -- after the search ----------------------------------------------------------
    def final_estimate(self, trials: Sequence[Trial]) -> float:
        """Seconds the final training will take, estimated from the complete trials: their median cost
        per unit of training effort (epochs x data fraction x width x depth) times the final
        training's effort (final.epochs on all the training data, plus the valid split when it
        trains on it). 0 when there is no final training or nothing measured yet. The final space
        may be larger than the searched one ("search small, train big"), which this does not know."""
        fcfg = self.config.final
        if not (fcfg.enabled and self.evaluator.trains_models):
            return 0.0
        rates = sorted(t.cost / max(t.fidelity.epochs * t.fidelity.data_fraction * t.fidelity.width
                                    * t.fidelity.depth, 1e-9)
                       for t in trials if t.state is TrialState.COMPLETE and t.cost > 0)
        if not rates:
            return 0.0
        info = self.journal.get_meta("data") or {}
        share = 1.0
        if fcfg.train_on_valid and info.get("train"):
            share = (info["train"] + info.get("valid", 0)) / info["train"]
        return rates[len(rates) // 2] * fcfg.epochs * share

    def finalize(self) -> Optional[dict[str, Any]]:
        """Final training of the best architecture; writes best.json and best_model.pt once."""
        best = self.best_trial()
        if best is None:
            raise SearchAborted("search finished without a single complete trial; nothing to train")
        done = self.journal.get_meta("final")
        if done is not None and done.get("trial") == best.number:
            return done
        record: dict[str, Any] = {"trial": best.number, "arch": str(best.arch), "arch_json": best.arch.to_dict(),
                                  "search_metrics": best.metrics, "metrics": dict(best.metrics)}
        fcfg = self.config.final
        if fcfg.enabled and self.evaluator.trains_models:
            if not self.quiet:
                print(f"final training of trial {best.number} for {fcfg.epochs} epochs: {best.arch}",
                      file=sys.stderr, flush=True)
            fidelity = Fidelity(epochs=fcfg.epochs, resolution=self.config.fidelity.resolution)
            final_space = self.space.final_space()  # "search small, train big"
            progress = Progress(fcfg.epochs, 0, quiet=self.quiet, label="final")
            try:
                final = self.evaluator.final(final_space, best.arch, fidelity, trial_seed(self.config.seed, -1),
                                             train_on_valid=fcfg.train_on_valid, on_epoch=progress.final_epoch)
            finally:
                progress.close()
            record["metrics"] = {**best.metrics, **final.result.metrics}
            record["final_metrics"] = final.result.metrics
            checkpoint = make_checkpoint(
                space_name=final_space.name, space_options=_jsonable(final_space.options()), arch=best.arch,
                task=self.evaluator.task(fidelity), model=final.model, metrics=final.result.metrics,
                config=self.config.to_dict(), preprocess=final.preprocess, class_names=final.class_names,
                data=final.data, search=self._search_record(best))
            _atomic(os.path.join(self.out_dir, "best_model.pt"), lambda path: torch.save(checkpoint, path))
        best_json = {"arch": record["arch"], "metrics": record["metrics"], "trial": best.number,
                     "arch_json": record["arch_json"]}
        _atomic(os.path.join(self.out_dir, "best.json"),
                lambda path: open(path, "w", encoding="utf-8").write(json.dumps(best_json, indent=2)))
        self.journal.set_meta("final", record)
        return record

    def _search_record(self, best: Trial) -> dict[str, Any]:
        """How the model was found, for its checkpoint and model card."""
        cfg = self.config
        return {"strategy": cfg.strategy["name"], "evaluator": cfg.evaluator["name"], "seed": cfg.seed,
                "budget_trials": cfg.budget.trials, "budget_time": cfg.budget.time,
                "complete": self.journal.count(TrialState.COMPLETE), "failed": self.journal.count(TrialState.FAILED),
                "elapsed": float(self.journal.get_meta("elapsed", 0.0)), "best_trial": best.number,
                "search_fidelity": cfg.fidelity.to_dict(), "final_epochs": cfg.final.epochs,
                "search_metrics": dict(best.metrics)}

    def close(self) -> None:
        self.journal.close()


class _NoReport:
    """``report: false``: no page is written."""

    def update(self, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def _atomic(path: str, write: Any) -> None:
    """Write through a temporary file and rename, so a kill never leaves half a file."""
    tmp = f"{path}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


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
