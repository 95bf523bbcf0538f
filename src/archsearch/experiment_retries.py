"""Runs again of trials the machinery failed (``budget.max_retries``). A part of
:class:`~archsearch.experiment.Experiment`: executors only report a ``crash``; the experiment alone
knows a trial's history, so it alone decides to run it again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.config import Config
from archsearch.core import RETRYABLE_REASONS, EvalResult, Trial
from archsearch.execution.base import Executor
from archsearch.progress import Progress


class Retries:
    """Provided by :class:`~archsearch.experiment.Experiment`: the attributes below."""

    config: Config

    if TYPE_CHECKING:
        def _submit(self, executor: Executor, trial: Trial) -> None: ...

    def _retry(self, executor: Executor, trial: Trial, result: EvalResult, retries: dict[int, int],
               progress: Progress) -> bool:
        """Run a trial again when the machinery failed it (its worker died, its Ray node was lost: reason
        ``crash``), up to ``budget.max_retries`` times; never for the network's own failures (NaN, out of
        memory, timeout), which would only fail again. ``retries`` counts this session's runs again per
        trial; the trial that finally completes or fails records its ``retries``."""
        done = retries.get(trial.number, 0)
        if result.reason not in RETRYABLE_REASONS or done >= self.config.budget.max_retries:
            if done:
                result.metrics = {**result.metrics, "retries": float(done)}
            return False
        retries[trial.number] = done + 1
        first = (result.error or "").strip().splitlines()[0]
        progress.message(f"trial {trial.number}: {first}; running it again "
                         f"(retry {done + 1} of {self.config.budget.max_retries})")
        self._submit(executor, trial)
        return True
