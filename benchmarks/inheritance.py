"""Weight inheritance: regularized evolution on digits with and without it, by training epochs.

Both runs are real searches (``run_search``: journal, inline executor, no final training) of
the default ``chain`` space with regularized evolution (``--trials``, ``--population``,
``--sample``). Without inheritance every trial trains ``--epochs`` epochs from scratch. With
it (``evaluator.inherit=true``) the random initial population trains ``--epochs`` too, and
every child starts from its parent's trained weights where shapes match and trains
``--inherit-epochs`` (default: ``--inherit-fraction`` of ``--epochs``, rounded down, at least 1;
the fraction defaults to 0.5). Same seeds for both, so the initial populations are
identical. With ``--match-epochs`` the inheriting run gets more trials, as many as fit in the
scratch run's epochs, instead of the same number of trials. ``--data-fraction`` trains every
trial of both runs on that share of the training split (``fidelity.data_fraction``): on the
full split digits saturates near 0.99 and late gains are single validation images.

Per seed it prints the best valid accuracy over trials, the total training epochs, the
best-so-far curve against cumulative epochs, and the epochs each run needs to reach the
other's final best. The RESULT compares the mean (over seeds) best-so-far curves: the
fraction of the scratch run's epochs the inheriting run needs to reach the scratch run's
final mean best.

Target (issue 7): the same best valid accuracy with at most 60% of the training epochs.

    .venv/bin/python benchmarks/inheritance.py [--trials 24] [--population 8] [--sample 3] [--epochs 8]
        [--inherit-epochs 4 | --inherit-fraction 0.5] [--data-fraction 1.0] [--seeds 3] [--first-seed 0]
        [--threads 1] [--jobs 1] [--match-epochs]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Optional

Curve = list[tuple[float, float]]  # (cumulative epochs, best valid accuracy so far), one point per trial


def search(seed: int, inherit: bool, args: argparse.Namespace) -> Curve:
    """One evolution search; its best-so-far curve in the order trials finished."""
    import torch

    from archsearch.config import Config
    from archsearch.experiment import run_search

    torch.set_num_threads(args.threads)
    trials = args.trials
    if inherit and args.match_epochs:  # spend the scratch run's epochs: more, cheaper children
        children = (args.trials - args.population) * args.epochs // args.inherit_epochs
        trials = args.population + children
    evaluator = {"name": "train"}
    if inherit:
        evaluator.update(inherit=True, inherit_epochs=args.inherit_epochs)
    config = Config.from_dict({
        "seed": seed,
        "space": {"name": "chain"},
        "strategy": {"name": "evolution", "population_size": args.population, "sample_size": args.sample},
        "evaluator": evaluator,
        "executor": {"name": "inline", "threads": args.threads},
        "fidelity": {"epochs": args.epochs, "data_fraction": args.data_fraction},
        "final": {"enabled": False},
        "budget": {"trials": trials},
    })
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        run_search(config, out, quiet=True)
        con = sqlite3.connect(os.path.join(out, "journal.sqlite"))
        rows = con.execute("SELECT metrics, reward FROM trials WHERE state='complete' ORDER BY tell_seq").fetchall()
        con.close()
        if inherit:
            n_files = len(os.listdir(os.path.join(out, "weights")))
            assert n_files >= 1, "no weights were stored"
    curve: Curve = []
    spent, best = 0.0, 0.0
    for metrics, reward in rows:
        spent += json.loads(metrics)["epochs"]
        best = max(best, reward)
        curve.append((spent, best))
    return curve


def epochs_to_reach(curve: Curve, target: float) -> Optional[float]:
    return next((spent for spent, best in curve if best >= target - 1e-12), None)


def mean_curve(curves: list[Curve]) -> Curve:
    """Mean best-so-far over seeds at each trial index (the epoch grids coincide: fixed epochs per trial)."""
    n = min(len(c) for c in curves)
    return [(statistics.mean(c[i][0] for c in curves), statistics.mean(c[i][1] for c in curves)) for i in range(n)]


def show(curve: Curve) -> str:
    """The points where the best-so-far improved (plus the last)."""
    points, last = [], None
    for i, (spent, best) in enumerate(curve):
        if best != last or i == len(curve) - 1:
            points.append(f"{spent:g}:{best:.4f}")
            last = best
    return " ".join(points)


def fmt(x: Optional[float]) -> str:
    return "never" if x is None else f"{x:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--sample", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--inherit-epochs", type=int, default=None, help="default: --inherit-fraction of --epochs")
    ap.add_argument("--inherit-fraction", type=float, default=0.5,
                    help="children's epochs as a share of --epochs when --inherit-epochs is not given")
    ap.add_argument("--data-fraction", type=float, default=1.0, help="share of the training split every trial uses")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="searches run in parallel processes")
    ap.add_argument("--match-epochs", action="store_true",
                    help="give the inheriting run as many trials as fit in the scratch run's epochs")
    args = ap.parse_args()
    if args.inherit_epochs is None:
        args.inherit_epochs = max(1, int(args.epochs * args.inherit_fraction))
    print(f"load average at start: {os.getloadavg()}; {args.threads} torch thread(s) per search, {args.jobs} job(s)")
    print(f"evolution on digits, chain space: {args.trials} trials, population {args.population}, sample "
          f"{args.sample}; scratch {args.epochs} epochs/trial; "
          f"inherit: initial population {args.epochs} epochs/trial, children "
          f"{args.inherit_epochs}" + (" (trials up to scratch's epochs)" if args.match_epochs else "")
          + f"; data fraction {args.data_fraction:g}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    start = time.perf_counter()
    runs = [(seed, inherit) for seed in seeds for inherit in (False, True)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            curves = list(pool.map(search, *zip(*runs), [args] * len(runs)))
    else:
        curves = [search(seed, inherit, args) for seed, inherit in runs]
    by_run = dict(zip(runs, curves))

    print(f"\n{'seed':>4} {'run':<8} {'best':>7} {'epochs':>7} {'epochs to reach other best':>27}")
    reached = 0
    shared = args.population * args.epochs  # epochs of the initial population, identical in both runs
    for seed in seeds:
        scratch, inherit = by_run[(seed, False)], by_run[(seed, True)]
        s_best, i_best = scratch[-1][1], inherit[-1][1]
        s_need, i_need = epochs_to_reach(scratch, i_best), epochs_to_reach(inherit, s_best)
        print(f"{seed:>4} {'scratch':<8} {s_best:>7.4f} {scratch[-1][0]:>7g} {fmt(s_need):>27}")
        print(f"{seed:>4} {'inherit':<8} {i_best:>7.4f} {inherit[-1][0]:>7g} {fmt(i_need):>27}"
              + (f"  ({i_need / scratch[-1][0]:.3f} of scratch's epochs)" if i_need is not None else "")
              + ("  [scratch's best was in the shared initial population]" if s_best <= scratch[
                  min(args.population, len(scratch)) - 1][1] else ""))
        reached += i_need is not None and i_need <= 0.6 * scratch[-1][0]
    print("\nbest-so-far curves (cumulative epochs:best valid acc, at each improvement)")
    for (seed, inherit), curve in by_run.items():
        print(f"  seed {seed} {'inherit' if inherit else 'scratch'}: {show(curve)}")
    s_mean = mean_curve([by_run[(s, False)] for s in seeds])
    i_mean = mean_curve([by_run[(s, True)] for s in seeds])
    print(f"  mean scratch: {show(s_mean)}")
    print(f"  mean inherit: {show(i_mean)}")
    target = s_mean[-1][1]
    need = epochs_to_reach(i_mean, target)
    ratio = math.inf if need is None else need / s_mean[-1][0]
    print(f"\nmean best: scratch {s_mean[-1][1]:.4f} in {s_mean[-1][0]:g} epochs, inherit {i_mean[-1][1]:.4f} in "
          f"{i_mean[-1][0]:g} epochs; inherit reaches scratch's mean best after {fmt(need)} epochs")
    print(f"per seed: inherit reached scratch's best within 60% of its epochs in {reached}/{args.seeds} seeds")
    print(f"wall {time.perf_counter() - start:.0f} s; load average at end: {os.getloadavg()}")
    print(f"(the first {shared} epochs of both runs are the same random initial population)")
    print(f"RESULT inheritance: {ratio:.3f} of the epochs for the same mean best valid accuracy (target <= 0.60) "
          f"{'PASS' if ratio <= 0.6 else 'FAIL'}")


if __name__ == "__main__":
    main()
