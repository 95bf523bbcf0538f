"""In-process and process-pool executors."""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from typing import Optional

from archsearch.core import EvalResult
from archsearch.errors import ConfigError
from archsearch.execution.base import Executor, TrialCall, default_threads, register_executor, warm_up_worker


@register_executor("inline")
class InlineExecutor(Executor):
    """Runs each trial in the driver process, one at a time: simplest to debug."""

    def __init__(self, workers: int = 1, threads: Optional[int] = None) -> None:
        super().__init__(workers)
        if workers != 1:
            raise ConfigError("executor 'inline' runs one trial at a time: use executor.workers=1, "
                              "or --executor process|ray for parallel trials")
        self.threads = threads
        self._queue: deque[tuple[int, TrialCall]] = deque()

    def submit(self, key: int, call: TrialCall) -> None:
        self._queue.append((key, call))

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        if not self._queue:
            return []
        key, call = self._queue.popleft()
        return [(key, call(self.threads))]

    def running(self) -> int:
        return len(self._queue)


def _call_in_worker(call: TrialCall, threads: int) -> EvalResult:
    return call(threads)


@register_executor("process")
class ProcessExecutor(Executor):
    """A pool of spawned worker processes on this machine, ``threads`` torch threads each.

    Workers are spawned (not forked) so torch's thread pools start clean; each loads the
    dataset once and reuses it. A worker that dies (killed, out of memory) fails the
    trials it held and the pool is rebuilt.
    """

    def __init__(self, workers: int = 2, threads: Optional[int] = None) -> None:
        super().__init__(workers)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"executor.threads must be a positive integer or null, got {threads!r}")
        self.threads = threads or default_threads(workers)
        self._pool: Optional[ProcessPoolExecutor] = None
        self._futures: dict[Future[EvalResult], int] = {}

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=warm_up_worker, initargs=(self.threads,))
        return self._pool

    def submit(self, key: int, call: TrialCall) -> None:
        try:
            future = self._ensure_pool().submit(_call_in_worker, call, self.threads)
        except BrokenProcessPool:
            self._pool = None
            future = self._ensure_pool().submit(_call_in_worker, call, self.threads)
        self._futures[future] = key

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        if not self._futures:
            return []
        done, _ = futures_wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        broken = False
        for future in done:
            key = self._futures.pop(future)
            try:
                out.append((key, future.result()))
            except BrokenProcessPool:
                broken = True
                out.append((key, EvalResult.failed("worker process died (killed, or out of memory)")))
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                out.append((key, EvalResult.failed(f"{type(exc).__name__}: {exc}")))
        if broken:
            self._pool = None
        return out

    def running(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()
