"""The evaluator conformance suite: an evaluator measures a sampled architecture, the same way for
the same seed, survives pickling (executors ship it to workers), and a broken network becomes a
failed trial with a reason, never an exception out of :func:`run_trial`. The evaluator makes its
own small instance (:meth:`Evaluator.for_testing`: its ``small_options``; a table evaluator
writes a table of the architectures the suite measures)."""

from __future__ import annotations

import hashlib
import math
import pickle
import tempfile
from typing import Any, ClassVar, Optional

import numpy as np
import torch

from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.estimation.base import EVALUATORS, Evaluator, count_params, run_trial
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.testing.settings import small_space


class SyntheticEvaluator(Evaluator):
    """A test double for executors and experiments: builds the network (so broken architectures
    fail as they would in training) and scores it by a hash of the architecture and seed, without
    data or training. Not registered: it measures nothing real."""

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        return Task((1, 8, 8), 10)

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int) -> EvalResult:
        model = space.build(arch, self.task(fidelity))
        digest = hashlib.sha256(f"{arch.id}:{seed}".encode()).digest()
        score = int.from_bytes(digest[:4], "big") / 2**32
        return EvalResult(TrialState.COMPLETE, {"valid_acc": score, "params": float(count_params(model))})


class _Unbuildable(SearchSpace):
    """Wraps a space; building any of its architectures fails like a broken network would."""

    def __init__(self, inner: SearchSpace) -> None:
        self.inner = inner
        self.arch_type = inner.arch_type

    def decisions(self):  # type: ignore[no-untyped-def]
        return self.inner.decisions()

    def encode(self, arch):  # type: ignore[no-untyped-def]
        return self.inner.encode(arch)

    def decode(self, indices):  # type: ignore[no-untyped-def]
        return self.inner.decode(indices)

    def build(self, arch: Architecture, task: Task) -> torch.nn.Module:
        raise RuntimeError("this network cannot be built")


class EvaluatorSuite:
    """Subclass and set ``evaluator_name`` (or generate one class per registered evaluator with
    :func:`archsearch.testing.suites`); ``space_name`` when it measures only one space's networks.
    The instance comes from the evaluator class's :meth:`~Evaluator.for_testing`; override
    :meth:`make` to build it otherwise."""

    names_attribute: ClassVar[str] = "evaluator_name"
    evaluator_name: ClassVar[str] = ""
    space_name: ClassVar[str] = "chain"
    data: ClassVar[dict[str, Any]] = {"name": "digits"}
    fidelity: ClassVar[Fidelity] = Fidelity(epochs=1, data_fraction=0.2)
    seeds: ClassVar[tuple[int, ...]] = (0, 2, 4)  # the architectures measured: sampled with these seeds

    def arch(self, space: SearchSpace, seed: int) -> Architecture:
        assert seed in self.seeds, "sample only the architectures make() was told about"
        return space.sample(np.random.default_rng(seed))

    def make(self, space: SearchSpace) -> Evaluator:
        archs = [self.arch(space, seed) for seed in self.seeds]
        workdir = tempfile.mkdtemp(prefix=f"archsearch-{self.evaluator_name}-")
        return EVALUATORS.get(self.evaluator_name).for_testing(dict(self.data), space, archs, workdir)

    def test_is_registered_and_declares_small_options(self) -> None:
        EVALUATORS.check_options(self.evaluator_name, dict(EVALUATORS.get(self.evaluator_name).small_options))

    def test_measures_an_architecture_the_same_way_for_a_seed(self) -> None:
        space = small_space(self.space_name)
        ev = self.make(space)
        assert isinstance(ev.task(self.fidelity), Task)
        arch = self.arch(space, 0)
        a = run_trial(ev, space, arch, self.fidelity, seed=1, threads=1)
        b = run_trial(ev, space, arch, self.fidelity, seed=1, threads=1)
        assert a.status is TrialState.COMPLETE, a.error
        value = a.metrics[ev.objective]
        assert math.isfinite(value) and value == b.metrics[ev.objective]

    def test_survives_pickling(self) -> None:
        space = small_space(self.space_name)
        ev = self.make(space)
        arch = self.arch(space, 2)
        shipped = pickle.loads(pickle.dumps(ev))
        a = run_trial(ev, space, arch, self.fidelity, seed=3, threads=1)
        b = run_trial(shipped, space, arch, self.fidelity, seed=3, threads=1)
        assert a.metrics[ev.objective] == b.metrics[ev.objective]

    def test_a_broken_network_is_a_failed_trial_with_its_reason(self) -> None:
        space = small_space(self.space_name)
        ev = self.make(space)
        broken = _Unbuildable(space)
        result = run_trial(ev, broken, self.arch(space, 4), self.fidelity, seed=0, threads=1)
        if ev.trains_models or result.status is TrialState.FAILED:
            assert result.status is TrialState.FAILED and "cannot be built" in (result.error or "")
