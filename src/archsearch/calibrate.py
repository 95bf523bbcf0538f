"""The trust meter: does a cheap estimate rank architectures the way an expensive one does?

Every low-fidelity search (few epochs, a share of the data, a zero-cost proxy, a table column)
rests on one assumption: the cheap estimate *ranks* architectures as the expensive one would.
Absolute values do not matter to a search, only the order, so the check is a rank correlation.
:func:`calibrate` measures it on K distinct architectures drawn with a seeded generator:

* training evaluator: each architecture is trained at the ``low`` and at the ``high`` fidelity
  (the same seed, so the same initial weights, for both: the difference measured is the
  fidelity's, not the initialisation's), or scored with a zero-cost ``proxy`` instead of the
  low fidelity (the proxy sees those same initial weights and, if it needs data, one seeded
  minibatch of the training split);
* tabular evaluator: K rows drawn from the table (sampling the space would mostly miss a table
  that covers part of it), comparing a ``low_column`` or a ``proxy`` with the reward column.

Architectures that fail at either end are dropped and counted (their errors kept). The result
holds the pairs, Spearman's rho and Kendall's tau-b (scipy.stats), and for each a seeded
percentile bootstrap confidence interval (pairs resampled with replacement; resamples whose
ranks are all tied, where a correlation is undefined, are skipped).

The verdict compares Spearman's rho with a threshold, 0.6 by default: a rank correlation of
0.6 is where the usual reading moves from "moderate" to "strong", and it is about what the
better zero-cost proxies reach on cell benchmarks (synflow: 0.74 on NAS-Bench-201 in the
zero-cost proxies paper; parameter count around 0.6-0.7). Below it, the architectures a cheap
estimate ranks first are often not among the best at full fidelity, and a search steered by
it would be mostly steered by noise. With K = 10 the interval is wide, so the verdict also says
whether the interval's lower end clears the threshold.
The result, its statistics and how it is shown live in :mod:`archsearch.calibration_result`
(re-exported here).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from archsearch.calibration_result import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_THRESHOLD,
    MIN_PAIRS,
    CalibrationResult,
    Correlation,
    bootstrap,
    plot,
    rank_correlations,
    summary_table,
)
from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.errors import ConfigError, SearchAborted
from archsearch.estimation.base import Evaluator, TrainsOnSplits, describe_failure
from archsearch.spaces.base import Architecture, SearchSpace

SAMPLE_TRIES = 100  # draws per wanted architecture before the space is declared too small


# -- sampling ----------------------------------------------------------------------------------
def sample_distinct(space: SearchSpace, k: int, rng: np.random.Generator) -> list[Architecture]:
    """``k`` distinct architectures (by string form) drawn from ``space`` with ``rng``."""
    archs: dict[str, Architecture] = {}
    for _ in range(SAMPLE_TRIES * k):
        arch = space.sample(rng)
        archs.setdefault(str(arch), arch)
        if len(archs) == k:
            return list(archs.values())
    raise ConfigError(f"--k {k}: found only {len(archs)} distinct {space.name!r} architectures "
                      f"in {SAMPLE_TRIES * k} draws; ask for fewer")


def _arch_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, 7, i]).generate_state(1)[0] % (2**31 - 1))


def fidelity_name(metric: str, fidelity: Fidelity) -> str:
    parts = [f"{fidelity.epochs} epoch{'s' if fidelity.epochs != 1 else ''}"]
    if fidelity.data_fraction < 1.0:
        parts.append(f"{fidelity.data_fraction:.0%} data")
    if fidelity.resolution is not None:
        parts.append(f"{fidelity.resolution}px")
    return f"{metric} @ {', '.join(parts)}"


# -- the measurement ---------------------------------------------------------------------------
Progress = Callable[[int, int], None]


def calibrate(
    space: SearchSpace,
    evaluator: Evaluator,
    low: Optional[Fidelity] = None,
    high: Optional[Fidelity] = None,
    k: int = 10,
    seed: int = 0,
    proxy: Optional[str] = None,
    workers: int = 1,
    *,
    low_column: Optional[str] = None,
    threshold: float = DEFAULT_THRESHOLD,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    progress: Optional[Progress] = None,
) -> CalibrationResult:
    """Rank-correlate a cheap estimate with an expensive one on ``k`` seeded architectures.

    Training evaluators: ``low`` (or ``proxy``) against ``high``. Tabular evaluator: ``low_column``
    (or ``proxy``) against the reward column of ``k`` rows of the table (fidelities unused).
    ``workers`` > 1 trains in a process pool. ``progress(done, total)`` after each evaluation.
    Raises :class:`SearchAborted` when fewer than 3 architectures complete both ends.
    """
    from archsearch.estimation.tabular import TabularEvaluator

    _check_numbers(k, seed, workers, threshold, resamples, confidence)
    table = evaluator.table() if isinstance(evaluator, TabularEvaluator) else None
    tabular = table is not None
    if proxy is not None:
        from archsearch.estimation.proxies import check_proxies

        check_proxies([proxy])
    if table is not None:
        if (proxy is None) == (low_column is None):
            raise ConfigError("calibrating a table compares one low estimate with its reward: "
                              "give either --low-column COLUMN or --proxy NAME")
        if low_column is not None and low_column not in table.columns:
            raise ConfigError(f"--low-column: the table has no numeric column {low_column!r} "
                              f"(valid: {', '.join(table.columns)})")
    else:
        if low_column is not None:
            raise ConfigError("--low-column needs --evaluator tabular (a table to read it from)")
        if high is None or (low is None and proxy is None):
            raise ConfigError("calibrate needs a high fidelity and a low fidelity (or a proxy)")

    if tabular:
        high = high or Fidelity(epochs=1)  # a table ignores the fidelity; trials still carry one
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    if table is not None:
        names = list(table.rows)
        chosen = rng.choice(len(names), size=min(k, len(names)), replace=False)
        keys = [names[i] for i in sorted(int(c) for c in chosen)]
    else:
        keys = [str(a) for a in sample_distinct(space, k, rng)]
    seeds = [_arch_seed(seed, i) for i in range(len(keys))]
    archs: list[Optional[Architecture]] = []
    errors: dict[int, str] = {}
    for i, key in enumerate(keys):
        try:
            archs.append(space.parse(key))
        except Exception as exc:  # noqa: BLE001 - a table row of another space: dropped and counted
            archs.append(None)
            errors[i] = describe_failure(exc)

    objective = evaluator.objective
    low_values: dict[int, float] = {}
    high_values: dict[int, float] = {}
    costs = {"low": 0.0, "high": 0.0}
    total = len(keys) * 2
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    # the low end first: a proxy or a table column (cheap, here), else trials like the high end
    if proxy is not None or low_column is not None:
        task = evaluator.task()
        batch = _proxy_batch(evaluator, task, seed) if proxy is not None else None
        for i, arch in enumerate(archs):
            if arch is not None:
                t0 = time.perf_counter()
                try:
                    if proxy is not None:
                        low_values[i] = _proxy_score(space, arch, task, proxy, batch, seeds[i])
                    else:
                        assert table is not None and low_column is not None
                        low_values[i] = table.rows[keys[i]][low_column]
                except Exception as exc:  # noqa: BLE001 - a failed score drops the architecture
                    errors.setdefault(i, f"{proxy}: {describe_failure(exc)}")
                costs["low"] += time.perf_counter() - t0
            tick()
        calls = {("high", i): high for i in range(len(keys))}
    else:
        calls = {**{("low", i): low for i in range(len(keys))}, **{("high", i): high for i in range(len(keys))}}
    results = _run_trials(space, evaluator, archs, seeds, calls, workers, tick)
    for (end, i), result in results.items():
        costs[end] += result.cost
        if result.status is not TrialState.COMPLETE:
            errors.setdefault(i, f"{end}: {(result.error or 'failed').splitlines()[0]}")
        elif objective not in result.metrics or not math.isfinite(result.metrics[objective]):
            errors.setdefault(i, f"{end}: no finite {objective!r} in the result")
        else:
            (low_values if end == "low" else high_values)[i] = float(result.metrics[objective])

    kept = [i for i in range(len(keys)) if i not in errors and i in low_values and i in high_values]
    if len(kept) < MIN_PAIRS:
        first = next(iter(errors.values()), "no result")
        raise SearchAborted(f"calibration aborted: only {len(kept)} of {len(keys)} architectures completed "
                            f"both ends (at least {MIN_PAIRS} needed); first error: {first}")
    lows, highs = [low_values[i] for i in kept], [high_values[i] for i in kept]
    rho, tau = bootstrap(lows, highs, resamples, confidence, seed)
    if tabular:
        low_name, high_name = (proxy if proxy is not None else f"{low_column}"), objective
    else:
        assert high is not None
        low_name = proxy if proxy is not None else fidelity_name(objective, low)  # type: ignore[arg-type]
        high_name = fidelity_name(objective, high)
    return CalibrationResult(
        space=space.name, low_name=low_name, high_name=high_name, archs=[keys[i] for i in kept],
        low=lows, high=highs, spearman=rho, kendall=tau, k=k, failures=len(keys) - len(kept),
        errors=[f"{keys[i]}: {e}" for i, e in sorted(errors.items())], threshold=threshold,
        confidence=confidence, resamples=resamples, seed=seed, seconds=time.perf_counter() - start,
        low_cost=costs["low"], high_cost=costs["high"])


def _check_numbers(k: Any, seed: Any, workers: Any, threshold: Any, resamples: Any, confidence: Any) -> None:
    def integer(value: Any, lo: int) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= lo

    if not integer(k, MIN_PAIRS):
        raise ConfigError(f"--k must be an integer >= {MIN_PAIRS}, got {k!r}")
    if not integer(seed, 0):
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if not integer(workers, 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if not integer(resamples, 1):
        raise ConfigError(f"--resamples must be a positive integer, got {resamples!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
        raise ConfigError(f"--threshold must be a number in [-1, 1], got {threshold!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"--confidence must be in (0, 1), got {confidence!r}")


def _proxy_batch(evaluator: Evaluator, task: Task, seed: int) -> Any:
    """One seeded minibatch of the training split for data-dependent proxies (None: the proxy
    module draws a random one, as for tables, which have no data)."""
    if not isinstance(evaluator, TrainsOnSplits):
        return None
    import torch

    from archsearch.estimation.proxies import DEFAULT_BATCH_SIZE

    train = evaluator.splits().train
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train.y), generator=g)[:DEFAULT_BATCH_SIZE]
    return train.x[idx], train.y[idx]


def _proxy_score(space: SearchSpace, arch: Architecture, task: Task, proxy: str, batch: Any, seed: int) -> float:
    from archsearch.estimation.proxies import score_architecture

    value = score_architecture(space, arch, task, [proxy], batch=batch, seed=seed)[proxy]
    if not math.isfinite(value):
        raise ValueError(f"score is {value}")
    return float(value)


def _run_trials(space: SearchSpace, evaluator: Evaluator, archs: Sequence[Optional[Architecture]],
                seeds: Sequence[int], calls: dict[tuple[str, int], Optional[Fidelity]], workers: int,
                tick: Callable[[], None]) -> dict[tuple[str, int], EvalResult]:
    """Evaluate every (end, index) -> fidelity through an executor (inline, or a process pool)."""
    from archsearch.execution.base import TrialCall, create_executor

    keys = [key for key in calls if archs[key[1]] is not None]
    for key in calls:
        if archs[key[1]] is None:
            tick()
    if not keys:
        return {}
    executor = create_executor("process", workers=workers) if workers > 1 else create_executor("inline")
    results: dict[tuple[str, int], EvalResult] = {}
    try:
        for n, key in enumerate(keys):
            arch, fidelity = archs[key[1]], calls[key]
            assert arch is not None and fidelity is not None
            executor.submit(n, TrialCall(evaluator, space, arch, fidelity, seeds[key[1]],
                                         timeout=evaluator.time_limit()))
        while len(results) < len(keys):
            for n, result in executor.wait(timeout=1.0):
                results[keys[n]] = result
                tick()
    finally:
        executor.close()
    return results


__all__ = ["CalibrationResult", "Correlation", "DEFAULT_THRESHOLD", "bootstrap", "calibrate", "plot",
           "rank_correlations", "sample_distinct", "summary_table"]
