"""A trial cannot take the machine down: a hung trial is stopped at its time limit, a killed worker
fails only its own trial, an out-of-memory trial fails and its worker goes on, and every trial
reports the memory and CPU time it used."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import weakref
from typing import Any, Optional

import numpy as np
import pytest
import torch

from archsearch.core import EvalResult, Fidelity, TrialState
from archsearch.estimation.base import describe_failure
from archsearch.estimation import TrainingEvaluator
from archsearch.execution import TrialCall, create_executor
from archsearch.spaces import create_space
from archsearch.testing.evaluators import SyntheticEvaluator
from archsearch.testing.settings import small_space
from archsearch.testing.executors import drain

MIB = 1024 * 1024
LINUX = sys.platform.startswith("linux")
_alive: list[Any] = []  # weak references to what in-process trials allocated


class ProbeEvaluator(SyntheticEvaluator):
    """A trial that allocates ``alloc_mb`` (written, so resident), sleeps ``sleep_s``, then scores the
    network as the synthetic evaluator does and reports its process id. ``pid_file`` gets the pid when
    the trial starts; ``fail`` raises MemoryError at the end with the allocation held in a reference
    cycle (only the garbage collector frees it). Top level: spawned workers import it."""

    def __init__(self, alloc_mb: int = 0, sleep_s: float = 0.0, pid_file: Optional[str] = None,
                 fail: bool = False) -> None:
        super().__init__({"name": "digits"})
        self.alloc_mb, self.sleep_s, self.pid_file, self.fail = alloc_mb, sleep_s, pid_file, fail

    def evaluate(self, space, arch, fidelity, seed) -> EvalResult:  # type: ignore[no-untyped-def]
        if self.pid_file:
            with open(self.pid_file + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(self.pid_file + ".tmp", self.pid_file)
        block = torch.ones(self.alloc_mb * MIB // 4) if self.alloc_mb else torch.zeros(1)
        time.sleep(self.sleep_s)
        if self.fail:
            holder: dict[str, Any] = {"block": block}
            holder["self"] = holder
            _alive.append(weakref.ref(block))
            del block
            raise MemoryError("simulated")
        result = super().evaluate(space, arch, fidelity, seed)
        result.metrics["pid"] = float(os.getpid())
        result.metrics["checksum"] = float(block[-1])
        return result


def call(timeout: Optional[float] = None, **probe: Any) -> TrialCall:
    space = small_space("chain")
    return TrialCall(ProbeEvaluator(**probe), space, space.sample(np.random.default_rng(0)), Fidelity(epochs=1),
                     seed=0, timeout=timeout)



def wait_for_pid(executor, path: str, results: dict[int, EvalResult], timeout: float = 60) -> int:  # type: ignore[no-untyped-def]
    """Drive ``executor`` (collecting into ``results``) until the trial writing ``path`` has started."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "the trial never started"
        results.update(dict(executor.wait(timeout=0.1)))
    return int(open(path).read())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- out of memory, resources: in process ------------------------------------------------------


