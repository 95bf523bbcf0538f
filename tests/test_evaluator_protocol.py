"""The evaluator protocol is all the experiment relies on: an evaluator written only to it (a subclass
of Evaluator with task(fidelity) and evaluate) runs a real search, and the experiment uses the optional
capabilities (inheritance, early stopping, training on splits) only where an evaluator declares them.
Every registered evaluator passes the shipped evaluator suite."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional, Sequence

import numpy as np
import pytest
import torch

from archsearch.config import Config
from archsearch.core import EvalResult, Fidelity, Task, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation.base import (
    EVALUATORS, Evaluator, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits, run_trial,
)
from archsearch.experiment import Experiment
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.testing import EvaluatorSuite, small_space, suites
from conftest import tiny_config

suites(EvaluatorSuite, EVALUATORS.names(), globals())


class ProtocolOnly(Evaluator):
    """Written to the protocol alone: no inheritance, no early stopping, no data."""

    trains_models = False

    def __init__(self, data: Any = None, data_seed: int = 0, **options: Any) -> None:
        super().__init__(data, data_seed, **options)
        self.fidelities: list[Optional[Fidelity]] = []
        self.calls: list[dict[str, Any]] = []

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        self.fidelities.append(fidelity)
        return Task((1, 8, 8), 10)

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int) -> EvalResult:
        space.build(arch, self.task(fidelity))
        self.calls.append({})
        return EvalResult(TrialState.COMPLETE, {"valid_acc": _score(arch, seed)})


def _score(arch: Architecture, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{arch.id}:{seed}".encode()).digest()[:4], "big") / 2**32


class Inheriting(ProtocolOnly, SupportsInheritance):
    on = False

    def inherits(self) -> bool:
        return self.on

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,  # type: ignore[override]
                 init: Optional[dict[str, torch.Tensor]] = None) -> EvalResult:
        self.calls.append({"init": init})
        weights = {"w": torch.tensor([float(len(self.calls))])} if self.on else None
        return EvalResult(TrialState.COMPLETE, {"valid_acc": _score(arch, seed)}, 0.0, None, [], weights)


class InheritingOn(Inheriting):
    on = True


class Stopping(ProtocolOnly, SupportsEarlyStop):
    on = False
    built = 0

    def stops_early(self) -> bool:
        return self.on

    def stop_reference(self, trials: Sequence[Trial], fidelity: Fidelity) -> Optional[list[list[float]]]:
        type(self).built += 1
        return [[t.reward or 0.0 for t in trials if t.state is TrialState.COMPLETE]]

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,  # type: ignore[override]
                 reference: Optional[Sequence[Sequence[float]]] = None) -> EvalResult:
        self.calls.append({"reference": reference})
        return EvalResult(TrialState.COMPLETE, {"valid_acc": _score(arch, seed)})


class StoppingOn(Stopping):
    on = True


@pytest.fixture
def search(monkeypatch, tmp_path):
    """Run a small evolution search (children have parents) with evaluator class ``cls``."""
    EVALUATORS.names()  # discovery first, so the test class is added to a loaded registry

    def run(cls: type, trials: int = 6) -> Experiment:
        monkeypatch.setattr(cls, "name", "protocol_test", raising=False)
        monkeypatch.setattr(cls, "section", "evaluator", raising=False)
        monkeypatch.setattr(cls, "kind", "evaluator", raising=False)
        monkeypatch.setitem(EVALUATORS._classes, "protocol_test", cls)
        config = tiny_config(evaluator={"name": "protocol_test"}, executor={"name": "inline"},
                             strategy={"name": "evolution", "population_size": 2, "sample_size": 2},
                             budget={"trials": trials})
        experiment = Experiment.create(config, str(tmp_path / cls.__name__), quiet=True)
        summary = experiment.run()
        assert summary.complete == trials and summary.failed == 0
        assert any(t.parent is not None for t in experiment.trials())  # children asked for their parents
        return experiment

    return run


def test_an_evaluator_written_to_the_protocol_runs_a_search(search):
    experiment = search(ProtocolOnly)
    evaluator = experiment.evaluator
    assert isinstance(evaluator, ProtocolOnly) and len(evaluator.calls) == 6
    assert experiment.config.fidelity in evaluator.fidelities  # task(fidelity) was called with one


def test_an_evaluator_without_inheritance_never_gets_weights_asked(search, monkeypatch):
    def refuse(*args: Any) -> None:
        raise AssertionError("weights asked of an evaluator that does not inherit")

    monkeypatch.setattr(Experiment, "_parent_weights", refuse)
    search(ProtocolOnly)
    experiment = search(Inheriting)  # the capability, switched off: still never asked
    assert all(call["init"] is None for call in experiment.evaluator.calls)
    assert not os.path.isdir(os.path.join(experiment.out_dir, "weights"))


def test_an_inheriting_evaluator_gets_its_parents_weights(search):
    experiment = search(InheritingOn)
    children = [t for t in experiment.trials() if t.parent is not None]
    assert children and any(call["init"] is not None and "w" in call["init"] for call in experiment.evaluator.calls)


def test_early_stopping_references_are_built_only_when_the_evaluator_stops_early(search):
    Stopping.built = 0
    experiment = search(Stopping)
    assert Stopping.built == 0 and all(call["reference"] is None for call in experiment.evaluator.calls)
    StoppingOn.built = 0
    experiment = search(StoppingOn)
    assert StoppingOn.built == 6 and all(call["reference"] is not None for call in experiment.evaluator.calls)


def test_run_trial_passes_capability_arguments_only_to_evaluators_that_declare_them():
    space = small_space("chain")
    arch = space.sample(np.random.default_rng(0))
    fid = Fidelity(epochs=1)
    plain = ProtocolOnly()
    result = run_trial(plain, space, arch, fid, seed=0, init={"w": torch.zeros(1)}, reference=[[0.5]])
    assert result.status is TrialState.COMPLETE, result.error  # evaluate(...) takes neither keyword
    inheriting = InheritingOn()
    run_trial(inheriting, space, arch, fid, seed=0, init={"w": torch.zeros(1)}, reference=[[0.5]])
    assert inheriting.calls[-1]["init"] is not None


def test_a_one_shot_search_needs_an_evaluator_that_trains_on_splits(monkeypatch):
    EVALUATORS.names()
    monkeypatch.setattr(ProtocolOnly, "name", "protocol_test", raising=False)
    monkeypatch.setitem(EVALUATORS._classes, "protocol_test", ProtocolOnly)
    assert not isinstance(ProtocolOnly(), TrainsOnSplits)
    config = Config.from_dict({"space": {"name": "darts"}, "strategy": {"name": "darts"},
                               "evaluator": {"name": "protocol_test"}})
    with pytest.raises(ConfigError, match="does not load"):
        Experiment(config, "unused")
