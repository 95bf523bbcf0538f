"""Ray executor: each trial is a Ray task with its own CPU/GPU resources.

With ``ray_address`` it joins an existing cluster (the cluster's nodes need archsearch
installed); otherwise it starts a private local Ray with ``workers`` CPUs. The dashboard stays
off unless ``dashboard=True``: no network listener is opened unless asked for.

Where the time goes with two workers on two cores, and what is done about it:

* Ray runs its workers at nice 15 under its own daemons, so any other process on the machine
  (the driver included) takes the cores first; a private Ray runs them at nice 0, like the
  process pool's workers. Its metrics export, event statistics and timeline are off too.
* The evaluator (with its dataset when it holds one in memory) and the space go into the object
  store once; each worker deserializes them once and keeps them (cached by object id), so a
  trial ships only its architecture, fidelity and seed.
* Each worker pays torch's one-off costs (the first optimizer imports torch._dynamo: 1-2 s) and
  loads the data in a warm-up task; trials are sent once all workers are warm, so none of that
  lands in a trial's cost or hard limit, and the first trials spread over all workers (and nodes).
  CPU workers are reused for every trial (GPU trials get a fresh process each, which frees the
  GPU's memory).

Failures: a worker killed mid-trial, a lost node or object fail that trial only, with reason
``crash`` (retried by the experiment; Ray's own ``max_retries`` stays 0); Ray's memory monitor
killing a task gives ``oom``; a trial past its hard limit is cancelled (its worker killed) with
reason ``timeout``; an exception raised by the trial code keeps the reason its message names.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from archsearch.core import EvalResult, failure_reason
from archsearch.errors import ConfigError
from archsearch.estimation.base import describe_failure
from archsearch.execution.base import Executor, TrialCall, grace, register_executor, warm_up_torch
from archsearch.options import option

# Ray's internal settings for a private local Ray (never sent to a cluster we join).
PRIVATE_SYSTEM_CONFIG: dict[str, Any] = {
    "worker_niceness": 0,  # default 15: trials would yield the cores to every other process
    "enable_metrics_collection": False,  # nothing scrapes a private Ray's metrics
    "event_stats": False,  # per-handler timing inside the raylet and GCS
    "enable_timeline": False,
    # the memory monitor stays on: it kills a task before the machine runs out of memory (reported as oom)
}
WARM_UP_ALLOWANCE = 120.0  # seconds the workers' warm-up may take before the held trials are sent anyway


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'archsearch[ray]'") from None
    return ray


# --- worker side -------------------------------------------------------------------------------

_SHARED: dict[str, Any] = {}  # object id -> the evaluator or space it holds (this worker's copy)
_WARM: list[bool] = []


def _shared(box: list[Any]) -> Any:
    """The object behind a boxed ObjectRef, deserialized once per worker process. (A bare ref
    argument would be fetched and deserialized again for every task.)"""
    ref = box[0]
    key = ref.hex()
    if key not in _SHARED:
        if len(_SHARED) >= 8:  # another search's objects: keep the cache small
            _SHARED.clear()
        _SHARED[key] = _ray().get(ref)
    return _SHARED[key]


def _warm_up(evaluator_box: list[Any], threads: int) -> int:
    """Pay torch's one-off costs (thread pool, first conv kernels, and the first optimizer, which
    imports torch._dynamo: about 1-2 s) and load the data once per worker, before its first
    trial's clock starts."""
    if not _WARM:
        warm_up_torch(threads)
        _WARM.append(True)
    try:
        _shared(evaluator_box).prepare()
    except Exception:  # noqa: BLE001 - the trial itself reports what is wrong with its data
        pass
    return os.getpid()


def _run_remote(call: TrialCall, evaluator_box: list[Any], space_box: list[Any], threads: int) -> EvalResult:
    _warm_up(evaluator_box, threads)
    call = dataclasses.replace(call, evaluator=_shared(evaluator_box), space=_shared(space_box))
    result = call(threads)
    result.metrics.setdefault("worker_pid", float(os.getpid()))  # where to look when a worker misbehaves
    return result


# --- driver side -------------------------------------------------------------------------------

_NOT_SHIPPED: Any = None  # stands for the evaluator and space in a shipped call (they travel by ref)


