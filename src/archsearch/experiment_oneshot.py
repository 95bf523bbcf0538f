"""One-shot search inside an experiment: supernet epochs (resumed from their checkpoint), then the
derived architecture evaluated as the search's one trial. A part of :class:`Experiment`."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Optional

from archsearch.config import Config
from archsearch.core import EvalResult, Trial
from archsearch.errors import ConfigError, SearchAborted
from archsearch.estimation.base import Evaluator, LimitsMemory, TrainsOnSplits
from archsearch.estimation.loop import subset_size
from archsearch.execution.base import Executor
from archsearch.oneshot.base import OneShotMethod
from archsearch.progress import Progress
from archsearch.spaces.base import SearchSpace
from archsearch.storage.journal import Journal


class OneShotRun:
    """The experiment's one-shot part; :class:`~archsearch.experiment.Experiment` provides the
    attributes and trial methods below."""

    config: Config
    space: SearchSpace
    evaluator: Evaluator
    executor: Executor
    oneshot: Optional[OneShotMethod]
    out_dir: str
    quiet: bool
    journal: Journal

    if TYPE_CHECKING:  # provided by Experiment
        def trials(self, with_curves: bool = False) -> list[Trial]: ...

        def best_trial(self) -> Optional[Trial]: ...

        def _submit(self, executor: Executor, trial: Trial) -> None: ...

        def _finish(self, trial: Trial, result: EvalResult) -> Trial: ...

    def check_memory(self) -> None:
        """Before anything is written: a given ``evaluator.max_memory`` must hold some architecture of
        the space (ask/tell searches), and a one-shot supernet must fit under the limit (by default 80%
        of the memory free now); ConfigError (exit 2) otherwise, saying what would fit."""
        from archsearch.estimation.language import is_language_model
        from archsearch.estimation.memory import SAFE_SHARE, format_bytes, memory_limit
        from archsearch.oneshot.memory import check_supernet_memory

        cfg, evaluator, method = self.config, self.evaluator, self.oneshot
        if method is None:
            if isinstance(evaluator, LimitsMemory):
                evaluator.check_memory_budget(self.space, cfg.fidelity, seed=cfg.seed)
            return
        assert isinstance(evaluator, TrainsOnSplits)  # checked when the experiment was built
        task = evaluator.task(cfg.fidelity)
        if is_language_model(task):  # refused when the search starts, with its own message
            return
        given = evaluator.max_memory() if isinstance(evaluator, LimitsMemory) else None
        limit = memory_limit(given, method.device)
        text = (f"evaluator.max_memory={given}" if given is not None else
                f"the default limit {format_bytes(limit)} ({SAFE_SHARE:.0%} of the memory free now; "
                "evaluator.max_memory sets it)")
        n_train = subset_size(len(evaluator.splits().train), cfg.fidelity)
        check_supernet_memory(method, self.space.scaled(cfg.fidelity.width, cfg.fidelity.depth), task, n_train,
                              limit, text)

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
