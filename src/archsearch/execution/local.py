"""In-process and process-pool executors."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from archsearch.core import EvalResult
from archsearch.execution.base import Executor, TrialCall, default_threads, register_executor, warm_up_worker
from archsearch.options import invalid, option


@register_executor("inline")
class InlineExecutor(Executor):
    """Runs each trial in the driver process, one at a time: simplest to debug."""

    small_options: ClassVar[dict[str, Any]] = {"threads": 1}

    @dataclass(frozen=True)
    class Options(Executor.Options):
        threads: Optional[int] = option(None, "torch threads for the trial (null: torch's default)", low=1)

        def __post_init__(self) -> None:
            if self.workers != 1:
                raise invalid("workers", "must be 1: executor 'inline' runs one trial at a time "
                                         "(--executor process|ray for parallel trials)")

    opts: Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.threads = self.opts.threads
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
    dataset once and reuses it, and dies with the driver. When a worker dies (killed, out of
    memory) the whole pool breaks and every trial in it is lost without saying which one was
    the cause. The lost trials then run again one at a time (new submissions wait): a trial
    that breaks the pool while running alone is the cause and fails; the others complete.
    """

    small_options: ClassVar[dict[str, Any]] = {"workers": 2, "threads": 1}

    @dataclass(frozen=True)
    class Options(Executor.Options):
        workers: int = option(2, "worker processes, each running one trial at a time", low=1)
        threads: Optional[int] = option(None, "torch threads per worker (null: the cores shared out)", low=1)

    opts: Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.threads = self.opts.threads or default_threads(self.workers)
        self._pool: Optional[ProcessPoolExecutor] = None
        self._futures: dict[Future[EvalResult], int] = {}
        self._calls: dict[int, TrialCall] = {}
        self._isolating: deque[int] = deque()  # lost in a broken pool: rerun one at a time
        self._held: deque[int] = deque()  # submitted while isolating

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=warm_up_worker, initargs=(self.threads, os.getpid()))
        return self._pool

    def _start(self, key: int) -> None:
        try:
            future = self._ensure_pool().submit(_call_in_worker, self._calls[key], self.threads)
        except BrokenProcessPool:
            self._discard_pool()
            future = self._ensure_pool().submit(_call_in_worker, self._calls[key], self.threads)
        self._futures[future] = key

    def submit(self, key: int, call: TrialCall) -> None:
        self._calls[key] = call
        if self._isolating:
            self._held.append(key)
        else:
            self._start(key)

    def _refill(self) -> None:
        if self._futures:
            return
        if self._isolating:
            self._start(self._isolating.popleft())
        else:
            while self._held and len(self._futures) < self.workers:
                self._start(self._held.popleft())

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        self._refill()
        if not self._futures:
            return []
        done, _ = futures_wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: list[tuple[int, EvalResult]] = []
        broken = False
        for future in done:
            key = self._futures.pop(future)
            try:
                out.append((key, future.result()))
            except BrokenProcessPool:
                broken = True
                self._futures[future] = key  # handled with the rest of the pool below
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                out.append((key, EvalResult.failed(f"{type(exc).__name__}: {exc}")))
            self._calls.pop(key, None)
        if broken:
            lost = sorted(self._futures.values())  # a broken pool loses every trial it held
            self._futures.clear()
            self._discard_pool()
            if len(lost) == 1:  # it ran alone: it is the cause
                self._calls.pop(lost[0], None)
                out.append((lost[0], EvalResult.failed("worker process died (killed, or out of memory)",
                                                       reason="crash")))
            else:
                self._isolating.extend(lost)
        self._refill()
        return out

    def _discard_pool(self) -> None:
        """Drop a pool without waiting for its trials: terminate its workers."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API for this
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=5)

    def running(self) -> int:
        return len(self._futures) + len(self._isolating) + len(self._held)

    def close(self) -> None:
        """Stop at once: trials still running are abandoned (the journal runs them again on resume)."""
        self._discard_pool()
        self._futures.clear()
        self._calls.clear()
        self._isolating.clear()
        self._held.clear()
