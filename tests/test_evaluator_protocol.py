"""The evaluator protocol is the contract: an evaluator written only to it runs a whole search, the
experiment asks for nothing it did not declare (capabilities are interfaces, not attribute
guesses), and every registered evaluator passes the shipped suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

import pytest
import torch

from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation.base import (
    EVALUATORS, Evaluator, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits, register_evaluator,
)
from archsearch.estimation.tabular import TabularEvaluator
from archsearch.experiment import Experiment
from archsearch.spaces import create_space
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.testing import EvaluatorSuite, suites
from archsearch.config import Config
from tests.conftest import TINY, tiny_config
from tests.test_tabular import OPS, write_table


@register_evaluator("protocol_only")
class ProtocolOnly(Evaluator):
    """Implements the abstract methods and nothing else; records what the experiment passed in."""

    calls: ClassVar[list[tuple[Optional[Fidelity], Any]]] = []
    trains_models = False

    def __init__(self, data: Any = None, data_seed: int = 0, **options: Any) -> None:
        self.configure(options)

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        ProtocolOnly.calls.append(("task", fidelity))
        return Task((1, 8, 8), 10)

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
                 init: Optional[dict[str, torch.Tensor]] = None) -> EvalResult:
        ProtocolOnly.calls.append(("evaluate", init))
        return EvalResult(TrialState.COMPLETE, {"valid_acc": (hash(arch.id) % 1000) / 1000})


def test_an_evaluator_written_only_to_the_protocol_runs_a_search(tmp_path):
    ProtocolOnly.calls.clear()
    cfg = tiny_config(evaluator={"name": "protocol_only"}, strategy={"name": "evolution", "population_size": 2,
                                                                      "sample_size": 2},
                      fidelity={"epochs": 1, "resolution": 6}, budget={"trials": 5})
    exp = Experiment.create(cfg, str(tmp_path / "run"), quiet=True)
    exp.run()
    trials = exp.trials()
    assert len(trials) == 5 and all(t.state is TrialState.COMPLETE for t in trials)
    tasks = [f for kind, f in ProtocolOnly.calls if kind == "task"]
    assert tasks and all(isinstance(f, Fidelity) and f.resolution == 6 for f in tasks)  # task(fidelity), as declared
    # no SupportsInheritance: children of evolution's parents are never handed weights
    assert [init for kind, init in ProtocolOnly.calls if kind == "evaluate"] == [None] * 5


def test_capabilities_are_declared_interfaces():
    train = EVALUATORS.get("train")
    assert issubclass(train, TrainsOnSplits) and issubclass(train, SupportsEarlyStop)
    assert issubclass(train, SupportsInheritance)
    assert issubclass(EVALUATORS.get("proxy"), TrainsOnSplits)
    assert not issubclass(ProtocolOnly, (TrainsOnSplits, SupportsEarlyStop, SupportsInheritance))


def test_one_shot_search_needs_an_evaluator_that_trains_on_splits(tmp_path):
    cfg = Config.from_dict({**TINY, "evaluator": {"name": "protocol_only"}, "strategy": {"name": "darts"},
                            "space": {"name": "nb201"}})
    with pytest.raises(ConfigError, match="one-shot"):
        Experiment.create(cfg, str(tmp_path / "run"), quiet=True)


suites(EvaluatorSuite, [n for n in EVALUATORS.names() if n not in ("tabular", "protocol_only")], globals())


class TestTabular(EvaluatorSuite):
    """The tabular evaluator reads a table of the space it measures: the suite writes one."""

    evaluator_name = "tabular"

    @pytest.fixture(autouse=True)
    def _table(self, tmp_path: Path) -> None:
        self.table = tmp_path / "table.csv"
        write_table(self.table)

    def make(self) -> Evaluator:
        return TabularEvaluator(table=str(self.table), reward="valid")

    def space(self) -> SearchSpace:
        return create_space("nb201", ops=OPS)
