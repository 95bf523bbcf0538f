"""Ray executor: each trial is a Ray task with its own CPU/GPU resources.

With ``ray_address`` it joins an existing cluster (the cluster's nodes need archsearch
installed); otherwise it starts a local Ray with ``workers`` CPUs. The dashboard stays
off unless ``dashboard=True``: no network listener is opened unless asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from archsearch.core import EvalResult
from archsearch.errors import ConfigError
from archsearch.execution.base import Executor, TrialCall, register_executor
from archsearch.options import option


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'archsearch[ray]'") from None
    return ray


def _run_remote(call: TrialCall, threads: int) -> EvalResult:
    return call(threads)


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
        self._refs: dict[Any, tuple[int, float]] = {}
        self._started_ray = False
        self._remote: Any = None

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
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = self.ray_address or "a local Ray"
                raise ConfigError(f"cannot start or join Ray at {where}: {exc}") from exc
            self._started_ray = True
        if self._remote is None:
            self._remote = ray.remote(_run_remote)
        return ray

    def submit(self, key: int, call: TrialCall) -> None:
        self._ensure_ray()
        threads = max(1, int(self.cpus_per_trial))
        ref = self._remote.options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                   max_retries=0).remote(call, threads)
        self._refs[ref] = (key, time.monotonic())

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        if not self._refs:
            return []
        ray = self._ensure_ray()
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            key, _started = self._refs.pop(ref)
            try:
                out.append((key, ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                out.append((key, EvalResult.failed(f"ray task failed: {type(exc).__name__}: {str(exc)[:200]}")))
        if self.trial_timeout is not None:  # hard limit, on top of the evaluator's own timeout
            now = time.monotonic()
            for ref, (key, started) in list(self._refs.items()):
                if now - started > self.trial_timeout:
                    ray.cancel(ref, force=True)
                    del self._refs[ref]
                    out.append((key, EvalResult.failed(f"timeout: ray task exceeded {self.trial_timeout}s")))
        return out

    def running(self) -> int:
        return len(self._refs)

    def close(self) -> None:
        try:
            if self._refs and self._remote is not None:
                ray = _ray()
                for ref in self._refs:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - already finished, or the cluster is gone
                        pass
        finally:
            self._refs.clear()
            if self._started_ray:
                self._started_ray = False
                _ray().shutdown()