def test_allocation_failures_are_oom_whatever_raised_them():
    torch_cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                             "memory: you tried to allocate 419430400 bytes. Error code 12 (Cannot allocate memory)")
    for exc in (torch_cpu, MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")):
        assert describe_failure(exc).startswith("oom: out of memory: ")
    assert describe_failure(RuntimeError("shape mismatch")) == "RuntimeError: shape mismatch"


def test_an_out_of_memory_trial_fails_with_oom_and_its_memory_is_freed():
    _alive.clear()
    r = call(alloc_mb=50, fail=True)()
    assert r.status is TrialState.FAILED and r.reason == "oom", r.error
    assert _alive and _alive[0]() is None  # the tensor, held in a cycle by the failed frame, is gone
    assert r.metrics["cpu_s"] > 0  # a failed trial reports what it used too


def test_every_trial_reports_its_cpu_time_and_peak_memory():
    small, big = call()(threads=1), call(alloc_mb=200)(threads=1)
    gc.collect()
    again = call()(threads=1)  # after the big one: the peak is the trial's own, not the process's
    for r in (small, big, again):
        assert r.status is TrialState.COMPLETE, r.error
        assert r.metrics["cpu_s"] > 0
    if not LINUX:
        return
    assert big.metrics["peak_rss_mb"] >= small.metrics["peak_rss_mb"] + 190
    assert big.metrics["trial_rss_mb"] >= 190 > small.metrics["trial_rss_mb"]  # what each trial added
    assert again.metrics["peak_rss_mb"] < big.metrics["peak_rss_mb"] - 150


# -- hard time limits ----------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no SIGALRM")
@pytest.mark.timeout(300, method="thread")  # pytest-timeout's own SIGALRM would leave the limit cooperative
def test_inline_executor_interrupts_a_trial_past_its_time_limit():
    start = time.monotonic()
    with create_executor("inline", threads=1) as ex:
        ex.submit(0, call(timeout=0.5, sleep_s=60))
        ex.submit(1, call())
        results = drain(ex)
    assert time.monotonic() - start < 20  # stopped at limit + grace, not after the 60 s sleep
    assert results[0].reason == "timeout", results[0].error
    assert results[1].status is TrialState.COMPLETE, results[1].error
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # the handler is put back


@pytest.mark.slow
def test_process_executor_kills_a_trial_past_its_time_limit_and_only_it(tmp_path):
    hung = str(tmp_path / "hung.pid")
    with create_executor("process", workers=2, threads=1) as ex:
        start = time.monotonic()
        ex.submit(0, call(timeout=1, sleep_s=60, pid_file=hung))
        ex.submit(1, call(sleep_s=4))  # runs on the other worker while the first is killed
        results = drain(ex)
        assert time.monotonic() - start < 30  # killed at limit + grace, not after the 60 s sleep
        assert results[0].reason == "timeout" and "killed" in results[0].error, results[0].error
        assert results[0].cost >= 1
        killed = int(open(hung).read())
        assert gone(killed)
        if LINUX:
            assert results[0].metrics["peak_rss_mb"] > 0  # read from the worker before it was killed
        assert results[1].status is TrialState.COMPLETE, results[1].error
        assert results[1].metrics["pid"] != killed
        ex.submit(2, call())  # the pool goes on
        after = drain(ex)
        assert after[2].status is TrialState.COMPLETE and after[2].metrics["pid"] != killed


# -- a killed worker -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_mid_trial_fails_only_its_trial_and_is_replaced(tmp_path):
    victim = str(tmp_path / "victim.pid")
    with create_executor("process", workers=2, threads=1) as ex:
        ex.submit(0, call(sleep_s=60, pid_file=victim))
        ex.submit(1, call(sleep_s=10))  # the other worker: busy while the first is killed
        results: dict[int, EvalResult] = {}
        pid = wait_for_pid(ex, victim, results)
        os.kill(pid, signal.SIGKILL)
        ex.submit(2, call())  # arrives while the survivor is busy: a replacement worker runs it
        results.update(drain(ex))
    assert results[0].reason == "crash" and "SIGKILL" in results[0].error, results[0].error
    assert results[1].status is TrialState.COMPLETE, results[1].error
    assert results[2].status is TrialState.COMPLETE, results[2].error
    survivor = results[1].metrics["pid"]
    assert survivor != pid
    assert results[2].metrics["pid"] not in (pid, survivor)


# -- a worker under a memory limit ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS relative to /proc/self/status")
def test_a_worker_out_of_memory_fails_the_trial_and_runs_the_next():
    with create_executor("process", workers=1, threads=1, memory_limit=400 * MIB) as ex:
        ex.submit(0, call(alloc_mb=10))
        first = drain(ex)[0]
        ex.submit(1, call(alloc_mb=2000))  # past the limit
        ex.submit(2, wide_network_call())  # a real network whose activations are past it
        ex.submit(3, call(alloc_mb=200))  # within it, once the failed trials' memory is back
        results = drain(ex)
    assert first.status is TrialState.COMPLETE, first.error
    for failed in (results[1], results[2]):
        assert failed.reason == "oom", failed.error
        assert "cpu_s" in failed.metrics
    assert results[3].status is TrialState.COMPLETE, results[3].error
    assert results[3].metrics["pid"] == first.metrics["pid"]  # the same worker went on


def wide_network_call() -> TrialCall:
    """Two 256-channel convolutions on digits scaled to 384x384: gigabytes of activations."""
    space = create_space("chain", layers=2, channels=[16, 256], stem_channels=8)
    return TrialCall(TrainingEvaluator({"name": "digits"}), space, space.parse("conv:3:256:relu|conv:3:256:relu"),
                     Fidelity(epochs=1, data_fraction=0.3, resolution=384), seed=0)


@pytest.mark.slow
def test_a_trial_that_cannot_be_sent_fails_alone():
    unsendable = call()
    unsendable.evaluator.note = lambda: None  # type: ignore[attr-defined]  # not picklable
    with create_executor("process", workers=1, threads=1) as ex:
        ex.submit(0, unsendable)
        ex.submit(1, call())
        results = drain(ex)
    assert results[0].status is TrialState.FAILED and "not sent to a worker" in results[0].error
    assert results[1].status is TrialState.COMPLETE, results[1].error
