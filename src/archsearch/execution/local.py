"""In-process and process-pool executors, and the hard time limit each puts on a trial."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.reduction import ForkingPickler
from types import FrameType
from typing import Any, ClassVar, Optional, Union

from archsearch.core import EvalResult
from archsearch.estimation.base import TrialTimeout
from archsearch.estimation.memory import memory_problem, parse_memory
from archsearch.estimation.resources import limit_address_space, usage_of
from archsearch.execution.base import (
    Executor, TrialCall, default_threads, grace, register_executor, warm_up_worker,
)
from archsearch.options import invalid, option


def _over_time(limit: float) -> str:
    return f"trial passed its time limit of {limit:g} s by more than {grace(limit):g} s and was stopped"


@register_executor("inline")
class InlineExecutor(Executor):
    """Runs each trial in the driver process, one at a time: simplest to debug.

    A trial past its ``TrialCall.timeout`` plus :func:`grace` is interrupted with ``SIGALRM``
    (Linux/macOS, when the driver runs on its main thread and nothing else uses ``SIGALRM``),
    which raises :class:`TrialTimeout` in the trial the way Ctrl-C raises ``KeyboardInterrupt``:
    a hung ``sleep`` or Python loop is stopped, but a single native call (one huge kernel) is
    only interrupted when it returns. Elsewhere the timeout stays cooperative (the evaluator's).
    """

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
        return [(key, self._run(call))]

    def running(self) -> int:
        return len(self._queue)

    def _run(self, call: TrialCall) -> EvalResult:
        limit = call.timeout
        if limit is None or not _can_alarm():
            return call(self.threads)
        _prepare(call)  # data loading (a download, the first time) is not the trial's time

        def expire(signum: int, frame: Optional[FrameType]) -> None:
            raise TrialTimeout(f"timeout: {_over_time(limit)}")

        previous = signal.signal(signal.SIGALRM, expire)
        try:
            signal.setitimer(signal.ITIMER_REAL, limit + grace(limit))
            try:
                return call(self.threads)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except TrialTimeout as exc:  # fired outside the trial's own error handling
            return EvalResult.failed(str(exc))
        finally:
            signal.signal(signal.SIGALRM, previous)


def _prepare(call: TrialCall) -> None:
    """Run the evaluator's per-process set-up before a trial's time limit starts counting (the trial
    runs it again, cached, and reports its failure)."""
    try:
        call.evaluator.prepare()
    except Exception:  # noqa: BLE001 - the trial itself reports it
        pass


def _can_alarm() -> bool:
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN))


# -- the process pool ---------------------------------------------------------------
# Driver and worker talk over one pipe per worker. A trial goes out as its key, then the call pickled
# as multiprocessing pickles (tensors, e.g. in-memory data, travel as shared memory the driver owns).
# The worker answers in plain pickles (by value: nothing the driver reads depends on a worker that
# may be killed): ("ready", pid) once warm, then for each trial ("start", key, monotonic,
# process_time) when its clock starts and ("done", key, result).


def _worker_main(conn: Connection, threads: int, parent_pid: int, memory_limit: Optional[int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    warm_up_worker(threads, parent_pid)
    if memory_limit:
        limit_address_space(memory_limit)
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            key = pickle.loads(conn.recv_bytes())
            payload = conn.recv_bytes()
        except (EOFError, OSError):  # the driver closed the pipe or died
            return
        try:
            call = pickle.loads(payload)
            _prepare(call)
            conn.send_bytes(pickle.dumps(("start", key, time.monotonic(), time.process_time())))
            result = call(threads)
        except Exception as exc:  # noqa: BLE001 - an unreadable call, or a call that raised
            result = EvalResult.failed(f"{type(exc).__name__}: {exc}")
        call = None  # noqa: F841 - free the trial's data before the next one arrives
        try:
            message = pickle.dumps(("done", key, result))
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable metric
            failed = EvalResult.failed(f"result not sent back: {type(exc).__name__}: {exc}")
            message = pickle.dumps(("done", key, failed))
        conn.send_bytes(message)


@dataclass(eq=False)  # compared and hashed by identity
class _Worker:
    process: Any  # a spawned multiprocessing Process
    conn: Connection
    ready: bool = False
    key: Optional[int] = None  # the trial it runs
    limit: Optional[float] = None  # that trial's time limit
    started: Optional[float] = None  # time.monotonic() when the trial's clock started (in the worker)
    cpu_start: Optional[float] = None  # the worker's process_time() then

    def deadline(self) -> Optional[float]:
        if self.key is None or self.started is None or self.limit is None:
            return None
        return self.started + self.limit + grace(self.limit)


def _exit_text(code: Optional[int]) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        why = " (kill -9, or the kernel's out-of-memory killer)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"killed by {name}{why}"
    return f"exit code {code}"


def _stop(workers: list[_Worker]) -> None:
    """Kill workers at once and reap them (their trials are abandoned)."""
    for w in workers:
        if w.process.is_alive():
            w.process.kill()
    for w in workers:
        w.process.join(timeout=5)
        w.conn.close()
    workers.clear()


@register_executor("process")
class ProcessExecutor(Executor):
    """Spawned worker processes on this machine, ``threads`` torch threads each, one trial at a time.

    Workers are spawned (not forked) so torch's thread pools start clean; each loads the dataset
    once and reuses it, and dies with the driver. Each worker is its own process with its own
    pipe, so a machine failure touches one trial only: a worker that dies mid-trial (killed, the
    OOM killer) fails exactly its trial with reason ``crash``; a trial past its ``TrialCall.timeout``
    plus :func:`grace` has its worker killed and fails with reason ``timeout``. Either way the worker
    is replaced and the other workers' trials go on. ``memory_limit`` caps each worker's address
    space, so an oversized network fails its trial with reason ``oom`` and the worker goes on.
    """

    small_options: ClassVar[dict[str, Any]] = {"workers": 2, "threads": 1}

    @dataclass(frozen=True)
    class Options(Executor.Options):
        workers: int = option(2, "worker processes, each running one trial at a time", low=1)
        threads: Optional[int] = option(None, "torch threads per worker (null: the cores shared out)", low=1)
        memory_limit: Optional[Union[int, str]] = option(
            None, "memory each worker may map beyond its size once started (bytes or a size such as 4GB; RLIMIT_AS, "
                  "CPU only): an allocation past it fails the trial with reason oom instead of waking the OOM killer "
                  "(null: no limit)", check=memory_problem)

        def __post_init__(self) -> None:
            if self.memory_limit is not None and sys.platform == "win32":
                raise invalid("memory_limit", "is not supported on Windows (no RLIMIT_AS); use null")

    opts: Options
    START_FAILURES: ClassVar[int] = 3  # workers in a row that die before they are ready: the pending trials fail

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.threads = self.opts.threads or default_threads(self.workers)
        self._workers: list[_Worker] = []
        self._pending: deque[tuple[int, TrialCall]] = deque()
        self._start_failures = 0
        self._done: list[tuple[int, EvalResult]] = []  # finished outside wait(), returned by the next one
        self._finalizer = weakref.finalize(self, _stop, self._workers)

    def submit(self, key: int, call: TrialCall) -> None:
        self._pending.append((key, call))
        self._dispatch(self._done)  # start workers now (no waiting on them): they warm up meanwhile

    def running(self) -> int:
        return len(self._pending) + sum(w.key is not None for w in self._workers) + len(self._done)

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        end = None if timeout is None else time.monotonic() + timeout
        out, self._done = self._done, []
        while True:
            self._dispatch(out)
            if out or not self.running():
                return out
            times = [d for d in (w.deadline() for w in self._workers) if d is not None]
            if end is not None:
                times.append(end)
            self._poll(out, max(0.0, min(times) - time.monotonic()) if times else None)
            self._expire(out)
            if out or (end is not None and time.monotonic() >= end):
                return out

    def close(self) -> None:
        """Stop at once: trials still running are abandoned (the journal runs them again on resume)."""
        _stop(self._workers)
        self._pending.clear()
        self._done.clear()

    # -- workers ------------------------------------------------------------------------
    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker_main, name="archsearch-worker", daemon=True,
                              args=(child, self.threads, os.getpid(),
                                    None if self.opts.memory_limit is None else parse_memory(self.opts.memory_limit)))
        process.start()
        child.close()  # the worker holds the only other end: its death reads as end-of-file here
        self._workers.append(_Worker(process, parent))

    def _dispatch(self, out: list[tuple[int, EvalResult]]) -> None:
        """Hand pending trials to idle ready workers; start workers for the rest (up to ``workers``)."""
        for w in [w for w in self._workers if w.ready and w.key is None]:
            if not self._pending:
                break
            self._send(w, *self._pending.popleft(), out)
        starting = sum(not w.ready for w in self._workers)
        while len(self._pending) > starting and len(self._workers) < self.workers:
            self._spawn()
            starting += 1

    def _send(self, w: _Worker, key: int, call: TrialCall, out: list[tuple[int, EvalResult]]) -> None:
        try:
            payload = ForkingPickler.dumps(call)
        except Exception as exc:  # noqa: BLE001 - an unpicklable call fails its trial, not the search
            out.append((key, EvalResult.failed(f"trial not sent to a worker: {type(exc).__name__}: {exc}")))
            return
        try:
            w.conn.send_bytes(pickle.dumps(key))
            w.conn.send_bytes(payload)
        except OSError:  # the worker died while idle: the trial goes to another one
            self._pending.appendleft((key, call))
            self._bury(w, out)
            return
        w.key, w.limit, w.started, w.cpu_start = key, call.timeout, None, None

    def _poll(self, out: list[tuple[int, EvalResult]], seconds: Optional[float]) -> None:
        """Wait up to ``seconds`` for a message or a worker's death, then read what came."""
        owners: dict[Any, _Worker] = {}
        for w in self._workers:
            owners[w.conn] = owners[w.process.sentinel] = w
        if not owners:
            return
        ready = wait_any(list(owners), seconds)
        for w in dict.fromkeys(owners[r] for r in ready):
            self._read(w, out)

    def _read(self, w: _Worker, out: list[tuple[int, EvalResult]]) -> None:
        try:
            while w.conn.poll():
                data = w.conn.recv_bytes()
                try:
                    message = pickle.loads(data)
                except Exception as exc:  # noqa: BLE001 - e.g. a result class the driver cannot import
                    message = ("done", w.key, EvalResult.failed(f"result unreadable: {type(exc).__name__}: {exc}"))
                self._handle(w, message, out)
        except (EOFError, OSError):
            self._bury(w, out)
            return
        if not w.process.is_alive():
            self._bury(w, out)

    def _handle(self, w: _Worker, message: tuple[Any, ...], out: list[tuple[int, EvalResult]]) -> None:
        if message[0] == "ready":
            w.ready, self._start_failures = True, 0
        elif message[0] == "start":
            w.started, w.cpu_start = message[2], message[3]
        elif message[0] == "done" and message[1] == w.key:
            out.append((message[1], message[2]))
            w.key = w.limit = w.started = w.cpu_start = None

    def _bury(self, w: _Worker, out: list[tuple[int, EvalResult]]) -> None:
        """A worker died: fail its trial with reason crash; a new one is started when there is work."""
        if w not in self._workers:
            return
        self._workers.remove(w)
        w.process.join(timeout=5)
        w.conn.close()
        why = _exit_text(w.process.exitcode)
        if w.key is not None:
            cost = time.monotonic() - w.started if w.started is not None else 0.0
            out.append((w.key, EvalResult.failed(f"worker process died while running the trial (pid {w.process.pid}, "
                                                 f"{why})", cost, reason="crash")))
        elif not w.ready:
            self._start_failures += 1
            if self._start_failures >= self.START_FAILURES:  # starting more would loop forever
                while self._pending:
                    key, _ = self._pending.popleft()
                    out.append((key, EvalResult.failed(f"worker processes die before they are ready ({why}); "
                                                       "see the driver's stderr")))

    def _expire(self, out: list[tuple[int, EvalResult]]) -> None:
        """Kill the workers whose trial is past its time limit plus grace; fail those trials with reason timeout."""
        for w in list(self._workers):
            deadline = w.deadline()
            if deadline is None or time.monotonic() < deadline:
                continue
            self._read(w, out)  # it may have just finished
            if w not in self._workers or w.key is None or w.limit is None or w.started is None:
                continue
            usage = usage_of(w.process.pid, w.cpu_start)  # read before the kill: the trial's peak and CPU time
            w.process.kill()
            self._workers.remove(w)
            w.process.join(timeout=5)
            w.conn.close()
            out.append((w.key, EvalResult.failed(f"{_over_time(w.limit)} (its worker was killed)",
                                                 time.monotonic() - w.started, reason="timeout", metrics=usage)))
