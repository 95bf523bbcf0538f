"""The trust meter on digits: does 1 epoch (or synflow) rank chain architectures like 10 epochs?

Draws ``--k`` distinct architectures from the ``chain`` space (default options) with a generator
seeded by ``--seed`` and runs :func:`archsearch.calibrate.calibrate` on the built-in digits
data: each architecture trained for ``--low-epochs`` and for ``--high-epochs`` (same weight
seed for both), then Spearman and Kendall tau-b with 95% bootstrap intervals (1,000
resamples). The same architectures are then scored with the ``synflow`` proxy (without
retraining: the scorer ``calibrate(proxy="synflow")`` uses, on the same weight seeds, with the
high-fidelity values reused) and correlated with the high-fidelity accuracy.

Target (set here, not by the issue): the 1-epoch vs 10-epoch Spearman reaches the trust
threshold, 0.6. The synflow line is reported only.

    .venv/bin/python benchmarks/calibrate_digits.py [--k 12] [--low-epochs 1] [--high-epochs 10]
        [--seed 0] [--threads 2] [--workers 1] [--plot FILE]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from archsearch.calibrate import DEFAULT_THRESHOLD, CalibrationResult, bootstrap, calibrate, plot
from archsearch.core import Fidelity
from archsearch.estimation.training import TrainingEvaluator
from archsearch.spaces import create_space


def line(name: str, result: CalibrationResult) -> str:
    r, t = result.spearman, result.kendall
    return (f"{name:<28} K={len(result.archs):<3} Spearman {r.estimate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]  "
            f"Kendall {t.estimate:+.3f} [{t.ci_low:+.3f}, {t.ci_high:+.3f}]  failures {result.failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--low-epochs", type=int, default=1)
    parser.add_argument("--high-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (inline trainings)")
    parser.add_argument("--workers", type=int, default=1, help="trainings at once (process pool when > 1)")
    parser.add_argument("--plot", default=None, help="write the 1-vs-10-epoch scatter here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads {args.threads}; workers {args.workers}")

    space = create_space("chain")
    evaluator = TrainingEvaluator({"name": "digits"}, args.seed)
    low, high = Fidelity(epochs=args.low_epochs), Fidelity(epochs=args.high_epochs)
    start = time.perf_counter()
    fid = calibrate(space, evaluator, low, high, args.k, args.seed, workers=args.workers)
    print(f"trained {len(fid.archs)} architectures at {args.low_epochs} and {args.high_epochs} epochs "
          f"in {time.perf_counter() - start:.0f} s (low {fid.low_cost:.0f} s, high {fid.high_cost:.0f} s of training)")
    print(f"{'arch':<90} {'low':>6} {'high':>6}")
    for arch, lo, hi in fid.pairs:
        print(f"{arch:<90} {lo:6.3f} {hi:6.3f}")

    # synflow on the same architectures, against the same high-fidelity accuracies (no retraining):
    # a tabular view of what was just measured
    start = time.perf_counter()
    from archsearch.calibrate import _proxy_score  # the scorer calibrate(proxy=...) uses
    from archsearch.calibrate import _arch_seed

    import numpy as np

    from archsearch.calibrate import sample_distinct

    drawn = sample_distinct(space, args.k, np.random.default_rng(args.seed))  # calibrate's own sample
    index = {str(a): i for i, a in enumerate(drawn)}
    scores = [_proxy_score(space, space.parse(a), evaluator.task(), "synflow", None, _arch_seed(args.seed, index[a]))
              for a in fid.archs]
    rho, tau = bootstrap(scores, fid.high, seed=args.seed)
    syn = CalibrationResult(space.name, "synflow", fid.high_name, fid.archs, scores, fid.high, rho, tau, args.k, 0,
                            seed=args.seed, seconds=time.perf_counter() - start)
    print(f"synflow scoring: {syn.seconds:.1f} s")
    print()
    print(line(f"{fid.low_name}", fid))
    print(line("synflow", syn))
    print(f"verdict ({fid.low_name}): {fid.verdict}")
    print(f"verdict (synflow): {syn.verdict}")
    if args.plot:
        plot(fid, args.plot)
        print(f"plot written to {args.plot}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    ok = fid.spearman.estimate >= DEFAULT_THRESHOLD
    print(f"RESULT calibrate_digits: {fid.spearman.estimate:.3f} (target >= {DEFAULT_THRESHOLD}) "
          f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
