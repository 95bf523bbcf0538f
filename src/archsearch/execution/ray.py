"""Ray executor: each trial is a Ray task with its own CPU/GPU resources.

With ``ray_address`` it joins an existing cluster (the cluster's nodes need archsearch
installed); otherwise it starts a local Ray with ``workers`` CPUs. The dashboard stays
off unless ``dashboard=True``: no network listener is opened unless asked for.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from archsearch.core import EvalResult
from archsearch.errors import ConfigError
from archsearch.execution.base import Executor, TrialCall, register_executor


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
    def __init__(
        self,
        workers: int = 2,
        ray_address: Optional[str] = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        dashboard: bool = False,
        trial_timeout: Optional[float] = None,
    ) -> None:
        super().__init__(workers)
        if not isinstance(cpus_per_trial, (int, float)) or cpus_per_trial <= 0:
            raise ConfigError(f"executor.cpus_per_trial must be positive, got {cpus_per_trial!r}")
        if not isinstance(gpus_per_trial, (int, float)) or gpus_per_trial < 0:
            raise ConfigError(f"executor.gpus_per_trial must be >= 0, got {gpus_per_trial!r}")
        if trial_timeout is not None and (not isinstance(trial_timeout, (int, float)) or trial_timeout <= 0):
            raise ConfigError(f"executor.trial_timeout must be a positive number of seconds, got {trial_timeout!r}")
        self.ray_address, self.dashboard = ray_address, bool(dashboard)
        self.cpus_per_trial, self.gpus_per_trial = float(cpus_per_trial), float(gpus_per_trial)
        self.trial_timeout = trial_timeout
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
