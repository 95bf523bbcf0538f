"""After the search: the final training of the best architecture (``best_model.pt``,
``best.json``) and the estimate of how long it will take. A part of :class:`Experiment`."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch

from archsearch.config import Config
from archsearch.core import Fidelity, Trial, TrialState, trial_seed
from archsearch.deploy.checkpoint import make_checkpoint
from archsearch.errors import SearchAborted
from archsearch.estimation.base import Evaluator, OverMemoryLimit, is_out_of_memory
from archsearch.progress import Progress
from archsearch.spaces.base import SearchSpace
from archsearch.storage.journal import Journal


class FinalTraining:
    """The experiment's final-training part; :class:`~archsearch.experiment.Experiment` provides
    the attributes below."""

    config: Config
    space: SearchSpace
    evaluator: Evaluator
    out_dir: str
    quiet: bool
    journal: Journal

    if TYPE_CHECKING:  # provided by Experiment
        from archsearch.plan import TimePlan

        plan: Optional[TimePlan]

        def best_trial(self) -> Optional[Trial]: ...

        def final_epochs(self, space: SearchSpace, arch: Any, fidelity: Fidelity, elapsed: float,
                         most: int) -> tuple[int, float]: ...

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
            final_space = self.space.final_space()  # "search small, train big"
            epochs, until = fcfg.epochs, None
            if self.plan is not None:  # the epochs that fit the time really left, for this network
                elapsed = float(self.journal.get_meta("elapsed", 0.0))
                epochs, left = self.final_epochs(final_space, best.arch, Fidelity(
                    epochs=1, resolution=self.config.fidelity.resolution), elapsed, fcfg.epochs)
                record["planned"] = {"epochs": epochs, "seconds_left": left}
                until = time.monotonic() + max(left, 0.0)  # a safety net: the job ends in its budget
                self.plan.final_epochs = epochs
                self.journal.set_meta("plan", self.plan.to_dict())
            if not self.quiet:
                print(f"final training of trial {best.number} for {epochs} epochs: {best.arch}",
                      file=sys.stderr, flush=True)
            fidelity = Fidelity(epochs=epochs, resolution=self.config.fidelity.resolution)
            progress = Progress(epochs, 0, quiet=self.quiet, label="final")
            try:
                final = self.evaluator.final(final_space, best.arch, fidelity, trial_seed(self.config.seed, -1),
                                             train_on_valid=fcfg.train_on_valid, on_epoch=progress.final_epoch,
                                             until=until)
            except Exception as exc:
                if not (isinstance(exc, OverMemoryLimit) or is_out_of_memory(exc)):
                    raise
                exc.__traceback__ = None  # let the network's tensors go before saying so
                gc.collect()
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SearchAborted(f"final training of trial {best.number} does not fit in memory: {text}; the "
                                    f"search's trials are kept in {self.out_dir} (a smaller evaluator.batch_size, "
                                    "a larger evaluator.max_memory or final.enabled=false in a new search)") from None
            finally:
                progress.close()
            record["metrics"] = {**best.metrics, **final.result.metrics}
            record["final_metrics"] = final.result.metrics
            checkpoint = make_checkpoint(
                space_name=final_space.name, space_options=_jsonable(final_space.options()), arch=best.arch,
                task=self.evaluator.task(fidelity), model=final.model, metrics=final.result.metrics,
                config=self.config.to_dict(), preprocess=final.preprocess, class_names=final.class_names,
                data=final.data, search=self._search_record(best))
            atomic_write(os.path.join(self.out_dir, "best_model.pt"), lambda path: torch.save(checkpoint, path))
        best_json = {"arch": record["arch"], "metrics": record["metrics"], "trial": best.number,
                     "arch_json": record["arch_json"]}
        atomic_write(os.path.join(self.out_dir, "best.json"),
                lambda path: open(path, "w", encoding="utf-8").write(json.dumps(best_json, indent=2)))
        self.journal.set_meta("final", record)
        return record

    def _search_record(self, best: Trial) -> dict[str, Any]:
        """How the model was found, for its checkpoint and model card."""
        cfg = self.config
        return {"strategy": cfg.strategy["name"], "evaluator": cfg.evaluator["name"], "seed": cfg.seed,
                "budget_trials": cfg.budget.trial_limit, "budget_time": cfg.budget.time,
                "complete": self.journal.count(TrialState.COMPLETE), "failed": self.journal.count(TrialState.FAILED),
                "elapsed": float(self.journal.get_meta("elapsed", 0.0)), "best_trial": best.number,
                "search_fidelity": cfg.fidelity.to_dict(),
                "final_epochs": self.plan.final_epochs if self.plan is not None else cfg.final.epochs,
                "search_metrics": dict(best.metrics)}


def atomic_write(path: str, write: Any) -> None:
    """Write through a temporary file and rename, so a kill never leaves half a file."""
    tmp = f"{path}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))
