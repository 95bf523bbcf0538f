"""synflow on NAS-Bench-201: time to score 1,000 architectures, and rank correlation with accuracy.

Draws ``--n`` architectures from the ``nb201`` space (default network: C=16, N=5 cells per
stage) with a generator seeded by ``--seed``, scores each with the ``synflow`` zero-cost proxy
on CIFAR-10 shapes (3x32x32, 10 classes) through ``score_architecture`` (build + score, one
network at a time, weights from ``--seed``), and reports the wall time of the scoring loop and
the Spearman and Kendall (tau-b) rank correlations of the scores with ``cifar10_valid_acc`` of
the 12-epoch table in ``../shared/benchmarks/nb201`` (its ``arch`` column is the nb201 string
form), over the distinct architectures drawn. The parameter count's correlation is printed for
reference (it is the baseline every proxy should beat; the zero-cost proxies paper reports
Spearman 0.74 for synflow against the 200-epoch test accuracy).

Target: scoring 1,000 architectures takes under 300 s on 2 cores.

    .venv/bin/python benchmarks/synflow_nb201.py [--n 1000] [--seed 0] [--threads 1] [--table PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np
import torch

from archsearch.core import Task
from archsearch.estimation.proxies import score_architecture
from archsearch.spaces import create_space

TARGET_S = 300.0
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TABLE = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "benchmarks", "nb201", "nb201_12epoch.csv"))
COLUMN = "cifar10_valid_acc"


def read_column(path: str, column: str) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["arch"].strip(): float(row[column]) for row in csv.DictReader(fh)}


def correlations(x: list[float], y: list[float]) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(spearmanr(x, y)[0]), float(kendalltau(x, y)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="architectures to score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: fastest at batch 1 on a busy machine)")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads {args.threads}")

    space = create_space("nb201")  # C=16, N=5: the NB201 network
    task = Task((3, 32, 32), 10)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.n)]
    score_architecture(space, archs[0], task, ["synflow"], seed=args.seed)  # warm-up, untimed

    start = time.perf_counter()
    synflow = [score_architecture(space, a, task, ["synflow"], seed=args.seed)["synflow"] for a in archs]
    wall = time.perf_counter() - start
    params = [score_architecture(space, a, task, ["params"], seed=args.seed)["params"] for a in archs]
    print(f"scored {args.n} NB201 architectures (C=16, N=5, 3x32x32, 10 classes) with synflow in {wall:.1f} s "
          f"({1000 * wall / args.n:.1f} ms each)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")

    if not os.path.isfile(args.table):
        print(f"skipped the correlation: no table at {args.table}")
    else:
        acc = read_column(args.table, COLUMN)
        distinct: dict[str, int] = {}
        for i, a in enumerate(archs):
            distinct.setdefault(str(a), i)
        missing = [k for k in distinct if k not in acc]
        if missing:
            print(f"warning: {len(missing)} architectures are not in the table, e.g. {missing[0]}", file=sys.stderr)
        keys = [k for k in distinct if k in acc]
        y = [acc[k] for k in keys]
        print(f"rank correlation with {COLUMN} (12-epoch table), {len(keys)} distinct architectures:")
        print(f"{'proxy':<10} {'spearman':>9} {'kendall':>9}")
        for name, values in (("synflow", synflow), ("params", params)):
            rho, tau = correlations([values[distinct[k]] for k in keys], y)
            print(f"{name:<10} {rho:9.3f} {tau:9.3f}")
    verdict = "PASS" if wall < TARGET_S else "FAIL"
    print(f"RESULT synflow_nb201_seconds: {wall:.1f} (target < {TARGET_S:.0f}) {verdict}")


if __name__ == "__main__":
    main()
