"""Repeatability of the latency the ``train`` evaluator measures (``evaluator.latency=true``).

For a few networks (NB201 cells on CIFAR-10 shapes, chain networks on digits shapes), the
script calls ``measure_latency`` (median of ``--repeats`` forward passes after ``--warmup``
discarded ones, at batch 1 and ``--batch``) ``--runs`` times and prints, per network and batch
size, the median of those medians and their coefficient of variation (std / mean). The CV is
what decides whether latency can rank architectures: a CV of 5% cannot separate networks whose
latencies differ by less than that. The runs of all networks are interleaved, so a burst of
load on the shared machine hits every network alike.

Target: the median CV over networks and batch sizes <= 0.10.

    .venv/bin/python benchmarks/latency.py [--runs 7] [--repeats 10] [--warmup 2] [--batch 64] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from archsearch.core import Task
from archsearch.estimation.objectives import measure_latency
from archsearch.spaces import create_space

TARGET = 0.10
NETWORKS = [
    ("nb201", {"channels": 16, "cells_per_stage": 1},
     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     Task((3, 32, 32), 10)),
    ("nb201", {"channels": 16, "cells_per_stage": 1},
     "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
     Task((3, 32, 32), 10)),
    ("chain", {"layers": 3}, "conv:3:32:relu|sep_conv:5:64:gelu|conv:1:32:relu", Task((1, 8, 8), 10)),
    ("chain", {"layers": 2}, "conv:3:16:relu|max_pool:3:16:relu", Task((1, 8, 8), 10)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="latency measurements per network")
    ap.add_argument("--repeats", type=int, default=10, help="timed forward passes per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    models = []
    for name, options, arch, task in NETWORKS:
        space = create_space(name, **options)
        torch.manual_seed(0)
        models.append((f"{name} {arch}", space.build(space.parse(arch), task), task))
    samples: dict[tuple[int, int], list[float]] = {}
    for _ in range(args.runs):
        for i, (_, model, task) in enumerate(models):
            lat = measure_latency(model, task.input_shape, (1, args.batch), args.repeats, args.warmup)
            for b, v in lat.items():
                samples.setdefault((i, b), []).append(v)
    cvs = []
    print(f"{'network':<70} {'batch':>5} {'median ms':>10} {'CV':>6}")
    for (i, b), values in sorted(samples.items()):
        cv = statistics.pstdev(values) / statistics.mean(values)
        cvs.append(cv)
        print(f"{models[i][0][:70]:<70} {b:>5} {1e3 * statistics.median(values):>10.3f} {cv:>6.3f}")
    print(f"load average at end: {os.getloadavg()}")
    result = statistics.median(cvs)
    print(f"max CV {max(cvs):.3f}")
    print(f"RESULT latency_cv: {result:.3f} (target <= {TARGET}) {'PASS' if result <= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