def hard_limit(call_timeout: Optional[float], trial_timeout: Optional[float]) -> Optional[float]:
    """Seconds a trial may run before its task is cancelled: the evaluator's time limit plus a
    :func:`grace` (the trial stops itself at its limit unless it hangs), or the
    executor's ``trial_timeout``, whichever comes first."""
    limits = [] if trial_timeout is None else [trial_timeout]
    if call_timeout is not None:
        limits.append(call_timeout + grace(call_timeout))
    return min(limits) if limits else None


def ray_failure(exc: BaseException) -> EvalResult:
    """A failed result for what ``ray.get`` raised, with its reason: the machinery failing
    (worker or node died, object lost) is ``crash``; Ray's memory monitor killing the task is
    ``oom``; an exception from the trial code keeps the reason its message names."""
    ray = _ray()
    rex = ray.exceptions
    text = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    if isinstance(exc, rex.RayTaskError):  # raised by the code the task ran (run_trial itself never raises)
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
        message = describe_failure(cause)
        reason = failure_reason(message)
        return EvalResult.failed(message, reason=None if reason != "error" else "error")
    if isinstance(exc, rex.OutOfMemoryError):
        return EvalResult.failed(f"Ray's memory monitor killed the task: {text}", reason="oom")
    if isinstance(exc, (rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
        return EvalResult.failed(f"ray cannot run the task: {text}", reason="error")
    if isinstance(exc, rex.RayError):  # WorkerCrashedError, NodeDiedError, ObjectLostError, a cancelled task...
        return EvalResult.failed(f"ray task lost: {text}", reason="crash")
    return EvalResult.failed(f"ray task failed: {text}", reason="error")


@dataclass
class _Task:
    key: int
    limit: Optional[float]  # hard limit in seconds (None: none)
    started: float  # monotonic time it was sent to Ray (once the workers were warm)


@register_executor("ray")
class RayExecutor(Executor):
    small_options: ClassVar[dict[str, Any]] = {"workers": 2}

    @dataclass(frozen=True)
    class Options(Executor.Options):
        workers: int = option(2, "trials run at the same time as Ray tasks", low=1)
        ray_address: Optional[str] = option(None, "a running cluster to join (null: a private local Ray)")
        cpus_per_trial: float = option(1.0, "CPUs Ray reserves for each trial", above=0)
        gpus_per_trial: float = option(0.0, "GPUs Ray reserves for each trial", low=0)
        dashboard: bool = option(False, "start Ray's dashboard (a network listener)")
        trial_timeout: Optional[float] = option(None, "seconds before a running trial is cancelled", above=0)

    opts: Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.opts
        self.ray_address, self.dashboard = o.ray_address, o.dashboard
        self.cpus_per_trial, self.gpus_per_trial = o.cpus_per_trial, o.gpus_per_trial
        self.trial_timeout = o.trial_timeout
        self.threads = max(1, int(self.cpus_per_trial))
        self._refs: dict[Any, _Task] = {}
        self._started_ray = False
        self._remote: Any = None
        self._shipped: dict[int, tuple[Any, list[Any]]] = {}  # id(object) -> (object, [its ObjectRef])
        self._warming: list[Any] = []  # warm-up tasks not yet finished
        self._held: list[tuple[int, TrialCall, list[Any], list[Any], Optional[float]]] = []  # sent once warm
        self._warmed_up = False  # warm-up tasks sent
        self._warm_since = 0.0

    def _ensure_ray(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=self.dashboard, log_to_driver=False,
                                          configure_logging=False)
            if self.ray_address:
                kwargs["address"] = self.ray_address
            else:  # "local": always a fresh private instance, never a cluster left running on this machine
                kwargs["address"] = "local"
                kwargs["num_cpus"] = max(self.workers, int(self.cpus_per_trial * self.workers + 0.999))
                kwargs["_system_config"] = dict(PRIVATE_SYSTEM_CONFIG)
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = self.ray_address or "a local Ray"
                raise ConfigError(f"cannot start or join Ray at {where}: {exc}") from exc
            self._started_ray = True
        if self._remote is None:
            # CPU trials reuse their worker process (max_calls=0); a GPU trial gets a fresh one, so
            # whatever GPU memory a trial leaves behind goes with its process
            self._remote = ray.remote(max_calls=0 if self.gpus_per_trial == 0 else 1)(_run_remote)
        return ray

    def _ship(self, obj: Any) -> list[Any]:
        """Put ``obj`` in the object store once per search (the same evaluator and space come with
        every call and do not change during a search); returns its ref, boxed."""
        entry = self._shipped.get(id(obj))
        if entry is None or entry[0] is not obj:
            entry = (obj, [self._ensure_ray().put(obj)])
            self._shipped[id(obj)] = entry
        return entry[1]

    def _options(self) -> dict[str, Any]:
        return dict(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=0)

    def _start_warm_up(self, evaluator_box: list[Any]) -> None:
        """One warm-up task per worker, at once, so each lands on its own worker; the trials are held
        until they are all done, then reuse the warm processes, and their hard-limit clocks start
        then. (Not for GPU trials: each runs in a fresh process, which warms up inside its task.)"""
        if self.gpus_per_trial:
            return
        ray = self._ensure_ray()
        warm = ray.remote(_warm_up)
        self._warming = [warm.options(**self._options()).remote(evaluator_box, self.threads)
                         for _ in range(self.workers)]
        self._warm_since = time.monotonic()

    def submit(self, key: int, call: TrialCall) -> None:
        self._ensure_ray()
        evaluator_box, space_box = self._ship(call.evaluator), self._ship(call.space)
        if not self._warmed_up:
            self._warmed_up = True
            self._start_warm_up(evaluator_box)
        light = dataclasses.replace(call, evaluator=_NOT_SHIPPED, space=_NOT_SHIPPED)
        self._held.append((key, light, evaluator_box, space_box, hard_limit(call.timeout, self.trial_timeout)))
        if not self._warming:
            self._launch_held()

    def _launch_held(self) -> None:
        """Send the trials held while the workers warmed up: all at once, so that they spread over
        the warm workers (on a cluster: over its nodes) instead of queueing on the first one ready."""
        for key, light, evaluator_box, space_box, limit in self._held:
            ref = self._remote.options(**self._options()).remote(light, evaluator_box, space_box, self.threads)
            self._refs[ref] = _Task(key, limit, time.monotonic())
        self._held.clear()

    def _wait_warm_up(self, ray: Any, timeout: Optional[float]) -> None:
        """Wait up to ``timeout`` for the warm-up tasks; once they are done (or have taken longer
        than :data:`WARM_UP_ALLOWANCE`, so that a hung one cannot hold the search) the held trials go."""
        allowance = max(0.0, self._warm_since + WARM_UP_ALLOWANCE - time.monotonic())
        timeout = allowance if timeout is None else min(timeout, allowance)
        _, self._warming = ray.wait(self._warming, num_returns=len(self._warming), timeout=timeout)
        if self._warming and time.monotonic() - self._warm_since >= WARM_UP_ALLOWANCE:
            self._warming = []
        if not self._warming:
            self._launch_held()

    def _next_deadline(self, now: float) -> Optional[float]:
        left = [t.started + t.limit - now for t in self._refs.values() if t.limit is not None]
        return max(0.0, min(left)) + 0.05 if left else None

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        if not self.running():
            return []
        ray = self._ensure_ray()
        if self._warming:  # no trial runs before the workers are warm
            begin = time.monotonic()
            self._wait_warm_up(ray, timeout)
            if self._warming:
                return []
            timeout = None if timeout is None else max(0.0, timeout - (time.monotonic() - begin))
        deadline = self._next_deadline(time.monotonic())  # wake up for a trial's hard limit
        if deadline is not None:
            timeout = deadline if timeout is None else min(timeout, deadline)
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                out.append((task.key, ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - a lost worker or node, an error raised by the trial
                out.append((task.key, ray_failure(exc)))
        now = time.monotonic()
        for ref, task in list(self._refs.items()):  # a hard limit, on top of the evaluator's cooperative one
            if task.limit is not None and now - task.started > task.limit:
                del self._refs[ref]
                self._cancel(ray, ref)
                out.append((task.key, EvalResult.failed(f"ray task ran past its hard limit of {task.limit:g}s and "
                                                        "was cancelled (its worker killed)", task.limit,
                                                        reason="timeout")))
        return out

    @staticmethod
    def _cancel(ray: Any, ref: Any) -> None:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - already finished, or the cluster is gone
            pass

    def running(self) -> int:
        return len(self._refs) + len(self._held)

    def close(self) -> None:
        try:
            if (self._refs or self._warming) and self._remote is not None:
                ray = _ray()
                for ref in [*self._refs, *self._warming]:
                    self._cancel(ray, ref)
        finally:
            self._refs.clear()
            self._held.clear()
            self._warming = []
            self._shipped.clear()
            self._warmed_up = False
            self._remote = None
            if self._started_ray:
                self._started_ray = False
                _ray().shutdown()
