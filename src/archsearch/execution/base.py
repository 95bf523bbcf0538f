"""The executor protocol: run trial evaluations somewhere and hand back their results.

Executors know nothing of strategies or journals. ``submit`` queues one evaluation under
a key (the trial number); ``wait`` returns the (key, result) pairs that finished,
blocking up to ``timeout`` seconds for at least one. Failures of the machinery (a worker
process killed, a Ray task lost) come back as failed results, never as exceptions.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional

from archsearch.core import EvalResult, Fidelity
from archsearch.estimation.base import Evaluator, run_trial
from archsearch.options import Configurable, option
from archsearch.options import Options as BaseOptions
from archsearch.registry import Registry
from archsearch.spaces.base import Architecture, SearchSpace


@dataclass
class TrialCall:
    """Everything a worker needs to evaluate one trial (picklable)."""

    evaluator: Evaluator
    space: SearchSpace
    arch: Architecture
    fidelity: Fidelity
    seed: int
    init: Optional[dict[str, Any]] = None  # a parent's state dict (weight inheritance), shipped with the call
    reference: Optional[list[list[float]]] = None  # completed trials' best-so-far curves (median-rule early stopping)
    # seconds after which the trial fails with reason "timeout" (the evaluator's time_limit(); None: no limit):
    # the executors stop a trial still running past this plus grace() by force
    timeout: Optional[float] = None

    def __call__(self, threads: Optional[int] = None) -> EvalResult:
        return run_trial(self.evaluator, self.space, self.arch, self.fidelity, self.seed, threads, self.init,
                         self.reference)


class Executor(Configurable, ABC):
    """Runs trial calls somewhere (this process, a process pool, Ray) and hands back their results.

    Rules: ``submit`` never blocks on a trial; ``wait`` returns finished ``(key, result)`` pairs
    (possibly none before ``timeout``), every submitted key exactly once; a trial that crashes
    its worker comes back as a failed result (reason ``crash``), never as an exception; a trial
    past its ``TrialCall.timeout`` fails with reason ``timeout`` (hard where the executor can stop
    it, see each executor); ``close`` returns at once (running trials are abandoned) and is safe twice.
    """

    @dataclass(frozen=True)
    class Options(BaseOptions):
        workers: int = option(1, "trials run at the same time", low=1)

    opts: Options

    def __init__(self, **options: Any) -> None:
        self.configure(options)
        self.workers = self.opts.workers

    @abstractmethod
    def submit(self, key: int, call: TrialCall) -> None: ...

    @abstractmethod
    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]: ...

    @abstractmethod
    def running(self) -> int:
        """Submitted and not yet returned by ``wait``."""

    def close(self) -> None:
        """Release workers. Safe to call twice."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def grace(limit: float) -> float:
    """Seconds a trial may run past its time limit (``TrialCall.timeout``) before an executor stops it
    by force: the evaluator's own check (after each batch) normally fires first and keeps the learning
    curve so far; the force is for a batch that never ends. 10% of the limit, at least 2 s (one slow batch)."""
    return max(2.0, 0.1 * limit)


def available_cores() -> int:
    """Cores this process may use (CPU affinity respected, unlike ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(workers: int) -> int:
    """Split the cores evenly so parallel workers do not oversubscribe them."""
    return max(1, available_cores() // workers)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this worker when its driver dies (kill -9 included), so no
    orphan keeps training a trial that resume will run again. A driver that died before the
    signal was set is caught by the parent-pid check that follows."""
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


def warm_up_torch(threads: int) -> None:
    """Pay torch's one-off costs (imports, thread pool, first conv kernels, first optimizer) when a
    worker starts, not inside its first trial."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x = torch.randn(8, 4, 8, 8, requires_grad=True)
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    F.conv2d(x, w, padding=1).relu().mean().backward()  # type: ignore[no-untyped-call]
    torch.optim.AdamW([w]).step()  # the first optimizer a process builds imports torch._dynamo (1-2 s)


def warm_up_worker(threads: int, parent_pid: int) -> None:
    """A process-pool worker's start: die with the driver, warm torch up, import the data loaders."""
    _die_with_parent(parent_pid)
    warm_up_torch(threads)
    import sklearn.datasets  # noqa: F401  (the built-in digits loader)

    import archsearch.data  # noqa: F401


EXECUTORS: Registry[Executor] = Registry("executor", package="archsearch.execution", group="archsearch.executors")
register_executor = EXECUTORS.register


def create_executor(name: str, **options: Any) -> Executor:
    return EXECUTORS.create(name, **options)


def list_executors() -> list[str]:
    return EXECUTORS.names()
