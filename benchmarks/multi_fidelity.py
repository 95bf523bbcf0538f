"""Successive halving and Hyperband vs full-fidelity random search on digits, by training epochs.

Random search trains ``--trials`` architectures of the default ``chain`` space at the full
fidelity (``--max-epochs``) and keeps the best validation accuracy. Successive halving and
Hyperband (``--min-resource`` 1 epoch, max ``--max-epochs``, ``--eta`` 3) run until they have
spent half of random search's epochs; their result is the best validation accuracy among the
trials they trained at the full fidelity (a lower rung's accuracy is not comparable). Same
evaluator (``TrainingEvaluator`` on digits), same per-trial seeds, ``--seeds`` repetitions
starting at ``--first-seed``. ``--data-fraction`` trains every trial of every method on that
share of the training split (a fixed fidelity knob, like the epochs: on the full split digits
saturates near 0.99 and the methods differ by one validation image).

Target (issue 7): they reach random search's best accuracy with at most half its epochs.

    .venv/bin/python benchmarks/multi_fidelity.py [--trials 20] [--max-epochs 9] [--seeds 3] [--first-seed 0]
        [--data-fraction 1.0] [--eta 3] [--min-resource 1] [--threads 1] [--jobs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.estimation import TrainingEvaluator
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy


def evaluate(evaluator: TrainingEvaluator, space, arch, epochs: int, seed: int, data_fraction: float) -> float:
    result = evaluator.evaluate(space, arch, Fidelity(epochs=epochs, data_fraction=data_fraction), seed)
    return float(result.metrics["valid_acc"])


def random_search(evaluator, space, trials: int, epochs: int, seed: int, data_fraction: float) -> tuple[float, int]:
    strategy = create_strategy("random", space, seed=seed)
    best = 0.0
    for i in range(trials):
        arch = strategy.ask().arch
        best = max(best, evaluate(evaluator, space, arch, epochs, seed * 1000 + i, data_fraction))
    return best, trials * epochs


def multi_fidelity(name: str, evaluator, space, budget: int, args: argparse.Namespace,
                   seed: int) -> tuple[float, int, int]:
    """(best full-fidelity accuracy, epochs spent, trials) within ``budget`` epochs."""
    max_epochs = args.max_epochs
    strategy = create_strategy(name, space, seed=seed, min_resource=args.min_resource, max_resource=max_epochs,
                               eta=args.eta)
    spent, best, i = 0, 0.0, 0
    while True:
        p = strategy.ask()
        fidelity = Fidelity(epochs=max_epochs, data_fraction=args.data_fraction).refined(p.fidelity)
        if spent + fidelity.epochs > budget:
            break
        acc = evaluate(evaluator, space, p.arch, fidelity.epochs, seed * 1000 + i, args.data_fraction)
        spent += fidelity.epochs
        if fidelity.epochs == max_epochs:
            best = max(best, acc)
        strategy.tell(Trial(i, p.arch, TrialState.COMPLETE, fidelity, p.parent, reward=acc))
        i += 1
    return best, spent, i


def one_seed(seed: int, args: argparse.Namespace) -> dict:
    """Random search, then successive halving and Hyperband on half its epochs, for one seed."""
    if args.threads:
        torch.set_num_threads(args.threads)
    space = create_space("chain")
    evaluator = TrainingEvaluator({"name": "digits"})
    base, base_epochs = random_search(evaluator, space, args.trials, args.max_epochs, seed, args.data_fraction)
    row = {"seed": seed, "random": (base, base_epochs, args.trials)}
    for name in ("successive_halving", "hyperband"):
        row[name] = multi_fidelity(name, evaluator, space, base_epochs // 2, args, seed)
    return row


def show_row(row: dict) -> None:
    print(f"seed {row['seed']}: " + "; ".join(f"{k} best {v[0]:.4f} in {v[1]} epochs ({v[2]} trials)"
                                             for k, v in row.items() if k != "seed"), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-epochs", type=int, default=9)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1")
    ap.add_argument("--data-fraction", type=float, default=1.0, help="share of the training split every trial uses")
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--min-resource", type=int, default=1, help="epochs of the lowest rung")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.get_num_threads()} threads, {args.jobs} job(s)")
    print(f"chain on digits, data fraction {args.data_fraction:g}: random {args.trials} x {args.max_epochs} epochs; "
          f"successive halving / hyperband {args.min_resource}..{args.max_epochs} epochs, eta {args.eta}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            rows = list(pool.map(one_seed, seeds, [args] * len(seeds)))
        for row in rows:
            show_row(row)
    else:
        rows = []
        for seed in seeds:
            rows.append(one_seed(seed, args))
            show_row(rows[-1])
    print(f"\n{'strategy':<20} {'best valid acc (mean)':>22} {'epochs (mean)':>14} {'reached random':>15}")
    base_acc = statistics.mean(r["random"][0] for r in rows)
    base_epochs = statistics.mean(r["random"][1] for r in rows)
    verdicts = []
    for name in ("random", "successive_halving", "hyperband"):
        acc = statistics.mean(r[name][0] for r in rows)
        epochs = statistics.mean(r[name][1] for r in rows)
        reached = sum(r[name][0] >= r["random"][0] for r in rows)
        print(f"{name:<20} {acc:>22.4f} {epochs:>14.1f} {reached:>12}/{len(rows)}")
        if name != "random":
            # a tie in the mean is a tie: means of the same image counts can differ in the last bit
            ok = epochs / base_epochs <= 0.5 and acc >= base_acc - 1e-9
            verdicts.append(f"{name} {epochs / base_epochs:.2f} of the epochs, mean best {acc:.4f} vs {base_acc:.4f} "
                            f"{'PASS' if ok else 'FAIL'}")
    print(f"wall {time.perf_counter() - start:.0f} s; load average at end: {os.getloadavg()}")
    print(f"RESULT multi_fidelity: {'; '.join(verdicts)} (target: <= 0.5 of the epochs, mean best >= random's)")

if __name__ == "__main__":
    main()
