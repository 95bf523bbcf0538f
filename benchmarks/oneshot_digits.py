"""One-shot search end to end on digits: wall time, and the derived cell against random cells.

For each method (default: darts first order and gdas) the script runs the main command,

    archsearch search --space darts --strategy METHOD --set strategy.epochs=E ... --out TMP

(supernet search, evaluation of the derived architecture, final training from scratch at the
final size), timed as a subprocess, and reads the final test accuracy from ``best.json``.
Then ``--random`` architectures sampled from the same space get exactly the same final
training (same final space, epochs, seed and data: ``TrainingEvaluator.final``), two at a
time; their median test accuracy is the baseline.

Targets (issue 5): search + final training under 600 s on 2 cores; the derived
architecture's test accuracy at least the median of 10 random architectures.

    .venv/bin/python benchmarks/oneshot_digits.py [--methods darts,gdas] [--search-epochs 10]
        [--final-epochs 20] [--random 10] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

SPACE = {"channels": 8, "cells": 5, "nodes": 4, "final_channels": 16, "final_cells": 8, "final_auxiliary": False}


def final_test_acc(arch_text: str, final_epochs: int, seed: int, threads: int) -> float:
    import torch

    from archsearch.core import Fidelity
    from archsearch.estimation.training import TrainingEvaluator
    from archsearch.experiment import trial_seed
    from archsearch.spaces import create_space

    torch.set_num_threads(threads)
    space = create_space("darts", **SPACE)
    evaluator = TrainingEvaluator({"name": "digits"}, seed)
    result = evaluator.final(space.final_space(), space.parse(arch_text), Fidelity(epochs=final_epochs),
                             trial_seed(seed, -1), train_on_valid=True)
    return float(result.result.metrics["test_acc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="darts,gdas")
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--final-epochs", type=int, default=20)
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the search (random: 1 each, 2 at once)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="extra KEY=VALUE for the searches (repeatable), e.g. strategy.arch_lr=0.003")
    ap.add_argument("--random-cache", default=None, help="JSON file: reuse the random baseline measured with the "
                    "same space, final epochs, seed and count (written after measuring)")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}; space darts {SPACE}")
    results = {}
    for method in args.methods.split(","):
        out = tempfile.mkdtemp(prefix=f"oneshot-{method}-")
        cmd = [sys.executable, "-m", "archsearch", "search", "--space", "darts", "--strategy", method,
               "--seed", str(args.seed), "--out", out, "--quiet",
               "--set", f"strategy.epochs={args.search_epochs}", "--set", f"final.epochs={args.final_epochs}",
               *[a for k, v in SPACE.items() for a in ("--set", f"space.{k}={str(v).lower()}")],
               *[a for kv in args.sets for a in ("--set", kv)]]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"{method}: failed\n{done.stderr[-3000:]}")
            continue
        best = json.load(open(os.path.join(out, "best.json")))
        results[method] = {"wall": wall, "test_acc": best["metrics"]["test_acc"], "arch": best["arch"]}
        print(f"{method}: {wall:.0f} s, final test_acc {best['metrics']['test_acc']:.4f}, arch {best['arch']}")

    import numpy as np

    from archsearch.spaces import create_space

    space = create_space("darts", **SPACE)
    rng = np.random.default_rng(args.seed)
    archs = [str(space.sample(rng)) for _ in range(args.random)]
    key = {"space": SPACE, "final_epochs": args.final_epochs, "seed": args.seed, "archs": archs}
    cached = json.load(open(args.random_cache)) if args.random_cache and os.path.exists(args.random_cache) else None
    if cached is not None and cached["key"] == key:
        accs, how = cached["test_acc"], f"from {args.random_cache}"
    else:
        start = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            accs = list(pool.map(final_test_acc, archs, [args.final_epochs] * len(archs),
                                 [args.seed] * len(archs), [1] * len(archs)))
        how = f"{time.perf_counter() - start:.0f} s"
        if args.random_cache:
            json.dump({"key": key, "test_acc": accs}, open(args.random_cache, "w"))
    median = statistics.median(accs)
    print(f"random ({len(archs)} architectures, same final training, {how}): "
          f"test_acc {', '.join(f'{a:.4f}' for a in accs)}; median {median:.4f}")
    print(f"load average at end: {os.getloadavg()}")
    for method, r in results.items():
        ok = r["wall"] < 600
        print(f"RESULT {method}_wall: {r['wall'] / 600:.2f} (target < 1.0 of 600 s) {'PASS' if ok else 'FAIL'}")
        gap = r["test_acc"] - median
        print(f"RESULT {method}_vs_random_median: {gap:+.4f} (target >= 0) {'PASS' if gap >= 0 else 'FAIL'}")


if __name__ == "__main__":
    main()
