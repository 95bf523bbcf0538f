"""Data-free zero-cost proxies on NAS-Bench-201: time per cell and rank correlation with accuracy.

Scores NB201 cells (the ``nb201`` space's default network: C=16, N=5 cells per stage) on
CIFAR-10 shapes (3x32x32, 10 classes) through ``score_architecture`` (build + score, one network
at a time, weights from ``--seed``) with ``synflow``, ``zen`` (Zen-NAS), ``params`` and ``flops``,
and the rank vote ``vote`` (the mean rank of those four over the scored cells,
:mod:`archsearch.estimation.ensemble`). Reports the Spearman and Kendall (tau-b) rank
correlations with ``cifar10_test_acc`` (and Spearman with ``cifar10_valid_acc``) of the 12-epoch
table in ``../shared/benchmarks/nb201`` (its ``arch`` column is the nb201 string form).

Which cells: ``--all`` scores all 15,625 cells of the table; otherwise a seeded random subset of
``--cells`` distinct table cells (default 1000; seed ``--seed``). Without the table, ``--cells``
random architectures of the space are scored and only the times are printed. ``--workers``
splits the cells over processes (one torch thread each), for the full set on a larger machine.

Target (issue 4): synflow scores 1,000 architectures in under 300 s on 2 cores. The zero-cost
proxies paper reports Spearman 0.74 for synflow against NB201's 200-epoch test accuracy.

    .venv/bin/python benchmarks/synflow_nb201.py [--cells 1000 | --all] [--seed 0] [--workers 1] [--table PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from multiprocessing import get_context

import numpy as np
import torch

from archsearch.core import Task
from archsearch.estimation.ensemble import with_votes
from archsearch.estimation.proxies import score_architecture
from archsearch.spaces import create_space

TARGET_S = 300.0
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TABLE = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "benchmarks", "nb201", "nb201_12epoch.csv"))
TEST, VALID = "cifar10_test_acc", "cifar10_valid_acc"
PROXIES = ("synflow", "zen", "params", "flops")
TASK = Task((3, 32, 32), 10)


def read_table(path: str) -> dict[str, tuple[float, float]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["arch"].strip(): (float(row[TEST]), float(row[VALID])) for row in csv.DictReader(fh)}


def correlations(x: list[float], y: list[float]) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(spearmanr(x, y)[0]), float(kendalltau(x, y)[0])


def score_chunk(job: tuple[list[str], int]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Score cells (string form) with every proxy; returns the rows and the seconds spent per proxy."""
    cells, seed = job
    torch.set_num_threads(1)
    space = create_space("nb201")
    seconds = dict.fromkeys(PROXIES, 0.0)
    rows = []
    for text in cells:
        arch, row = space.parse(text), {}
        for name in PROXIES:
            start = time.perf_counter()
            row[name] = score_architecture(space, arch, TASK, [name], seed=seed)[name]
            seconds[name] += time.perf_counter() - start
        rows.append(row)
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000, help="seeded random subset of table cells to score")
    parser.add_argument("--all", action="store_true", help="score all 15,625 cells of the table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (one torch thread each)")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.workers} worker(s), one torch thread each")
    space = create_space("nb201")
    table = read_table(args.table) if os.path.isfile(args.table) else None
    if table is None:
        print(f"no table at {args.table}: scoring {args.cells} random architectures for the times only")
        rng = np.random.default_rng(args.seed)
        cells = [str(space.sample(rng)) for _ in range(args.cells)]
    elif args.all:
        cells = sorted(table)
    else:
        rng = np.random.default_rng(args.seed)
        cells = [sorted(table)[i] for i in rng.choice(len(table), size=min(args.cells, len(table)), replace=False)]
    which = ("all" if args.all else f"a seeded random subset (seed {args.seed}) of the table's") if table else \
        f"(seed {args.seed}) random"
    print(f"scoring {which} {len(cells)} NB201 cells (C=16, N=5, 3x32x32, 10 classes) with {', '.join(PROXIES)}")
    score_chunk((cells[:1], args.seed))  # warm-up, untimed

    start = time.perf_counter()
    jobs = [(cells[i::args.workers], args.seed) for i in range(args.workers)]
    if args.workers == 1:
        parts = [score_chunk(jobs[0])]
    else:
        with get_context("spawn").Pool(args.workers) as pool:
            parts = pool.map(score_chunk, jobs)
    wall = time.perf_counter() - start
    rows: list[dict[str, float]] = [{} for _ in cells]
    for w, (part, _) in enumerate(parts):
        for k, row in enumerate(part):
            rows[w + k * args.workers] = row
    seconds = {n: sum(s[n] for _, s in parts) for n in PROXIES}
    print(f"wall {wall:.1f} s; CPU seconds per cell: "
          + ", ".join(f"{n} {1000 * seconds[n] / len(cells):.1f} ms" for n in PROXIES))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    synflow_per_1000 = 1000 * seconds["synflow"] / len(cells)

    if table is not None:
        scores = with_votes([*PROXIES, "vote"], rows)
        test = [table[c][0] for c in cells]
        valid = [table[c][1] for c in cells]
        print(f"rank correlation over {len(cells)} cells with the 12-epoch table:")
        print(f"{'proxy':<10} {'rho test':>9} {'tau test':>9} {'rho valid':>10}")
        rhos = {}
        for name in (*PROXIES, "vote"):
            values = [s[name] for s in scores]
            rho, tau = correlations(values, test)
            rhos[name] = rho
            print(f"{name:<10} {rho:9.3f} {tau:9.3f} {correlations(values, valid)[0]:10.3f}")
        print(f"RESULT zero_cost_nb201_spearman_test ({len(cells)} cells): "
              + " ".join(f"{n}={rhos[n]:.3f}" for n in ("synflow", "zen", "vote", "params", "flops")))
    verdict = "PASS" if synflow_per_1000 < TARGET_S else "FAIL"
    print(f"RESULT synflow_nb201_seconds: {synflow_per_1000:.1f} per 1000 cells (target < {TARGET_S:.0f}) {verdict}")


if __name__ == "__main__":
    main()
