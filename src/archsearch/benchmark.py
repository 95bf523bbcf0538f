"""The tabular benchmark harness (``archsearch benchmark``): strategies × seeds × budgets, as NAS papers do.

Each (strategy, seed) run asks, looks the architecture up in the table, and tells, up to the
largest budget; the architecture *picked* at budget B is the one with the best reward among
the first B queries (ties go to the earlier query), so one run answers every budget, exactly
as if it had been stopped there (no strategy here looks at the budget). Every query counts,
repeats included. Runs go through the same ask/tell protocol and the same tabular evaluator as
``archsearch search --evaluator tabular``; they keep no journal, since a run is a few seconds
and reproducible from its seed. Runs for different seeds go to a process pool.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError, DataError
from archsearch.estimation.tabular import load_table


@dataclass(frozen=True)
class RunSpec:
    space: str
    space_options: dict[str, Any]
    table: str
    arch_column: str
    reward: str
    strategy: str
    strategy_options: dict[str, Any]
    seed: int
    queries: int


@dataclass
class RunResult:
    spec: RunSpec
    archs: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    strategy_seconds: float = 0.0  # time spent in ask + tell (the strategy's own overhead)

    def picked(self, budget: int) -> tuple[str, float]:
        """Best reward among the first ``budget`` queries (earliest on ties)."""
        best = max(range(min(budget, len(self.rewards))), key=lambda i: (self.rewards[i], -i))
        return self.archs[best], self.rewards[best]


def run_one(spec: RunSpec) -> RunResult:
    """One strategy run against the table (in a worker process or inline)."""
    import archsearch  # noqa: F401 - registers every space and strategy in a fresh worker
    from archsearch.spaces import create_space
    from archsearch.strategies import create_strategy

    table = load_table(spec.table, spec.arch_column)
    space = create_space(spec.space, **spec.space_options)
    strategy = create_strategy(spec.strategy, space, spec.seed, **spec.strategy_options)
    out = RunResult(spec)
    fidelity = Fidelity(epochs=1)
    for n in range(spec.queries):
        t0 = time.perf_counter()
        proposal = strategy.ask()
        out.strategy_seconds += time.perf_counter() - t0
        key = str(proposal.arch)
        row = table.rows.get(key)
        if row is None:
            raise DataError(f"strategy {spec.strategy!r} proposed {key}, which is not in the table {spec.table} "
                            f"(is --space right for this table?)")
        reward = row[spec.reward]
        trial = Trial(n, proposal.arch, TrialState.COMPLETE, fidelity.refined(proposal.fidelity), proposal.parent,
                      metrics=dict(row), reward=reward, cost=0.0, ask_id=proposal.ask_id)
        t0 = time.perf_counter()
        strategy.tell(trial)
        out.strategy_seconds += time.perf_counter() - t0
        out.archs.append(key)
        out.rewards.append(reward)
    return out


def _one_thread() -> None:
    """Pool initializer. Strategies run tiny torch models (REINFORCE's controller); with several
    runs in parallel on few cores, torch's thread pool makes every small op wait: one thread each."""
    import torch

    torch.set_num_threads(1)


def default_report_column(reward: str, columns: Sequence[str]) -> Optional[str]:
    """``cifar10_valid_acc`` -> ``cifar10_test_acc`` when the table has it (what papers report)."""
    for a, b in (("valid", "test"), ("val", "test")):
        if a in reward and reward.replace(a, b) in columns:
            return reward.replace(a, b)
    return None


def benchmark(space: str, table: str, reward: str, strategies: Sequence[str], budgets: Sequence[int],
              seeds: int, out: str, workers: int = 1, space_options: Optional[dict[str, Any]] = None,
              strategy_options: Optional[dict[str, dict[str, Any]]] = None, arch_column: str = "arch",
              first_seed: int = 0, progress: Any = None) -> list[dict[str, Any]]:
    """Run every strategy × seed once up to max(budgets); write one CSV row per (strategy, seed, budget)."""
    from archsearch.spaces import create_space
    from archsearch.strategies import STRATEGIES

    loaded = load_table(table, arch_column)
    if reward not in loaded.columns:
        raise ConfigError(f"--reward: the table has no numeric column {reward!r} (valid: {', '.join(loaded.columns)})")
    if not strategies:
        raise ConfigError(f"--strategies: name at least one (valid: {', '.join(STRATEGIES.names())})")
    for name in strategies:
        STRATEGIES.get(name)
    if not budgets or any(b < 1 for b in budgets):
        raise ConfigError(f"--budgets must be positive integers, got {list(budgets)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds}")
    if workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    space_options = dict(space_options or {})
    strategy_options = dict(strategy_options or {})
    unknown = set(strategy_options) - set(strategies)
    if unknown:
        raise ConfigError(f"options given for {sorted(unknown)[0]!r}, which is not in --strategies "
                          f"({', '.join(strategies)})")
    probe = create_space(space, **space_options)  # bad space or options fail before any run
    for name in strategies:  # so do bad strategy options
        from archsearch.strategies import create_strategy

        create_strategy(name, probe, 0, **strategy_options.get(name, {}))
    queries = max(budgets)
    specs = [RunSpec(space, space_options, table, arch_column, reward, name, strategy_options.get(name, {}),
                     first_seed + s, queries) for name in strategies for s in range(seeds)]
    results: list[RunResult] = []
    if workers == 1:
        for spec in specs:
            results.append(run_one(spec))
            if progress:
                progress(len(results), len(specs))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
            for result in pool.imap(run_one, specs):
                results.append(result)
                if progress:
                    progress(len(results), len(specs))
    rows = []
    metric_columns = [c for c in loaded.columns if c != reward]
    for r in results:
        for b in sorted(budgets):
            arch, value = r.picked(b)
            row = {"strategy": r.spec.strategy, "seed": r.spec.seed, "budget": b, "arch": arch, "reward": value}
            row.update({c: loaded.rows[arch][c] for c in metric_columns})
            row["strategy_ms_per_query"] = 1000 * r.strategy_seconds / max(len(r.rewards), 1)
            rows.append(row)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = f"{out}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, out)
    return rows


def summarise(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Mean, std and standard error of ``column`` per (strategy, budget), in first-seen order."""
    groups: dict[tuple[str, int], list[float]] = {}
    overhead: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["budget"]), []).append(float(row[column]))
        overhead.setdefault(row["strategy"], []).append(float(row["strategy_ms_per_query"]))
    out = []
    for (strategy, budget), values in groups.items():
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        out.append({"strategy": strategy, "budget": budget, "n": n, "mean": mean, "std": std,
                    "sem": std / math.sqrt(n) if n > 1 else 0.0,
                    "ms_per_query": sum(overhead[strategy]) / len(overhead[strategy])})
    return out
