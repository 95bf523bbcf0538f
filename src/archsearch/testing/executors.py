"""The executor conformance suite: an executor runs submitted trial calls and returns, keyed as
submitted, the results in-process evaluation gives; it closes cleanly, twice."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

import pytest

from archsearch.core import EvalResult, Fidelity, TrialState
from archsearch.execution.base import EXECUTORS, Executor, TrialCall
from archsearch.testing.evaluators import SyntheticEvaluator
from archsearch.testing.settings import small_space


def calls(n: int = 4) -> list[TrialCall]:
    """``n`` cheap, picklable calls (the synthetic evaluator: no data, no training)."""
    space = small_space("chain")
    ev = SyntheticEvaluator({"name": "digits"})
    return [TrialCall(ev, space, space.sample(np.random.default_rng(i)), Fidelity(epochs=1),
                      seed=i) for i in range(n)]


def drain(executor: Executor, timeout: float = 120) -> dict[int, EvalResult]:
    out: dict[int, EvalResult] = {}
    deadline = time.monotonic() + timeout
    while executor.running() and time.monotonic() < deadline:
        out.update(dict(executor.wait(timeout=1.0)))
    return out


class ExecutorSuite:
    """Subclass and set ``executor_name``. Executors that start workers (processes, Ray) take
    seconds to start: their suites are marked slow by their ``small_options`` owners' tests."""

    names_attribute: ClassVar[str] = "executor_name"
    executor_name: ClassVar[str] = ""

    def make(self) -> Executor:
        return EXECUTORS.create(self.executor_name, **EXECUTORS.get(self.executor_name).small_options)

    def test_is_registered_and_declares_small_options(self) -> None:
        EXECUTORS.check_options(self.executor_name, dict(EXECUTORS.get(self.executor_name).small_options))

    def test_returns_every_result_keyed_as_submitted(self) -> None:
        reference = {i: call(threads=1) for i, call in enumerate(calls())}
        with self.make() as ex:
            for i, call in enumerate(calls()):
                ex.submit(i, call)
            assert ex.running() == len(reference)
            results = drain(ex)
            assert ex.running() == 0
        assert sorted(results) == sorted(reference)
        for k, r in results.items():
            assert r.status is TrialState.COMPLETE, r.error
            assert r.metrics["valid_acc"] == pytest.approx(reference[k].metrics["valid_acc"])

    def test_close_is_safe_twice(self) -> None:
        ex = self.make()
        ex.close()
        ex.close()
